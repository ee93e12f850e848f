"""`gns delete STUDY --yes`: remove a study, its Optuna trials and its traces.

One of the three writers (with `gns launch` and `gns train --study`); it refuses
a study whose driver is running.
"""

from __future__ import annotations

import argparse

from db import open_reader, open_writer
from study.cli.common import add_storage_argument
from study.errors import BadInput
from study.progress import plural


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("delete", help="delete a study and everything recorded for it")
    parser.add_argument("study", help="the study's name (see gns studies)")
    add_storage_argument(parser)
    parser.add_argument("--yes", action="store_true", help="really delete (required)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.yes:
        raise BadInput(f"refusing to delete {args.study!r} without --yes")
    with open_reader(args.storage) as reader:  # an existing results database: nothing is created to delete from
        if reader.find_study(args.study) is None:
            reader.runs(args.study)  # raises NoSuchStudy naming the database, before anything is opened to write
        trials = sum(reader.progress(args.study).values())
    with open_writer(args.storage) as results:
        results.delete_study(args.study)  # refuses while a live driver holds the study's lease
    print(f"deleted study {args.study!r} ({plural(trials, 'trial')}) from {results.display_url}")
    return 0
