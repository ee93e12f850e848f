"""The results database: Optuna's RDB storage plus our trace tables. Never imports torch."""

from db.errors import BadDatabaseURL, DatabaseInputError, DatabaseUnreachable, NoSuchStudy
from db.store import RecordOutcome, ResultsDB, StudyInfo
from db.urls import DEFAULT_URL

__all__ = [
    "DEFAULT_URL",
    "BadDatabaseURL",
    "DatabaseInputError",
    "DatabaseUnreachable",
    "NoSuchStudy",
    "RecordOutcome",
    "ResultsDB",
    "StudyInfo",
]
