"""`gns plan spec.yaml`: the trials a spec makes, with their keys; nothing runs."""

from __future__ import annotations

import argparse
import json

from study.cli.common import add_storage_argument, allow_user_code
from study.output import write_frame
from study.spec import load_spec


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("plan", help="print the trials a spec makes (nothing runs)")
    parser.add_argument("spec", help="a study spec (YAML)")
    parser.add_argument("--json", action="store_true", help="a JSON list of {key, config, after}")
    add_storage_argument(parser)  # read only for gradnorm.alpha_from
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Planning builds the workload once (torch): imported here, so that `gns --help` and the
    # commands that only read the database do not pay for it.
    from study.choices import resolve_choices
    from study.plan import describe, plan_study, planned_count

    allow_user_code(args.spec)
    spec = resolve_choices(load_spec(args.spec), args.storage)
    planned = plan_study(spec)
    if args.json:
        print(json.dumps([{"key": p.key, "config": p.config.to_dict(), "after": p.depends_on} for p in planned], indent=2))
        return 0
    total = planned_count(spec, planned)
    if total > len(planned):  # a search: later rounds are proposed from the results of earlier ones
        print(f"study {spec.study!r}: search on {spec.workload}, {total} trials in all; the first {len(planned)} "
              "(below) need no results, the others are proposed from them during the launch")
    else:
        print(f"study {spec.study!r}: {spec.kind} on {spec.workload}, {len(planned)} trials of {spec.training.steps} steps")
    import pandas as pd

    write_frame(pd.DataFrame([describe(p) for p in planned]), "table")
    return 0
