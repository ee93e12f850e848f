"""`gns query STUDY`: a study's runs (or step traces) as a table, CSV or JSON."""

from __future__ import annotations

import argparse

from db import open_reader
from study.cli.common import add_storage_argument, filter_rows, select_columns
from study.output import FORMATS, write_frame

# Shown when --columns is not given (a table of every per-task column is too wide).
DEFAULT_COLUMNS = ["number", "key", "state", "method", "alpha", "seed", "value", "validation_value", "time_averaged_weight.*"]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("query", help="print a study's runs (or --traces) as a table, CSV or JSON")
    parser.add_argument("study", help="the study's name (see gns studies)")
    add_storage_argument(parser)
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    parser.add_argument(
        "--where", action="append", default=[], metavar="COLUMN=VALUE", help="keep matching rows (repeatable; also != < <= > >=)"
    )
    parser.add_argument(
        "--columns", action="append", default=[], metavar="NAMES", help="comma-separated names or globs; '*' for all"
    )
    parser.add_argument("--traces", action="store_true", help="per-step traces (one row per run, step and task)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with open_reader(args.storage) as results:
        frame = results.traces(args.study) if args.traces else results.runs(args.study)
    frame = filter_rows(frame, args.where)
    if args.columns:
        frame = select_columns(frame, args.columns)
    elif args.format == "table" and not args.traces:
        frame = select_columns(frame, DEFAULT_COLUMNS, strict=False)
    write_frame(frame, args.format)
    return 0
