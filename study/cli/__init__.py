"""`gns`: one module per subcommand, each with `add_parser` and `run`.

Exit codes: 0 success, 1 runtime failure, 2 bad input (one line on stderr,
nothing written), 130 interrupted. A database error caused by what the user
asked for (a bad URL, a missing study) is bad input like any other.
"""

from __future__ import annotations

import argparse
import os
import sys

from db.errors import DatabaseInputError
from study.errors import BadInput

SUBCOMMANDS = ("train", "plan", "launch", "status", "report", "studies", "query", "delete")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit 2), like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> Parser:
    parser = Parser(prog="gns", description="Run and report GradNorm loss-weighting studies.")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = __import__(f"study.cli.{name.replace('-', '_')}", fromlist=["add_parser"])
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # usage errors and --help: argparse has printed already
        return int(exit_.code or 0)
    try:
        return int(args.run(args) or 0)
    except (BadInput, DatabaseInputError) as error:
        print(f"gns {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gns {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `gns query ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
