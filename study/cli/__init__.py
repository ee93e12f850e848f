"""`gns`: one module per subcommand, each with `add_parser` and `run`.

Exit codes: 0 success, 1 runtime failure, 2 bad input (one line on stderr,
nothing written), 3 `gns launch` finished with failed trials, 4 the database
stayed unavailable for the whole retry window, 130 interrupted. A database
error caused by what the user asked for (a bad URL, a missing study, a file
that is not a results database) is bad input like any other.
"""

from __future__ import annotations

import argparse
import os
import sys

from db import DatabaseInputError, DatabaseUnavailable
from records import product_version
from study.cli import delete, launch, plan, query, report, status, studies, train
from study.cli.common import EXIT_DATABASE_UNAVAILABLE
from study.errors import BadInput

# In the order `gns --help` lists them.
SUBCOMMANDS = (train, plan, launch, status, report, studies, query, delete)


class HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        shown = action.option_strings and not (default is None or default is False or default == [] or default == argparse.SUPPRESS)
        if shown and "%(default)" not in text and "(default" not in text:  # a help that says its own default
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit 2), like every other bad input."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> Parser:
    parser = Parser(prog="gns", description="Run and report GradNorm loss-weighting studies.")
    parser.add_argument("--version", action="version", version=f"gns (gradnorm-study) {product_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    for choice in subparsers._choices_actions:  # each subcommand's --help starts with its one-line summary
        subparser = subparsers.choices[choice.dest]
        subparser.description = subparser.description or choice.help[0].upper() + choice.help[1:] + "."
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
    except DatabaseUnavailable as error:
        print(f"gns {args.command}: error: {error}; finished trials are recorded, run the same command again",
              file=sys.stderr)
        return EXIT_DATABASE_UNAVAILABLE
    except KeyboardInterrupt:
        print(f"gns {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `gns query ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
