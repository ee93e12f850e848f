"""`gns delete STUDY --yes`: remove a study, its Optuna trials and its traces."""

from __future__ import annotations

import argparse

from db import ResultsDB
from study.cli.common import add_storage_argument
from study.errors import BadInput


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("delete", help="delete a study and everything recorded for it")
    parser.add_argument("study")
    add_storage_argument(parser)
    parser.add_argument("--yes", action="store_true", help="really delete (required)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.yes:
        raise BadInput(f"refusing to delete {args.study!r} without --yes")
    with ResultsDB(args.storage, create=False) as results:
        counts = results.progress(args.study)
        results.delete_study(args.study)
    print(f"deleted study {args.study!r} ({sum(counts.values())} trials) from {results.display_url}")
    return 0
