"""Errors caused by what the user asked for: a bad URL, a missing database or study.

The CLI turns these into a one-line message and exit code 2.
"""


class DatabaseInputError(Exception):
    """The URL or study name given is wrong; nothing was written."""


class BadDatabaseURL(DatabaseInputError):
    pass


class DatabaseUnreachable(DatabaseInputError):
    pass


class NoSuchStudy(DatabaseInputError):
    pass
