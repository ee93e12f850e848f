"""`gns studies`: the studies in a results database."""

from __future__ import annotations

import argparse
import sys

from db import open_reader
from study.cli.common import add_storage_argument
from study.output import FORMATS, write_frame


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("studies", help="list the studies in a results database")
    add_storage_argument(parser)
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with open_reader(args.storage) as results:
        frame = results.studies()
        if frame.empty:  # an empty database, one whose studies were deleted, or an Optuna storage
            print(f"no gradnorm-study studies in {results.display_url} yet", file=sys.stderr)
        write_frame(frame, args.format)
    return 0
