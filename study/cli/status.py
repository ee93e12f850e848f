"""`gns status STUDY`: how far a study is, from the database alone.

Read-only, and it runs nothing named in the database: the planned count was
stored by the last launch, so no spec (and no workload factory) is loaded.
"""

from __future__ import annotations

import argparse

from db import open_reader
from records import Status
from study.cli.common import add_storage_argument
from study.output import TIME_FORMAT
from study.progress import status_line


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("status", help="a study's progress: done, running, failed, remaining, best value")
    parser.add_argument("study", help="the study's name (see gns studies)")
    add_storage_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with open_reader(args.storage) as results:
        info = results.find_study(args.study)
        if info is None:
            results.runs(args.study)  # raises NoSuchStudy naming the database
        counts = results.progress(args.study)
        best = results.best_value(args.study)
        holder = results.lease_holder(args.study)
    ok = counts.get(Status.OK, 0)
    failed = sum(counts.get(status, 0) for status in Status if status.failed)
    running = counts.get(Status.RUNNING, 0) if holder is not None else 0
    total = info.planned_trials if info.planned_trials is not None else ok + failed
    print(status_line(args.study, total, ok, failed, running, best, None))
    for status, count in sorted(counts.items()):
        print(f"  {status}: {count}")
    if holder is not None:
        print(f"  running under {holder.describe()}")
    elif counts.get(Status.RUNNING):
        print("  its driver is gone: the running trials run again at the next gns launch")
    print(f"  created {info.created_at:{TIME_FORMAT}}, last recorded {info.updated_at:{TIME_FORMAT}}")
    return 0
