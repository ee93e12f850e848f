"""`gns report STUDY`: an offline HTML page with PNG and CSV per figure, and summary.json."""

from __future__ import annotations

import argparse
import sys
import re
from pathlib import Path

from db import open_reader
from study.cli.common import add_storage_argument
from study.errors import BadInput
from study.spec import check_study_name


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("report", help="write the reports that fit a study's kind")
    parser.add_argument("study", help="the study's name (see gns studies)")
    add_storage_argument(parser)
    parser.add_argument("--out", type=Path, help="output folder (default: reports/STUDY)")
    parser.add_argument("--no-png", action="store_true", help="skip PNG export (which needs a Chromium)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from study.report import build_report
    except ImportError as error:  # plotly and scipy are the `report` extra
        raise BadInput(f"gns report needs {error.name}: pip install 'gradnorm-study[report]'") from None

    check_study_name(args.study, "study")  # also bounds the default folder's name
    out_dir = args.out or Path("reports") / folder_name(args.study)
    check_output_folder(out_dir)
    with open_reader(args.storage) as results:
        try:
            report = build_report(results, args.study, out_dir, png=not args.no_png,
                                  say=lambda line: print(line, file=sys.stderr, flush=True))
        except OSError as error:  # a folder we may not write, a full disk, a name too long
            raise BadInput(f"--out: cannot write the report to {str(out_dir)!r}: {error.strerror or error}") from None
    for problem in report.summary["problems"]:
        print(f"note: {problem}")
    for note in report.written.notes:
        print(f"note: {note}")
    for line in headline(report.summary):
        print(line)
    for line in report.summary["code"]["lines"]:
        if not line.startswith("warning:"):  # a warning is among the notes above already
            print(line)
    print(f"report: {report.written.index.resolve().as_uri()}")
    return 0


def check_output_folder(out_dir: Path) -> None:
    """The report goes into a real folder (or one to make): never through a symbolic link."""
    shown = str(out_dir) if len(str(out_dir)) <= 80 else str(out_dir)[:77] + "..."
    try:
        link, exists = out_dir.is_symlink(), out_dir.exists()
    except OSError as error:  # e.g. a name longer than the filesystem allows
        raise BadInput(f"--out: {shown!r} cannot be used: {error.strerror or error}") from None
    if link:
        raise BadInput(f"--out: {shown!r} is a symbolic link; name the folder itself")
    if exists and not out_dir.is_dir():
        raise BadInput(f"--out: {shown!r} exists and is not a folder")


def folder_name(study: str) -> str:
    """A study name as one folder under reports/: never '.', '..' or a path."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", study).strip(".")
    return name or "_"


def headline(summary: dict) -> list[str]:
    """The statistics worth printing on the terminal: the study's kind's (study.kinds), then convergence."""
    from study.kinds import for_report

    lines = [f"{summary['study']} ({summary['kind']}): {summary['trials_ok']} trials ok, {summary['trials_failed']} failed"]
    lines += for_report(summary["kind"]).headline(summary)
    convergence = summary.get("convergence")
    if convergence and convergence["converged"]:
        lines.append(f"Convergence: every group's {convergence['split']} losses had flattened by step "
                     f"{convergence['budget']} (or the runs stopped early)")
    return lines
