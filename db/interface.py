"""The results database as two small interfaces: what readers may do, and what writers add.

Readers: `gns studies/query/status/report`, pandas, tests. Writers: the driver
(`gns launch`), and two documented commands, `gns train --study` (records one
ad-hoc run) and `gns delete`. The SQL implementation is db.store.ResultsDB.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from records import TrialResult

if TYPE_CHECKING:  # loaded by the reads that return DataFrames, not by `gns status` or `delete`
    import pandas as pd


@dataclass(frozen=True)
class StudyInfo:
    name: str
    kind: str
    spec: dict
    spec_hash: str
    planned_trials: int | None  # as of the last launch; None for ad-hoc studies
    created_at: datetime
    updated_at: datetime
    product_version: str


@dataclass(frozen=True)
class RecordOutcome:
    trial_id: int  # gns_trials.id
    optuna_trial_id: int
    created: bool  # False when the key was already recorded


@dataclass(frozen=True)
class LeaseHolder:
    """Who runs a study now: the driver holding its lease."""

    holder: str  # "host pid N"
    since: datetime
    expires_at: datetime

    def describe(self) -> str:
        return f"{self.holder} since {self.since:%Y-%m-%d %H:%M:%S} UTC (lease until {self.expires_at:%H:%M:%S} UTC)"


class ResultsReader(abc.ABC):
    """Reads never write: a reader opens an existing SQLite file read-only."""

    display_url: str

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abc.abstractmethod
    def studies(self) -> pd.DataFrame:
        """One row per study: name, kind, counts by outcome, timestamps."""

    @abc.abstractmethod
    def find_study(self, name: str) -> StudyInfo | None: ...

    @abc.abstractmethod
    def runs(self, study: str) -> pd.DataFrame:
        """One row per recorded run (see db.queries.runs for the columns)."""

    @abc.abstractmethod
    def traces(self, study: str, keys: list[str] | None = None) -> pd.DataFrame:
        """One row per (run, logged step, task)."""

    @abc.abstractmethod
    def progress(self, study: str) -> dict[str, int]:
        """How many trial keys a study has, by status (recorded ones and running ones)."""

    @abc.abstractmethod
    def best_value(self, study: str) -> float | None: ...

    @abc.abstractmethod
    def metric_directions(self, study: str) -> dict[str, bool]: ...

    @abc.abstractmethod
    def recorded_keys(self, study: str) -> set[str]:
        """Keys with a final outcome (ok, diverged, crashed)."""

    @abc.abstractmethod
    def time_averaged_weights(self, study: str, key: str) -> tuple[float, ...] | None: ...

    @abc.abstractmethod
    def run_state(self, study: str, key: str) -> bytes | None:
        """The saved state of a recorded, successful trial (workers.run_state, as bytes: untrusted), or None."""

    @abc.abstractmethod
    def checkpoint(self, study: str, key: str) -> bytes | None:
        """The last state a trial that has not finished saved mid-budget (its study was stopped), or None."""

    @abc.abstractmethod
    def checkpoint_count(self, study: str) -> int:
        """How many trials that have not finished hold a checkpoint."""

    @abc.abstractmethod
    def wall_times(self, study: str) -> list[float]:
        """Each recorded trial's wall time in seconds (a pack's runs share its time equally); a stored
        value that is not a time (NULL, NaN, negative) is left out."""

    @abc.abstractmethod
    def proposals(self, study: str) -> dict[tuple[int, str, int], tuple[float, ...]]:
        """A search study's recorded proposals: their draws by (seed, searcher, index) (study.searchers;
        numbers checked, the rest untrusted). Empty for other kinds and for studies recorded before them."""

    @abc.abstractmethod
    def lease_holder(self, study: str) -> LeaseHolder | None:
        """The driver running the study now, if its lease has not expired."""

    @abc.abstractmethod
    def code_fingerprints(self, study: str) -> list[tuple[dict[str, Any], int]]:
        """Each distinct code fingerprint the study's recorded trials trained with, and how many trials
        (trials recorded before fingerprints existed are not counted)."""

    @abc.abstractmethod
    def machines(self, study: str) -> list[tuple[dict[str, str], int]]:
        """Each distinct machine the study's recorded trials trained on ({cpu, device, torch}, a field
        the trial did not record reads "not recorded"), and how many trials."""

    @abc.abstractmethod
    def code_changes(self, study: str) -> list[dict[str, Any]]:
        """The study's code changes made on purpose (--allow-code-change): {at, from, to} each."""


class ResultsWriter(ResultsReader):
    @abc.abstractmethod
    def create_study(self, name: str, kind: str, spec: Mapping[str, Any], planned_trials: int | None = None) -> StudyInfo: ...

    @abc.abstractmethod
    def set_planned_trials(self, name: str, count: int) -> None: ...

    @abc.abstractmethod
    def delete_study(self, name: str) -> None: ...

    @abc.abstractmethod
    def acquire_lease(self, study: str) -> None:
        """Become the study's one driver, or raise StudyBusy naming the holder."""

    @abc.abstractmethod
    def renew_lease(self, study: str) -> None:
        """Extend the lease and the heartbeat of this writer's running trials."""

    @abc.abstractmethod
    def release_lease(self, study: str, retry: bool = True) -> None: ...

    @abc.abstractmethod
    def requeue(self, study: str, failed: bool = False) -> int:
        """Make trials run again, keeping their Optuna trials as history: those a dead driver left
        RUNNING or half-recorded (always; they keep their checkpoints) and, with failed=True, the
        failed ones (from step 0). How many. The caller holds the study's lease."""

    @abc.abstractmethod
    def start_trial(self, study: str, key: str, config: Mapping[str, Any]) -> None:
        """Show the key as RUNNING (an Optuna trial in state RUNNING) until it is recorded."""

    @abc.abstractmethod
    def record(
        self,
        study: str,
        key: str,
        config: Mapping[str, Any],
        result: TrialResult | None = None,
        failure: str | None = None,
        worker: str | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> RecordOutcome:
        """Record a finished trial exactly once by key: a result, or a failure reason; `provenance`: the
        code fingerprint and versions it trained with (study.provenance)."""

    @abc.abstractmethod
    def note_code_change(self, study: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        """Keep, with the study, that its code changed on purpose from `before` to `after`."""

    @abc.abstractmethod
    def record_state(self, study: str, key: str, state: bytes) -> None:
        """Keep a trial's saved state (a longer run may continue from it), replacing an earlier one."""

    @abc.abstractmethod
    def record_proposals(self, study: str, proposals: Iterable[tuple[int, str, int, tuple[float, ...]]]) -> int:
        """Keep a search's proposals (seed, searcher, index, draws) before their runs train; one already
        kept stays as it is. How many were new."""

    @abc.abstractmethod
    def delete_run_states(self, study: str, key: str | None = None) -> int:
        """Drop the study's saved states (nothing is left to continue from them), or only trial `key`'s; how many."""
