"""`gns status STUDY`: how far a study is, from the database alone."""

from __future__ import annotations

import argparse

from db import ResultsDB
from study.cli.common import add_storage_argument
from study.cli.train import ADHOC_KIND
from study.errors import BadInput
from study.plan import plan_study
from study.progress import status_line
from study.spec import parse_spec


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("status", help="a study's progress: done, failed, remaining, best value")
    parser.add_argument("study")
    add_storage_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with ResultsDB(args.storage, create=False) as results:
        info = results.find_study(args.study)
        if info is None:
            raise BadInput(f"study: no study named {args.study!r} in {results.display_url}")
        counts = results.progress(args.study)
        best = results.best_value(args.study)
    recorded = sum(counts.values())
    total = len(plan_study(parse_spec(info.spec))) if info.kind != ADHOC_KIND else recorded
    ok = counts.get("ok", 0)
    print(status_line(args.study, total, ok, recorded - ok, 0, best, None))
    for status, count in sorted(counts.items()):
        print(f"  {status}: {count}")
    print(f"  created {info.created_at:%Y-%m-%d %H:%M}, last recorded {info.updated_at:%Y-%m-%d %H:%M}")
    return 0
