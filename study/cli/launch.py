"""`gns launch spec.yaml`: run a study on Ray (local or a cluster) into the results database."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from study.cli.common import add_storage_argument
from study.errors import BadInput
from study.progress import format_duration
from study.spec import Resources, SpecError, StudySpec, load_spec


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("launch", help="run a study's missing trials on Ray and record them")
    parser.add_argument("spec", help="a study spec (YAML)")
    add_storage_argument(parser)
    parser.add_argument("--address", help="join a Ray cluster (auto or HOST:PORT); default: start a local Ray")
    parser.add_argument("--max-concurrent", type=int, metavar="K", help="at most K trials at once (overrides the spec)")
    parser.add_argument("--cpu", type=float, help="CPUs per trial (overrides the spec's resources.cpu)")
    parser.add_argument("--gpu", type=float, help="GPUs per trial, e.g. 0.25 (overrides the spec's resources.gpu)")
    parser.add_argument("--force-new", action="store_true", help="delete a same-named study with a different spec first")
    parser.set_defaults(run=run)


def with_resources(spec: StudySpec, cpu: float | None, gpu: float | None) -> StudySpec:
    """Per-trial resources from the command line; they are not part of the plan."""
    if cpu is None and gpu is None:
        return spec
    try:
        resources = Resources(cpu=spec.resources.cpu if cpu is None else cpu, gpu=spec.resources.gpu if gpu is None else gpu)
    except SpecError as error:
        raise BadInput(f"--{str(error)}") from None
    return dataclasses.replace(spec, resources=resources)


def run(args: argparse.Namespace) -> int:
    from study.driver import launch

    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise BadInput(f"--max-concurrent: must be >= 1, got {args.max_concurrent}")
    spec = with_resources(load_spec(args.spec), args.cpu, args.gpu)
    summary = launch(spec, args.storage, address=args.address, max_concurrent=args.max_concurrent, force_new=args.force_new)
    done = summary.planned - summary.missing
    print(
        f"{summary.study}: {done}/{summary.planned} recorded ({summary.recorded_now} now, {summary.failed_now} failed) "
        f"in {format_duration(summary.wall_time_s)}; results in --storage {args.storage}",
        file=sys.stderr,
    )
    if summary.interrupted or summary.missing:
        print(f"{summary.missing} trials not recorded yet: run the same command again to finish", file=sys.stderr)
        return 130 if summary.interrupted else 1
    return 0
