"""`gns launch spec.yaml`: run a study on Ray (local or a cluster) into the results database.

Exit codes: 0 every planned trial recorded ok; 3 every trial recorded but some
failed (diverged or crashed: `--retry-failed` runs them again); 1 some trials
not recorded (a reference failed to start them); 130 interrupted (Ctrl-C), 143
stopped by SIGTERM (both record what finished and print the summary); 2 bad
input; 4 the database stayed unavailable for the whole retry window.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from study.cli.common import EXIT_TERMINATED, EXIT_TRIALS_FAILED, add_storage_argument, allow_user_code, next_steps
from db import redact
from study.errors import BadInput
from study.progress import format_duration, plural
from study.spec import SpecError, StudySpec, load_spec


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "launch",
        help="run a study's missing trials on Ray and record them",
        description="Run a study's missing trials on Ray and record them (exit 3 when some trials failed).",
    )
    parser.add_argument("spec", help="a study spec (YAML)")
    add_storage_argument(parser)
    parser.add_argument("--address", help="join a Ray cluster (auto or HOST:PORT); default: start a local Ray")
    parser.add_argument("--max-concurrent", type=int, metavar="K", help="at most K trials at once (overrides the spec)")
    parser.add_argument("--cpu", type=float, help="CPUs per trial (overrides the spec's resources.cpu)")
    parser.add_argument("--gpu", type=float, help="GPUs per trial, e.g. 0.25 (overrides the spec's resources.gpu)")
    parser.add_argument("--force-new", action="store_true", help="delete a same-named study with a different spec first")
    parser.add_argument(
        "--retry-failed", action="store_true", help="run the trials recorded as failed again (their history is kept)"
    )
    parser.add_argument(
        "--allow-code-change", action="store_true",
        help="go on with a study whose recorded runs trained with other code (yours or gradnorm-study's); kept with the study",
    )
    parser.set_defaults(run=run)


def with_resources(spec: StudySpec, cpu: float | None, gpu: float | None) -> StudySpec:
    """Per-trial resources from the command line; they are not part of the plan."""
    if cpu is None and gpu is None:
        return spec
    try:
        resources = dataclasses.replace(spec.resources, **{name: value for name, value in (("cpu", cpu), ("gpu", gpu))
                                                           if value is not None})
    except SpecError as error:
        raise BadInput(f"--{str(error)}") from None
    return dataclasses.replace(spec, resources=resources)


def run(args: argparse.Namespace) -> int:
    from study.driver import LaunchOptions, launch

    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise BadInput(f"--max-concurrent: must be >= 1, got {args.max_concurrent}")
    allow_user_code(args.spec)
    spec = with_resources(load_spec(args.spec), args.cpu, args.gpu)
    options = LaunchOptions(address=args.address, max_concurrent=args.max_concurrent, force_new=args.force_new,
                            retry_failed=args.retry_failed, allow_code_change=args.allow_code_change)
    summary = launch(spec, args.storage, options)
    done = summary.planned - summary.missing
    print(
        f"{summary.study}: {done}/{summary.planned} recorded ({summary.recorded_now} now, {summary.failed_now} failed) "
        f"in {format_duration(summary.wall_time_s)}; results in --storage {redact(args.storage)}",
        file=sys.stderr,
    )
    if summary.interrupted or summary.missing:
        print(f"{plural(summary.missing, 'trial')} not recorded yet: run the same command again to finish", file=sys.stderr)
        if summary.terminated:
            return EXIT_TERMINATED
        return 130 if summary.interrupted else 1
    for line in next_steps(summary.study, args.storage):
        print(line, file=sys.stderr)
    if summary.failures:
        counts = ", ".join(f"{count} {status}" for status, count in sorted(summary.failures.items()))
        reasons = "; ".join(f"{status}: {reason}" for status, reason in sorted(summary.failure_reasons.items()))
        print(
            f"{plural(sum(summary.failures.values()), 'trial')} failed ({counts}), e.g. {reasons}; "
            f"rerun them with: gns launch {args.spec} --retry-failed",
            file=sys.stderr,
        )
        return EXIT_TRIALS_FAILED
    return 0
