"""The results database: Optuna's RDB storage plus our tables, behind db.interface.

Exactly once by key. A trial key is claimed in `gns_trials` (unique per study)
by one writer, named by its `claim_token`, before its Optuna trial exists; only
the owner creates or finishes the Optuna trial. A second writer that meets an
unfinished claim waits for it to complete, and takes it over only when the
owner has been silent for CLAIM_STALE_S. Every step is idempotent, so a retry
after an outage or a crash between steps still ends with one Optuna trial and
one set of our rows per key.

One driver per study: a lease on the study row, taken and renewed by atomic
conditional UPDATEs, refuses a second driver; it expires when its holder stops
renewing it, at once when the holder is a dead process on this host.
"""

from __future__ import annotations

import fcntl
import functools
import json
import math
import os
import socket
import sqlite3
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

from sqlalchemy import create_engine, delete, event, func, inspect, or_, select, update
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from db import queries
from db.errors import DatabaseInputError, DatabaseUnavailable, DatabaseUnreachable, NoSuchStudy, NotOurDatabase, StudyBusy
from db.files import check_sqlite_file, create_wal_file, has_hot_journal, journal_of, read_only_url, recover_hot_journal
from db.interface import LeaseHolder, RecordOutcome, ResultsWriter, StudyInfo
from db.retry import is_outage, retrying
from db.schema import (MIGRATIONS, READABLE_VERSIONS, SCHEMA_VERSION, Base, MetricRow, ProposalRow, RunStateRow, SchemaInfo,
                       StudyRow, TraceRow, TrialRow, TrialTaskRow)
from db.urls import DEFAULT_URL, display, engine_options, parse_url, sqlite_file
from records import MACHINE_FIELDS, METHODS, NOT_RECORDED, Status, TaskMetric, TrialResult, canonical_hash, product_version

if TYPE_CHECKING:  # Optuna is loaded by writers only, pandas by the reads that return DataFrames
    import optuna
    import pandas as pd
    from optuna.storages import RDBStorage

# pg_advisory_lock key that serializes schema set-up: the ASCII of "gns-setu" as a 63-bit integer.
SETUP_LOCK_KEY = int.from_bytes(b"gns-setu", "big") >> 1
KEY_ATTR = "key"  # Optuna user attribute holding our trial key
ATTEMPT_ATTR = "attempt"  # Optuna user attribute: which attempt at the key (history is kept when it reruns)
KIND_ATTR = "gns_kind"  # Optuna study user attribute: made by gradnorm-study
LEASE_TTL_S = 60.0  # a driver renews its lease every LEASE_TTL_S / 4
CLAIM_STALE_S = 120.0  # a claim silent this long belongs to a dead writer
CLAIM_POLL_S = 0.05


MAX_STATE_BYTES = 256 * 1024 * 1024  # a saved run state (workers.run_state): a network and its Adam moments
MAX_PROPOSAL_DRAWS = 1000  # a proposal's draws: one per task


def spec_hash(spec: Mapping[str, Any]) -> str:
    return canonical_hash(spec)


def this_process() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


def _retried(method: Callable[..., Any]) -> Callable[..., Any]:
    """A writer's call retried through outages (db.retry); a reader's runs once and fails fast."""

    @functools.wraps(method)
    def call(self: "ResultsDB", *args: Any, **kwargs: Any) -> Any:
        if not self.writable:
            return method(self, *args, **kwargs)
        what = f"{method.__name__.replace('_', ' ')} {args[0]!r}" if args else method.__name__.replace("_", " ")
        return retrying(what, lambda: method(self, *args, **kwargs))

    return call


class ResultsDB(ResultsWriter):
    """Open the results database at `url`.

    create=True (writers) sets up our tables and Optuna's in an empty database
    or file; create=False (readers) opens an existing SQLite file read-only and
    writes nothing anywhere. Either way a file or database that is not ours is
    refused, unchanged.
    """

    def __init__(self, url: str | URL = DEFAULT_URL, create: bool = True) -> None:
        self.url = url if isinstance(url, URL) else parse_url(url)
        self.display_url = display(self.url)
        self.writable = create
        self.token = uuid.uuid4().hex  # names this writer's claims and lease
        self._method_choices_seen: dict[int, tuple[str, ...]] = {}  # per Optuna study: see _method_choices
        # (Optuna study, key, attempt) whose Optuna trial this writer asked for: a retry of that request
        # looks for what the first try may have made; a first request (the common case) does not query.
        self._trials_requested: set[tuple[int, str, int]] = set()
        path = sqlite_file(self.url)
        existing_file = path is not None and check_sqlite_file(path, self.display_url, must_exist=not create)
        if path is not None and create:
            _prepare_sqlite_file(path, existing_file, self.display_url)
            existing_file = True
        elif existing_file and has_hot_journal(path):
            raise DatabaseUnreachable(
                f"storage: {self.display_url} holds a transaction that a stopped writer left unfinished "
                f"({journal_of(path).name}); any gns command that writes (gns launch) rolls it back first"
            )
        # An existing SQLite file is first opened read-only: nothing (not even the WAL pragma)
        # touches it until its tables say it is ours.
        self.engine = create_engine(read_only_url(path) if existing_file else self.url, **engine_options(self.url))
        try:
            tables = self._first_look()
        except OperationalError as error:
            self.engine.dispose()
            raise DatabaseUnreachable(f"storage: cannot connect to {self.display_url}: {_first_line(error)}") from None
        except DatabaseUnavailable:
            self.engine.dispose()
            raise
        except Exception as error:  # e.g. sqlite3.DatabaseError: file is not a database
            self.engine.dispose()
            raise NotOurDatabase(f"storage: {self.display_url} cannot be read ({_first_line(error)}); left unchanged") from None
        # Ours, empty, or an Optuna storage (a gns study joins the studies there); nothing else.
        foreign = set() if StudyRow.__tablename__ in tables else tables - optuna_tables() - set(Base.metadata.tables)
        if foreign:
            self.engine.dispose()
            shown = ", ".join(sorted(foreign)[:3]) + (", ..." if len(foreign) > 3 else "")
            raise NotOurDatabase(f"storage: {self.display_url} is another application's database (tables {shown}); left unchanged")
        self.holds_results = StudyRow.__tablename__ in tables  # False: empty, or Optuna's studies only
        if create and existing_file:  # ours: reopen it for writing
            self.engine.dispose()
            self.engine = create_engine(self.url, **engine_options(self.url))
        if create and path is not None:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin_immediate)
        self._optuna: RDBStorage | None = None
        self.schema_version = SCHEMA_VERSION  # an older readable one is read as it is (no version 3 columns)
        if create:
            self._create_schema()
        else:
            self._check_schema_version()

    def _first_look(self) -> set[str]:
        """The database's tables. A writer waits out an outage (a server restarting) within the retry
        window; a reader, or a server that answers with a refusal, fails at once."""

        def look() -> set[str] | OperationalError:
            try:
                return set(inspect(self.engine).get_table_names())
            except OperationalError as error:
                if self.writable and is_outage(error):
                    raise
                return error

        found = retrying(f"connecting to {self.display_url}", look) if self.writable else look()
        if isinstance(found, OperationalError):
            raise found
        return found

    @contextmanager
    def _setup_lock(self) -> Iterator[None]:
        """One writer at a time sets the schema up (a fresh database opened by several drivers at once):
        a PostgreSQL advisory lock, or an flock on the SQLite file's folder (never on the file, whose
        locks are SQLite's own)."""
        path = sqlite_file(self.url)
        if path is not None:
            try:
                folder = os.open(path.parent, os.O_RDONLY)
            except OSError:  # a folder we may write but not list: set up unserialized, as SQLite alone would
                yield
                return
            try:
                fcntl.flock(folder, fcntl.LOCK_EX)
                yield
            finally:
                os.close(folder)  # releases the flock
            return
        with self.engine.connect() as connection:
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({SETUP_LOCK_KEY})")
            try:
                yield
            finally:
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({SETUP_LOCK_KEY})")
                connection.commit()

    @property
    def optuna(self) -> RDBStorage:
        """Optuna's storage on the same database; writers only."""
        if self._optuna is None:
            if not self.writable:
                raise RuntimeError("a read-only ResultsDB has no Optuna storage")
            import optuna
            from optuna.storages import RDBStorage

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self._optuna = RDBStorage(self.url.render_as_string(hide_password=False), engine_kwargs=engine_options(self.url))
        return self._optuna

    def close(self) -> None:
        if self._optuna is not None:
            self._optuna.engine.dispose()
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def _check_schema_version(self) -> int:
        """The database's schema version (SCHEMA_VERSION for a new one); one this release cannot read is refused."""
        if not inspect(self.engine).has_table(SchemaInfo.__tablename__):
            return SCHEMA_VERSION
        with self.session() as session:
            info = session.get(SchemaInfo, 1)
        version = SCHEMA_VERSION if info is None else info.version
        if version not in READABLE_VERSIONS:
            raise DatabaseInputError(
                f"storage: {self.display_url} has results schema version {version}; "
                f"this gradnorm-study reads versions {', '.join(map(str, READABLE_VERSIONS))}"
            )
        self.schema_version = version
        return version

    def _migrate(self, version: int) -> None:
        """Bring a readable older schema up to SCHEMA_VERSION (under the set-up lock): add its columns."""
        for step in range(version + 1, SCHEMA_VERSION + 1):
            existing = {(table, column["name"]) for table in {table for table, _, _ in MIGRATIONS[step]}
                        for column in inspect(self.engine).get_columns(table)}
            with self.engine.begin() as connection:
                for table, column, sql_type in MIGRATIONS[step]:
                    if (table, column) not in existing:
                        connection.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
        self.schema_version = SCHEMA_VERSION

    def _create_schema(self) -> None:
        def create() -> None:
            with self._setup_lock():
                version = self._check_schema_version()
                # Optuna's tables first: an Optuna storage of another schema version is refused before
                # anything of ours is added to it.
                self.optuna  # noqa: B018
                Base.metadata.create_all(self.engine)
                if version < SCHEMA_VERSION:
                    self._migrate(version)
                with self.session() as session:
                    info = session.get(SchemaInfo, 1)
                    if info is None:
                        session.add(SchemaInfo(id=1, version=SCHEMA_VERSION, last_opened_at=_now()))
                    else:
                        info.version = SCHEMA_VERSION
                        info.last_opened_at = _now()

        try:
            retrying(f"setting up {self.display_url}", create)
        except (OperationalError, ProgrammingError) as error:
            raise DatabaseUnreachable(f"storage: cannot write to {self.display_url}: {_first_line(error)}") from None
        except RuntimeError as error:  # Optuna: its tables come from another Optuna version
            raise NotOurDatabase(f"storage: {self.display_url}: {_first_line(error)}; left unchanged") from None
        self.holds_results = True

    # ---- studies -------------------------------------------------------------

    @_retried
    def create_study(self, name: str, kind: str, spec: Mapping[str, Any], planned_trials: int | None = None) -> StudyInfo:
        if self.find_study(name) is not None:
            raise DatabaseInputError(f"study: {name!r} already exists in {self.display_url}")
        self._remove_leftover_optuna_study(name)
        from optuna.study import StudyDirection

        optuna_id = self.optuna.create_new_study([StudyDirection.MINIMIZE], name)
        self.optuna.set_study_user_attr(optuna_id, KIND_ATTR, kind)
        now = _now()
        row = StudyRow(
            name=name, kind=kind, spec=dict(spec), spec_hash=spec_hash(spec), optuna_study_id=optuna_id,
            product_version=product_version(), planned_trials=planned_trials, created_at=now, updated_at=now,
        )
        with self.session() as session:
            session.add(row)
        return _study_info(row)

    def _remove_leftover_optuna_study(self, name: str) -> bool:
        """An Optuna study of this name without our row: left by a create that died half-way.

        Ours (it carries KIND_ATTR): removed. Anything else belongs to an Optuna user sharing this
        storage, even empty, and is refused, untouched (a create that died between making the
        Optuna study and marking it leaves one unmarked: the message says how to remove it).
        """
        try:
            optuna_id = self.optuna.get_study_id_from_name(name)
        except KeyError:
            return False
        if KIND_ATTR not in self.optuna.get_study_user_attrs(optuna_id):
            raise DatabaseInputError(
                f"study: an Optuna study named {name!r}, not made by gradnorm-study, already exists in "
                f"{self.display_url}; left unchanged (choose another name, or remove it with "
                f"optuna delete-study --study-name NAME --storage URL)"
            )
        self.optuna.delete_study(optuna_id)
        return True

    @_retried
    def find_study(self, name: str) -> StudyInfo | None:
        row = self._study_row(name, required=False)
        return None if row is None else _study_info(row)

    @_retried
    def set_planned_trials(self, name: str, count: int) -> None:
        row = self._study_row(name)
        self._update_study(row.id, planned_trials=count)

    @_retried
    def delete_study(self, name: str) -> None:
        row = self._study_row(name, required=False)
        if row is None:
            if self._remove_leftover_optuna_study(name):
                return
            raise NoSuchStudy(f"study: no study named {name!r} in {self.display_url}")
        holder = self._live_holder(row)
        if holder is not None and row.lease_token != self.token:
            raise StudyBusy(f"study {name!r} is being run by {holder.describe()}; stop that driver first")
        with self.session() as session:
            trial_ids = select(TrialRow.id).where(TrialRow.study_id == row.id)
            for table in (TraceRow, MetricRow, TrialTaskRow, RunStateRow):
                session.execute(delete(table).where(table.trial_id.in_(trial_ids)))
            session.execute(delete(TrialRow).where(TrialRow.study_id == row.id))
            session.execute(delete(ProposalRow).where(ProposalRow.study_id == row.id))
            session.execute(delete(StudyRow).where(StudyRow.id == row.id))
        self._remove_leftover_optuna_study(name)

    def _study_row(self, name: str, required: bool = True) -> StudyRow | None:
        row = None
        if self.holds_results:
            with self.session() as session:
                row = session.scalars(select(StudyRow).where(StudyRow.name == name)).one_or_none()
        if row is None and required:
            raise NoSuchStudy(f"study: no study named {name!r} in {self.display_url}")
        return row

    def _update_study(self, study_id: int, **values: Any) -> None:
        with self.session() as session:
            session.execute(update(StudyRow).where(StudyRow.id == study_id).values(**values))

    # ---- the lease: one driver per study --------------------------------------------

    @_retried
    def lease_holder(self, study: str) -> LeaseHolder | None:
        return self._live_holder(self._study_row(study))

    def _live_holder(self, row: StudyRow) -> LeaseHolder | None:
        if row.lease_token is None or _utc(row.lease_expires_at) < _now() or _dead_here(row.lease_holder):
            return None
        return LeaseHolder(row.lease_holder or "?", _utc(row.lease_since), _utc(row.lease_expires_at))

    @_retried
    def acquire_lease(self, study: str) -> None:
        row = self._study_row(study)
        now = _now()
        free = or_(StudyRow.lease_token.is_(None), StudyRow.lease_token == self.token, StudyRow.lease_expires_at < now)
        if self._take_lease(row.id, free, now):
            return
        row = self._study_row(study)
        if row.lease_token is not None and self._live_holder(row) is None:  # its holder died on this host
            dead_holder = StudyRow.lease_token == row.lease_token  # only if nobody took it meanwhile
            if self._take_lease(row.id, dead_holder, now):
                return
            row = self._study_row(study)
        holder = self._live_holder(row)
        described = holder.describe() if holder is not None else "another driver"
        raise StudyBusy(f"study {study!r} is already being run by {described}; wait for it to finish or stop it")

    def _take_lease(self, study_id: int, condition: Any, now: datetime) -> bool:
        with self.session() as session:
            taken = session.execute(
                update(StudyRow)
                .where(StudyRow.id == study_id, condition)
                .values(lease_holder=this_process(), lease_token=self.token, lease_since=now,
                        lease_expires_at=now + timedelta(seconds=LEASE_TTL_S))
            ).rowcount
        return taken == 1

    @_retried
    def renew_lease(self, study: str) -> None:
        row = self._study_row(study)
        now = _now()
        with self.session() as session:
            renewed = session.execute(
                update(StudyRow)
                .where(StudyRow.id == row.id, StudyRow.lease_token == self.token)
                .values(lease_expires_at=now + timedelta(seconds=LEASE_TTL_S))
            ).rowcount
            session.execute(
                update(TrialRow)
                .where(TrialRow.study_id == row.id, TrialRow.claim_token == self.token, ~TrialRow.complete)
                .values(heartbeat_at=now)
            )
        if renewed != 1:
            raise StudyBusy(f"study {study!r}: this driver lost its lease (it went silent past {LEASE_TTL_S:g} s and "
                            "another driver took the study over); it stopped, the trials it recorded are kept")

    def release_lease(self, study: str, retry: bool = True) -> None:
        """Give the study's lease up. retry=False: one try (a driver already failing on the database
        does not wait out the retry window again; an unreleased lease expires by itself)."""

        def release() -> None:
            with self.session() as session:
                session.execute(
                    update(StudyRow)
                    .where(StudyRow.name == study, StudyRow.lease_token == self.token)
                    .values(lease_holder=None, lease_token=None, lease_since=None, lease_expires_at=None)
                )

        if retry:
            retrying(f"release lease {study!r}", release)
        else:
            release()

    # ---- running and recording trials ---------------------------------------------------

    @_retried
    def recorded_keys(self, study: str) -> set[str]:
        row = self._study_row(study)
        with self.session() as session:
            return set(session.scalars(select(TrialRow.key).where(TrialRow.study_id == row.id, TrialRow.complete)))

    @_retried
    def requeue(self, study: str, failed: bool = False) -> int:
        row = self._study_row(study)
        # Run again: trials a dead driver left running or half-recorded (the caller holds the study's
        # lease, so no live writer owns them), and with failed=True the failed ones.
        interrupted = (str(Status.RUNNING), str(Status.RECORDING))
        statuses = [Status.RUNNING, Status.RECORDING] + ([Status.DIVERGED, Status.CRASHED] if failed else [])
        with self.session() as session:
            trials = session.scalars(
                select(TrialRow).where(TrialRow.study_id == row.id, TrialRow.status.in_([str(s) for s in statuses]))
            ).all()
        for trial in trials:
            # a driver killed between creating the Optuna trial and noting its id left it unnoted
            made = self._optuna_trials_of(row.optuna_study_id, trial.key, trial.attempt)
            for optuna_trial_id in {trial.optuna_trial_id, *made} - {None}:
                self._end_stale_optuna_trial(optuna_trial_id)
            # an interrupted trial keeps its checkpoint (the next launch restores it from there); a failed one
            # runs again from step 0
            dropped = (TraceRow, MetricRow, TrialTaskRow) + (() if trial.status in interrupted else (RunStateRow,))
            with self.session() as session:
                for table in dropped:
                    session.execute(delete(table).where(table.trial_id == trial.id))
                session.execute(
                    update(TrialRow).where(TrialRow.id == trial.id).values(
                        status=str(Status.PENDING), complete=False, optuna_trial_id=None, optuna_number=None,
                        claim_token=None, heartbeat_at=None, value=None, validation_value=None,
                        attempt=trial.attempt + 1,
                    )
                )
        return len(trials)

    def _end_stale_optuna_trial(self, optuna_trial_id: int) -> None:
        """A RUNNING Optuna trial whose driver died becomes FAIL (status 'stale'); finished ones stay as they are."""
        from optuna.trial import TrialState

        if not self.optuna.get_trial(optuna_trial_id).state.is_finished():
            self.optuna.set_trial_user_attr(optuna_trial_id, "status", "stale")
            self.optuna.set_trial_state_values(optuna_trial_id, TrialState.FAIL)

    @_retried
    def start_trial(self, study: str, key: str, config: Mapping[str, Any]) -> None:
        row = self._study_row(study)
        claim = self._claim(row.id, key, config, Status.RUNNING, wait=False)
        if claim is None or claim.complete or claim.optuna_trial_id is not None:
            return
        # A retry after an outage may find the trial its first try created (the answer was lost): reuse it.
        request = (row.optuna_study_id, key, claim.attempt)
        made = self._optuna_trials_of(*request) if request in self._trials_requested else []
        if made:
            optuna_trial_id = made[0]
        else:
            frozen = _optuna_trial(key, claim.attempt, config, None, None, None, running=True,
                                   method_choices=self._method_choices(row.optuna_study_id))
            self._trials_requested.add(request)
            optuna_trial_id = self.optuna.create_new_trial(row.optuna_study_id, template_trial=frozen)
        self._set_optuna_ids(claim.id, optuna_trial_id)

    @_retried
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
        """Record one finished trial: a result, or the failure of a trial that crashed.

        `worker` says where it ran. Recording a key that is already recorded
        changes nothing.
        """
        if (result is None) == (failure is None):
            raise ValueError("record: give either a result or a failure")
        study_row = self._study_row(study)
        return self._record_once(study_row, key, config, result, failure, worker, provenance)

    def _record_once(
        self, study_row: StudyRow, key: str, config: Mapping[str, Any], result: TrialResult | None,
        failure: str | None, worker: str | None, provenance: Mapping[str, Any] | None = None,
    ) -> RecordOutcome:
        claim = self._claim(study_row.id, key, config, Status.RECORDING, wait=True)
        if claim.complete:
            return RecordOutcome(claim.id, claim.optuna_trial_id, created=False)
        ok = result is not None and result.ok
        # Our rows first, the Optuna trial's end second: a write that fails for good (a full disk) before
        # the end leaves the Optuna trial unfinished, which the next launch ends as stale and runs again,
        # instead of a COMPLETE Optuna trial whose key would then be trained and completed twice.
        with self.session() as session:
            for table in (TraceRow, MetricRow, TrialTaskRow):  # a half-written earlier attempt
                session.execute(delete(table).where(table.trial_id == claim.id))
            if result is not None:
                _add_result_rows(session, claim.id, result)

        optuna_trial_id = claim.optuna_trial_id
        if optuna_trial_id is None:  # a crash or a lost answer between making the Optuna trial and noting it
            made = self._optuna_trials_of(study_row.optuna_study_id, key, claim.attempt)
            optuna_trial_id = made[0] if made else None
            for twin in made[1:]:  # one Optuna trial per key and attempt: end any twin a retry made
                self._end_stale_optuna_trial(twin)
        if optuna_trial_id is None:
            frozen = _optuna_trial(key, claim.attempt, config, result, failure, worker,
                                   method_choices=self._method_choices(study_row.optuna_study_id))
            optuna_trial_id = self.optuna.create_new_trial(study_row.optuna_study_id, template_trial=frozen)
            self._set_optuna_ids(claim.id, optuna_trial_id)
        elif not self.optuna.get_trial(optuna_trial_id).state.is_finished():  # started RUNNING: finish it
            for name, value in _outcome_attrs(result, failure, worker).items():
                self.optuna.set_trial_user_attr(optuna_trial_id, name, value)
            from optuna.trial import TrialState

            state = TrialState.COMPLETE if ok else TrialState.FAIL
            self.optuna.set_trial_state_values(optuna_trial_id, state, [result.primary_metric] if ok else None)
        number = self.optuna.get_trial_number_from_id(optuna_trial_id)

        status = result.status if result is not None else Status.CRASHED
        with self.session() as session:
            session.execute(
                update(TrialRow)
                .where(TrialRow.id == claim.id)
                .values(
                    optuna_trial_id=optuna_trial_id,
                    optuna_number=number,
                    complete=True,
                    status=str(status),
                    claim_token=None,
                    heartbeat_at=None,
                    value=_finite(result.primary_metric) if ok else None,
                    validation_value=_finite(result.validation_metric) if ok else None,
                    wall_time_s=None if result is None else result.wall_time_s,
                    steps_completed=None if result is None else result.steps_completed,
                    diverged_step=None if result is None else result.diverged_step,
                    failure_reason=failure if result is None else result.failure_reason,
                    worker=worker,
                    provenance=_provenance(provenance, result),
                    selected_step=None if result is None else result.selected_step,
                    resumed_step=None if result is None else result.resumed_step,
                    recorded_at=_now(),
                )
            )
            session.execute(update(StudyRow).where(StudyRow.id == study_row.id).values(updated_at=_now()))
        return RecordOutcome(claim.id, optuna_trial_id, created=True)

    def _claim(self, study_id: int, key: str, config: Mapping[str, Any], status: Status, wait: bool) -> TrialRow | None:
        """The key's row, owned by this writer (or already complete).

        A fresh key is inserted with our token; a pending one, or one left by a
        writer silent for CLAIM_STALE_S, is taken over by a compare-and-set on
        its token. Another writer's live claim: with wait=True we wait for it
        to complete; with wait=False (start_trial) None.
        """
        lookup = select(TrialRow).where(TrialRow.study_id == study_id, TrialRow.key == key)
        now = _now()
        try:
            with self.session() as session:
                row = TrialRow(study_id=study_id, key=key, complete=False, status=str(status), claim_token=self.token,
                               attempt=0, heartbeat_at=now, config=dict(config), recorded_at=now)
                session.add(row)
            return row
        except IntegrityError:  # the key has a row already
            pass
        waited_since = time.monotonic()
        while True:
            with self.session() as session:
                row = session.scalars(lookup).one()
            if row.complete:
                return row
            silent_for = (now - _utc(row.heartbeat_at or row.recorded_at)).total_seconds()
            owner_gone = row.status == Status.PENDING or row.claim_token is None or silent_for > CLAIM_STALE_S
            if row.claim_token == self.token or owner_gone or time.monotonic() - waited_since > CLAIM_STALE_S:
                return self._take_claim(row, status)
            if not wait:
                return None
            time.sleep(CLAIM_POLL_S)
            now = _now()

    def _take_claim(self, row: TrialRow, status: Status) -> TrialRow:
        """Compare-and-set the claim token; if another writer won, wait for it as usual."""
        token_then = TrialRow.claim_token.is_(None) if row.claim_token is None else TrialRow.claim_token == row.claim_token
        with self.session() as session:
            taken = session.execute(
                update(TrialRow)
                .where(TrialRow.id == row.id, token_then, ~TrialRow.complete)
                .values(claim_token=self.token, status=str(status), heartbeat_at=_now())
            ).rowcount
            fresh = session.get(TrialRow, row.id)
        if taken != 1 and not fresh.complete and fresh.claim_token != self.token:
            return self._claim(row.study_id, row.key, row.config, status, wait=True)
        return fresh

    def _set_optuna_ids(self, trial_id: int, optuna_trial_id: int) -> None:
        number = self.optuna.get_trial_number_from_id(optuna_trial_id)
        with self.session() as session:
            session.execute(
                update(TrialRow).where(TrialRow.id == trial_id).values(optuna_trial_id=optuna_trial_id, optuna_number=number)
            )

    def _method_choices(self, optuna_study_id: int) -> tuple[str, ...]:
        """The choices of the `method` param in this Optuna study. Optuna refuses a categorical
        whose choices change within a study, so a study keeps the METHODS of its first trial
        (a release that adds methods must not break a study recorded before it)."""
        if optuna_study_id not in self._method_choices_seen:
            choices = METHODS
            for trial in self.optuna.get_all_trials(optuna_study_id, deepcopy=False):
                if "method" in trial.distributions:
                    choices = tuple(trial.distributions["method"].choices)
                    break
            self._method_choices_seen[optuna_study_id] = choices
        return self._method_choices_seen[optuna_study_id]

    def _optuna_trials_of(self, optuna_study_id: int, key: str, attempt: int) -> list[int]:
        """The Optuna trial ids of `key`'s attempt (oldest first): left by a crash before our rows pointed
        at one, or made twice by a write retried after an outage. Read from Optuna's tables by SQL,
        not by loading every trial of the study."""
        with self.session() as session:
            rows = session.execute(queries.optuna_trials_with_attrs(
                optuna_study_id, {KEY_ATTR: json.dumps(key), ATTEMPT_ATTR: json.dumps(attempt)})).all()
        if attempt == 0:  # trials recorded before the attempt attribute existed have none
            with self.session() as session:
                rows += session.execute(queries.optuna_trials_with_attrs(
                    optuna_study_id, {KEY_ATTR: json.dumps(key)}, without=ATTEMPT_ATTR)).all()
        return sorted({row[0] for row in rows})

    @_retried
    def time_averaged_weights(self, study: str, key: str) -> tuple[float, ...] | None:
        """E_t[w] of a recorded, successful trial (what GradNorm-Static retrains with)."""
        row = self._study_row(study)
        with self.session() as session:
            trial = session.scalars(
                select(TrialRow).where(TrialRow.study_id == row.id, TrialRow.key == key, TrialRow.complete)
            ).one_or_none()
            if trial is None or trial.status != Status.OK:
                return None
            weights = session.scalars(
                select(TrialTaskRow.time_averaged_weight)
                .where(TrialTaskRow.trial_id == trial.id)
                .order_by(TrialTaskRow.task_index)
            ).all()
        return tuple(weights)

    @_retried
    def record_state(self, study: str, key: str, state: bytes) -> None:
        row = self._study_row(study)
        if not isinstance(state, bytes) or len(state) > MAX_STATE_BYTES:
            raise ValueError(f"a run state is bytes of at most {MAX_STATE_BYTES} (got {type(state).__name__})")
        with self.session() as session:
            trial_id = session.scalar(select(TrialRow.id).where(TrialRow.study_id == row.id, TrialRow.key == key))
            if trial_id is None:
                raise KeyError(f"study {study!r} has no trial {key!r} to keep a state for")
            session.execute(delete(RunStateRow).where(RunStateRow.trial_id == trial_id))
            session.add(RunStateRow(trial_id=trial_id, state=state, recorded_at=_now()))

    @_retried
    def run_state(self, study: str, key: str) -> bytes | None:
        return self._state(study, key, TrialRow.complete, TrialRow.status == str(Status.OK))

    @_retried
    def checkpoint(self, study: str, key: str) -> bytes | None:
        return self._state(study, key, ~TrialRow.complete)

    @_retried
    def checkpoint_count(self, study: str) -> int:
        if self.schema_version < 5:
            return 0
        row = self._study_row(study)
        with self.session() as session:
            return session.scalar(
                select(func.count()).select_from(RunStateRow).join(TrialRow, TrialRow.id == RunStateRow.trial_id)
                .where(TrialRow.study_id == row.id, ~TrialRow.complete)
            )

    @_retried
    def wall_times(self, study: str) -> list[float]:
        row = self._study_row(study)
        with self.session() as session:
            times = session.scalars(select(TrialRow.wall_time_s).where(TrialRow.study_id == row.id, TrialRow.complete))
            return [float(t) for t in times if isinstance(t, (int, float)) and math.isfinite(t) and t >= 0]

    def _state(self, study: str, key: str, *conditions: Any) -> bytes | None:
        if self.schema_version < 5:  # states came with version 5
            return None
        row = self._study_row(study)
        with self.session() as session:
            state = session.scalar(
                select(RunStateRow.state).join(TrialRow, TrialRow.id == RunStateRow.trial_id)
                .where(TrialRow.study_id == row.id, TrialRow.key == key, *conditions)
            )
        return bytes(state) if state is not None else None

    @_retried
    def delete_run_states(self, study: str, key: str | None = None) -> int:
        row = self._study_row(study)
        trials = select(TrialRow.id).where(TrialRow.study_id == row.id, *([TrialRow.key == key] if key else []))
        with self.session() as session:
            return session.execute(delete(RunStateRow).where(RunStateRow.trial_id.in_(trials.scalar_subquery()))).rowcount

    @_retried
    def record_proposals(self, study: str, proposals: Iterable[tuple[int, str, int, tuple[float, ...]]]) -> int:
        rows = [(int(seed), str(searcher), int(index), [float(u) for u in draws]) for seed, searcher, index, draws in proposals]
        for seed, searcher, index, draws in rows:
            if not draws or len(draws) > MAX_PROPOSAL_DRAWS or not all(math.isfinite(u) for u in draws) or len(searcher) > 32:
                raise ValueError(f"a proposal is a searcher name and 1 to {MAX_PROPOSAL_DRAWS} finite draws "
                                 f"(got {searcher[:40]!r} #{index}: {draws[:4]})")
        row = self._study_row(study)
        with self.session() as session:
            have = set(session.execute(select(ProposalRow.seed, ProposalRow.searcher, ProposalRow.index)
                                       .where(ProposalRow.study_id == row.id)))
            new = [r for r in rows if r[:3] not in have]
            session.add_all(ProposalRow(study_id=row.id, seed=seed, searcher=searcher, index=index, draws=draws,
                                        recorded_at=_now()) for seed, searcher, index, draws in new)
        return len(new)

    @_retried
    def proposals(self, study: str) -> dict[tuple[int, str, int], tuple[float, ...]]:
        if self.schema_version < 6:  # proposals came with version 6
            return {}
        row = self._study_row(study)
        with self.session() as session:
            rows = session.execute(select(ProposalRow.seed, ProposalRow.searcher, ProposalRow.index, ProposalRow.draws)
                                   .where(ProposalRow.study_id == row.id)).all()
        return {(seed, searcher, index): _draws_read(draws, (seed, searcher, index), self.display_url)
                for seed, searcher, index, draws in rows}

    @_retried
    def note_code_change(self, study: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        row = self._study_row(study)
        changes = self.code_changes(study) + [{"at": _now().isoformat(), "from": dict(before), "to": dict(after)}]
        self._update_study(row.id, code_changes=changes)

    # ---- reading -------------------------------------------------------------------

    @_retried
    def code_fingerprints(self, study: str) -> list[tuple[dict[str, Any], int]]:
        return _distinct_counts(self._provenances(study, "code"))

    @_retried
    def machines(self, study: str) -> list[tuple[dict[str, str], int]]:
        machines = [{name: str(worker.get(name) or NOT_RECORDED)[:128] for name in MACHINE_FIELDS}
                    for worker in self._provenances(study, "worker")]
        return _distinct_counts(machines)

    def _provenances(self, study: str, part: str) -> list[dict[str, Any]]:
        """The `part` of each recorded trial's provenance that holds one (a dict; rows are untrusted)."""
        row = self._study_row(study)
        if self.schema_version < 3:  # recorded before provenance existed
            return []
        with self.session() as session:
            provenances = session.scalars(
                select(TrialRow.provenance).where(TrialRow.study_id == row.id, TrialRow.complete)).all()
        parts = [provenance.get(part) if isinstance(provenance, dict) else None for provenance in provenances]
        return [found for found in parts if isinstance(found, dict)]

    @_retried
    def code_changes(self, study: str) -> list[dict[str, Any]]:
        row = self._study_row(study)
        if self.schema_version < 3:
            return []
        with self.session() as session:
            changes = session.scalar(select(StudyRow.code_changes).where(StudyRow.id == row.id))
        return [c for c in changes if isinstance(c, dict)] if isinstance(changes, list) else []

    @_retried
    def studies(self) -> pd.DataFrame:
        with self.session() as session:
            return queries.studies(session if self.holds_results else None)

    @_retried
    def runs(self, study: str) -> pd.DataFrame:
        row = self._study_row(study)
        with self.session() as session:
            return queries.runs(session, row.id, with_version_4=self.schema_version >= 4,
                                with_version_5=self.schema_version >= 5)

    @_retried
    def traces(self, study: str, keys: list[str] | None = None) -> pd.DataFrame:
        row = self._study_row(study)
        with self.session() as session:
            return queries.traces(session, row.id, keys, with_validation=self.schema_version >= 4)

    @_retried
    def best_value(self, study: str) -> float | None:
        """The lowest primary metric among the study's successful trials."""
        row = self._study_row(study)
        with self.session() as session:
            return queries.best_value(session, row.id)

    @_retried
    def metric_directions(self, study: str) -> dict[str, bool]:
        """Each test metric of the study and whether higher is better."""
        row = self._study_row(study)
        with self.session() as session:
            return queries.metric_directions(session, row.id)

    @_retried
    def progress(self, study: str) -> dict[str, int]:
        row = self._study_row(study)
        with self.session() as session:
            return queries.status_counts(session, row.id)


def _add_result_rows(session: Session, trial_id: int, result: TrialResult) -> None:
    tasks = result.task_names
    session.execute(
        TrialTaskRow.__table__.insert(),
        [
            {
                "trial_id": trial_id,
                "task_index": i,
                "task": name,
                "initial_loss": _finite(_at(result.initial_losses, i)),
                "final_test_loss": _finite(_at(result.final_test_losses, i)),
                "final_validation_loss": _finite(_at(result.final_validation_losses, i)),
                "final_weight": _finite(_at(result.final_weights, i)),
                "time_averaged_weight": _finite(_at(result.time_averaged_weights, i)),
            }
            for i, name in enumerate(tasks)
        ],
    )
    index = {name: i for i, name in enumerate(tasks)}
    metric_rows = [
        {
            "trial_id": trial_id,
            "task_index": index[m.task],
            "split": split,
            "metric": m.metric,
            "value": _finite(m.value),
            "higher_is_better": m.higher_is_better,
        }
        for split, metrics in (("test", result.test_metrics), ("validation", result.validation_metrics),
                               ("training", stuck_metrics(result)))
        for m in metrics
    ]
    if metric_rows:
        session.execute(MetricRow.__table__.insert(), metric_rows)
    trace_rows = [
        {
            "trial_id": trial_id,
            "step": point.step,
            "task_index": i,
            "train_loss": _finite(point.train_losses[i]),
            "test_loss": _finite(point.test_losses[i]),
            "weight": _finite(point.weights[i]),
            "grad_norm": None if point.grad_norms is None else _finite(point.grad_norms[i]),
            "validation_loss": None if point.validation_losses is None else _finite(point.validation_losses[i]),
        }
        for point in result.trace
        for i in range(len(tasks))
    ]
    if trace_rows:
        session.execute(TraceRow.__table__.insert(), trace_rows)


def _distinct_counts(items: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """Each distinct dict among `items` and how often it occurs, in the order first seen."""
    counts: dict[str, tuple[dict[str, Any], int]] = {}
    for item in items:
        seen = counts.get(canonical_hash(item), (item, 0))
        counts[canonical_hash(item)] = (item, seen[1] + 1)
    return list(counts.values())


def _provenance(provenance: Mapping[str, Any] | None, result: TrialResult | None) -> dict[str, Any] | None:
    """What a trial trained with: the driver's `provenance` (code, versions) and the worker's environment."""
    if provenance is None and (result is None or not result.environment):
        return None
    merged = dict(provenance or {})
    if result is not None and result.environment:
        merged["worker"] = dict(result.environment)
    return merged


def _outcome_attrs(result: TrialResult | None, failure: str | None, worker: str | None) -> dict[str, Any]:
    """Optuna user attributes that describe how a trial ended."""
    attrs: dict[str, Any] = {}
    if worker is not None:
        attrs["worker"] = worker
    if result is not None:
        attrs["status"] = str(result.status)
        attrs["wall_time_s"] = result.wall_time_s
        if result.ok and math.isfinite(result.validation_metric):
            attrs["validation_value"] = result.validation_metric
        if not result.ok:
            attrs["failure_reason"] = result.failure_reason
    else:
        attrs["status"] = str(Status.CRASHED)
        attrs["failure_reason"] = failure
    return attrs


def _optuna_trial(
    key: str, attempt: int, config: Mapping[str, Any], result: TrialResult | None, failure: str | None, worker: str | None,
    running: bool = False, method_choices: tuple[str, ...] = METHODS,
) -> optuna.trial.FrozenTrial:
    """Params (method, seed, budget, alpha, task, w_i), value and state for Optuna.

    Numeric params get a one-point distribution: the value was chosen by the
    study's plan, not sampled. The workload is a user attribute (a name, which
    Optuna's fixed categorical choices could not hold across studies).
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState

    params: dict[str, Any] = {}
    distributions: dict[str, Any] = {}
    if config["method"] in method_choices:  # else the method is in the `config` attribute only
        params["method"], distributions["method"] = config["method"], CategoricalDistribution(method_choices)
    for name in ("seed", "steps", "batch_size", "task"):
        if config.get(name) is not None:
            params[name] = int(config[name])
            distributions[name] = IntDistribution(params[name], params[name])
    for name in ("lr", "alpha"):
        if config.get(name) is not None:
            params[name] = float(config[name])
            distributions[name] = FloatDistribution(params[name], params[name])
    if config.get("weights") is not None:
        total = sum(config["weights"])
        for i, weight in enumerate(config["weights"]):  # as trained: normalized to sum to T
            params[f"w_{i}"] = weight * len(config["weights"]) / total
            distributions[f"w_{i}"] = FloatDistribution(params[f"w_{i}"], params[f"w_{i}"])
    user_attrs: dict[str, Any] = {
        KEY_ATTR: key,
        ATTEMPT_ATTR: attempt,
        "workload": config["workload"],
        "config": json.dumps(dict(config), sort_keys=True),
    }
    if running:
        return optuna.trial.create_trial(
            state=TrialState.RUNNING, params=params, distributions=distributions,
            user_attrs={**user_attrs, "status": str(Status.RUNNING)},
        )
    ok = result is not None and result.ok
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE if ok else TrialState.FAIL,
        value=result.primary_metric if ok else None,
        params=params,
        distributions=distributions,
        user_attrs={**user_attrs, **_outcome_attrs(result, failure, worker)},
    )


@functools.cache
def optuna_tables() -> frozenset[str]:
    """The tables Optuna's RDB storage makes (its SQLAlchemy models, and alembic's version table)."""
    from optuna.storages._rdb import models  # the one place that knows Optuna's private layout

    return frozenset(models.BaseModel.metadata.tables) | {"alembic_version"}


def _prepare_sqlite_file(path: Path, existing: bool, display_url: str) -> None:
    """A writer's SQLite file before its first look: made in one step when absent or empty, its hot
    journal (a killed writer's) rolled back when it has one."""
    try:
        if not existing:
            if path.exists():  # SQLite's empty database (0 bytes): replace it by a WAL one
                path.unlink()
            create_wal_file(path)
        elif has_hot_journal(path):
            recover_hot_journal(path)
    except (OSError, sqlite3.Error) as error:
        raise DatabaseUnreachable(f"storage: cannot write to {display_url}: {error}") from None


def _study_info(row: StudyRow) -> StudyInfo:
    return StudyInfo(row.name, row.kind, row.spec, row.spec_hash, row.planned_trials, row.created_at, row.updated_at,
                     row.product_version)


def _sqlite_pragmas(connection, _record) -> None:
    # Writers only (readers open the file read-only and change nothing). WAL lets
    # readers work while the driver writes; the busy timeout covers the rest.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # Transactions are begun by _sqlite_begin_immediate, not by the driver.
    connection.isolation_level = None


def _sqlite_begin_immediate(connection) -> None:
    # A writer's transaction takes the write lock at BEGIN: a read that turns into a
    # write would otherwise fail at once ("database is locked") when the lease
    # thread wrote in between, instead of waiting out the busy timeout.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _dead_here(holder: str | None) -> bool:
    """Whether a lease holder ("host pid N") is a process of this host that no longer exists."""
    host, _, pid = (holder or "").rpartition(" pid ")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _draws_read(draws: Any, where: tuple[int, str, int], display_url: str) -> tuple[float, ...]:
    """A recorded proposal's draws (untrusted): a list of finite numbers, as floats."""
    good = (isinstance(draws, list) and 0 < len(draws) <= MAX_PROPOSAL_DRAWS
            and all(isinstance(u, (int, float)) and not isinstance(u, bool) and math.isfinite(u) for u in draws))
    if not good:
        raise DatabaseInputError(f"storage: {display_url} holds a damaged search proposal (seed {where[0]}, "
                                 f"{where[1][:32]} #{where[2]}): its draws are not a list of finite numbers")
    return tuple(float(u) for u in draws)


def _at(values: tuple[float, ...], index: int) -> float | None:
    return values[index] if index < len(values) else None


def stuck_metrics(result: TrialResult) -> list[TaskMetric]:
    """The step each task was taken out of GradNorm's update, as a per-task training-split number."""
    return [TaskMetric(task, "stuck_at_step", float(step), False)
            for task, step in zip(result.task_names, result.stuck_at_step) if step is not None]


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(moment: datetime | None) -> datetime:
    """SQLite hands back naive datetimes (we always store UTC); PostgreSQL aware ones."""
    if moment is None:
        return datetime.min.replace(tzinfo=timezone.utc)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _first_line(error: Exception) -> str:
    text_ = str(getattr(error, "orig", None) or error).strip()
    return text_.splitlines()[0] if text_ else type(error).__name__
