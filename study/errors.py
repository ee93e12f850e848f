"""Errors the CLI turns into exit codes."""


class BadInput(Exception):
    """A spec, URL or argument is wrong: one-line message, exit code 2, nothing written."""
