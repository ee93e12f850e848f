"""Errors the CLI turns into exit codes.

DatabaseInputError and its kinds are caused by what the user asked for (a bad
URL, a missing database or study, a file that is not ours, a study another
driver runs): one-line message, exit code 2, nothing written.
DatabaseUnavailable is an outage that outlasted the retry window: exit code 4.
"""


class DatabaseInputError(Exception):
    """The URL or study name given is wrong; nothing was written."""


class BadDatabaseURL(DatabaseInputError):
    pass


class DatabaseUnreachable(DatabaseInputError):
    pass


class NotOurDatabase(DatabaseInputError):
    """A file or database that is not a gradnorm-study results database; left unchanged."""


class NoSuchStudy(DatabaseInputError):
    pass


class StudyBusy(DatabaseInputError):
    """Another live driver holds the study's lease."""


class DatabaseWriteError(DatabaseInputError):
    """A write the database refuses for good: a full disk, a read-only file, a too-long value."""


class DatabaseUnavailable(Exception):
    """The database stayed unreachable for the whole retry window."""
