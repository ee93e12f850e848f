"""The results database: one object over a URL, Optuna's storage and our tables.

The driver is the only writer. Recording is idempotent by trial key: a key is
claimed in `gns_trials` (unique per study) before its Optuna trial exists, so
a retry, a relaunch or a crash between the two steps still ends with exactly
one Optuna trial and one set of our rows per key.
"""

from __future__ import annotations

import hashlib
import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Iterator, Mapping

import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import RDBStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState
from sqlalchemy import create_engine, delete, event, inspect, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from db import queries
from db.errors import DatabaseInputError, DatabaseUnreachable, NoSuchStudy
from db.schema import SCHEMA_VERSION, Base, MetricRow, SchemaInfo, StudyRow, TraceRow, TrialRow, TrialTaskRow
from db.urls import DEFAULT_URL, display, engine_options, parse_url, sqlite_file
from workers.config import METHODS
from workers.results import TrialResult

KEY_ATTR = "key"  # Optuna user attribute holding our trial key
STATUS_CRASHED = "crashed"

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class StudyInfo:
    name: str
    kind: str
    spec: dict
    spec_hash: str
    created_at: datetime
    updated_at: datetime
    product_version: str


@dataclass(frozen=True)
class RecordOutcome:
    trial_id: int  # gns_trials.id
    optuna_trial_id: int
    created: bool  # False when the key was already recorded


def spec_hash(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def product_version() -> str:
    try:
        return metadata.version("gradnorm-study")
    except metadata.PackageNotFoundError:
        return "unknown"


class ResultsDB:
    """Open (and with create=True, set up) the results database at `url`.

    create=False is for readers: a missing SQLite file or a database without
    our tables is an error, and nothing is written.
    """

    def __init__(self, url: str = DEFAULT_URL, create: bool = True) -> None:
        self.url = parse_url(url)
        self.display_url = display(self.url)
        path = sqlite_file(self.url)
        if path is not None:
            if create and not path.parent.exists():
                raise DatabaseUnreachable(f"storage: directory {str(path.parent)!r} for {self.display_url} does not exist")
            if not create and not path.exists():
                raise DatabaseUnreachable(f"storage: no database at {self.display_url} (run a study first, or pass --storage)")
        self.engine = create_engine(self.url, **engine_options(self.url))
        if path is not None:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            with self.engine.connect() as connection:
                connection.execute(text("select 1"))
        except OperationalError as error:
            raise DatabaseUnreachable(f"storage: cannot connect to {self.display_url}: {_first_line(error)}") from None
        if create:
            self._create_schema()
        elif not inspect(self.engine).has_table(StudyRow.__tablename__):
            raise DatabaseInputError(f"storage: {self.display_url} holds no gradnorm-study results")
        self._check_schema_version()
        self.optuna = RDBStorage(
            self.url.render_as_string(hide_password=False),
            engine_kwargs=engine_options(self.url),
            skip_table_creation=not create,
        )

    def close(self) -> None:
        self.optuna.engine.dispose()
        self.engine.dispose()

    def __enter__(self) -> "ResultsDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def _check_schema_version(self) -> None:
        with self.session() as session:
            info = session.get(SchemaInfo, 1)
        if info is not None and info.version != SCHEMA_VERSION:
            raise DatabaseInputError(
                f"storage: {self.display_url} has results schema version {info.version}; "
                f"this gradnorm-study reads version {SCHEMA_VERSION}"
            )

    def _create_schema(self) -> None:
        try:
            Base.metadata.create_all(self.engine)
            with self.session() as session:  # also proves that we can write
                info = session.get(SchemaInfo, 1)
                if info is None:
                    session.add(SchemaInfo(id=1, version=SCHEMA_VERSION, last_opened_at=_now()))
                else:
                    info.last_opened_at = _now()
        except (OperationalError, ProgrammingError) as error:
            raise DatabaseUnreachable(f"storage: cannot write to {self.display_url}: {_first_line(error)}") from None

    # ---- studies -------------------------------------------------------------

    def create_study(self, name: str, kind: str, spec: Mapping[str, Any]) -> StudyInfo:
        if self.find_study(name) is not None:
            raise DatabaseInputError(f"study: {name!r} already exists in {self.display_url}")
        try:
            optuna_id = self.optuna.create_new_study([StudyDirection.MINIMIZE], name)
        except optuna.exceptions.DuplicatedStudyError:
            raise DatabaseInputError(f"study: an Optuna study named {name!r} already exists in {self.display_url}") from None
        self.optuna.set_study_user_attr(optuna_id, "gns_kind", kind)
        now = _now()
        row = StudyRow(
            name=name,
            kind=kind,
            spec=dict(spec),
            spec_hash=spec_hash(spec),
            optuna_study_id=optuna_id,
            product_version=product_version(),
            created_at=now,
            updated_at=now,
        )
        with self.session() as session:
            session.add(row)
        return _study_info(row)

    def find_study(self, name: str) -> StudyInfo | None:
        row = self._study_row(name, required=False)
        return None if row is None else _study_info(row)

    def delete_study(self, name: str) -> None:
        row = self._study_row(name)
        with self.session() as session:
            trial_ids = select(TrialRow.id).where(TrialRow.study_id == row.id)
            for table in (TraceRow, MetricRow, TrialTaskRow):
                session.execute(delete(table).where(table.trial_id.in_(trial_ids)))
            session.execute(delete(TrialRow).where(TrialRow.study_id == row.id))
            session.execute(delete(StudyRow).where(StudyRow.id == row.id))
        self.optuna.delete_study(row.optuna_study_id)

    def _study_row(self, name: str, required: bool = True) -> StudyRow | None:
        with self.session() as session:
            row = session.scalars(select(StudyRow).where(StudyRow.name == name)).one_or_none()
        if row is None and required:
            raise NoSuchStudy(f"study: no study named {name!r} in {self.display_url}")
        return row

    # ---- recording ---------------------------------------------------------------

    def recorded_keys(self, study: str) -> set[str]:
        row = self._study_row(study)
        with self.session() as session:
            return set(session.scalars(select(TrialRow.key).where(TrialRow.study_id == row.id, TrialRow.complete)))

    def record(
        self,
        study: str,
        key: str,
        config: Mapping[str, Any],
        result: TrialResult | None = None,
        failure: str | None = None,
        worker: str | None = None,
    ) -> RecordOutcome:
        """Record one finished trial: a result, or the failure of a trial that crashed.

        `worker` says where it ran. Recording a key that is already recorded
        changes nothing.
        """
        if (result is None) == (failure is None):
            raise ValueError("record: give either a result or a failure")
        study_row = self._study_row(study)
        claim, fresh = self._claim(study_row.id, key, config)
        if claim.complete:
            return RecordOutcome(claim.id, claim.optuna_trial_id, created=False)

        # An unfinished claim from an earlier attempt may have left its Optuna trial behind.
        optuna_trial_id = None if fresh else self._find_optuna_trial(study_row.optuna_study_id, key)
        if optuna_trial_id is None:
            frozen = _optuna_trial(key, config, result, failure, worker)
            optuna_trial_id = self.optuna.create_new_trial(study_row.optuna_study_id, template_trial=frozen)
        number = self.optuna.get_trial_number_from_id(optuna_trial_id)

        status = result.status if result is not None else STATUS_CRASHED
        with self.session() as session:
            for table in (TraceRow, MetricRow, TrialTaskRow):  # a half-written earlier attempt
                session.execute(delete(table).where(table.trial_id == claim.id))
            if result is not None:
                _add_result_rows(session, claim.id, result)
            session.execute(
                update(TrialRow)
                .where(TrialRow.id == claim.id)
                .values(
                    optuna_trial_id=optuna_trial_id,
                    optuna_number=number,
                    complete=True,
                    status=status,
                    value=_finite(result.primary_metric) if result is not None and result.ok else None,
                    wall_time_s=None if result is None else result.wall_time_s,
                    steps_completed=None if result is None else result.steps_completed,
                    diverged_step=None if result is None else result.diverged_step,
                    failure_reason=failure if result is None else result.failure_reason,
                    worker=worker,
                    recorded_at=_now(),
                )
            )
            session.execute(update(StudyRow).where(StudyRow.id == study_row.id).values(updated_at=_now()))
        return RecordOutcome(claim.id, optuna_trial_id, created=True)

    def _claim(self, study_id: int, key: str, config: Mapping[str, Any]) -> tuple[TrialRow, bool]:
        """The key's row and whether this call inserted it (not yet complete)."""
        lookup = select(TrialRow).where(TrialRow.study_id == study_id, TrialRow.key == key)
        with self.session() as session:
            existing = session.scalars(lookup).one_or_none()
        if existing is not None:
            return existing, False
        try:
            with self.session() as session:
                row = TrialRow(
                    study_id=study_id,
                    key=key,
                    complete=False,
                    status="recording",
                    config=dict(config),
                    recorded_at=_now(),
                )
                session.add(row)
            return row, True
        except IntegrityError:  # claimed meanwhile by another writer
            with self.session() as session:
                return session.scalars(lookup).one(), False

    def _find_optuna_trial(self, optuna_study_id: int, key: str) -> int | None:
        """An Optuna trial already carrying `key` (left by a crash before our rows were written)."""
        for trial in self.optuna.get_all_trials(optuna_study_id, deepcopy=False):
            if trial.user_attrs.get(KEY_ATTR) == key:
                return self.optuna.get_trial_id_from_study_id_trial_number(optuna_study_id, trial.number)
        return None

    def time_averaged_weights(self, study: str, key: str) -> tuple[float, ...] | None:
        """E_t[w] of a recorded, successful trial (what GradNorm-Static retrains with)."""
        row = self._study_row(study)
        with self.session() as session:
            trial = session.scalars(
                select(TrialRow).where(TrialRow.study_id == row.id, TrialRow.key == key, TrialRow.complete)
            ).one_or_none()
            if trial is None or trial.status != "ok":
                return None
            weights = session.scalars(
                select(TrialTaskRow.time_averaged_weight)
                .where(TrialTaskRow.trial_id == trial.id)
                .order_by(TrialTaskRow.task_index)
            ).all()
        return tuple(weights)

    # ---- reading -------------------------------------------------------------------

    def studies(self) -> pd.DataFrame:
        with self.session() as session:
            return queries.studies(session)

    def runs(self, study: str) -> pd.DataFrame:
        row = self._study_row(study)
        with self.session() as session:
            return queries.runs(session, row.id)

    def traces(self, study: str, keys: list[str] | None = None) -> pd.DataFrame:
        row = self._study_row(study)
        with self.session() as session:
            return queries.traces(session, row.id, keys)

    def best_value(self, study: str) -> float | None:
        """The lowest primary metric among the study's successful trials."""
        row = self._study_row(study)
        with self.session() as session:
            return queries.best_value(session, row.id)

    def metric_directions(self, study: str) -> dict[str, bool]:
        """Each test metric of the study and whether higher is better."""
        row = self._study_row(study)
        with self.session() as session:
            return queries.metric_directions(session, row.id)

    def progress(self, study: str) -> dict[str, int]:
        """How many recorded trials a study has, by status."""
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
                "final_weight": _finite(_at(result.final_weights, i)),
                "time_averaged_weight": _finite(_at(result.time_averaged_weights, i)),
            }
            for i, name in enumerate(tasks)
        ],
    )
    if result.test_metrics:
        index = {name: i for i, name in enumerate(tasks)}
        session.execute(
            MetricRow.__table__.insert(),
            [
                {
                    "trial_id": trial_id,
                    "task_index": index[m.task],
                    "metric": m.metric,
                    "value": _finite(m.value),
                    "higher_is_better": m.higher_is_better,
                }
                for m in result.test_metrics
            ],
        )
    trace_rows = [
        {
            "trial_id": trial_id,
            "step": point.step,
            "task_index": i,
            "train_loss": _finite(point.train_losses[i]),
            "test_loss": _finite(point.test_losses[i]),
            "weight": _finite(point.weights[i]),
            "grad_norm": None if point.grad_norms is None else _finite(point.grad_norms[i]),
        }
        for point in result.trace
        for i in range(len(tasks))
    ]
    if trace_rows:
        session.execute(TraceRow.__table__.insert(), trace_rows)


def _optuna_trial(
    key: str, config: Mapping[str, Any], result: TrialResult | None, failure: str | None, worker: str | None
) -> optuna.trial.FrozenTrial:
    """Params (method, seed, budget, alpha, task, w_i), value and state for Optuna.

    Numeric params get a one-point distribution: the value was chosen by the
    study's plan, not sampled. The workload is a user attribute (a name, which
    Optuna's fixed categorical choices could not hold across studies).
    """
    params: dict[str, Any] = {"method": config["method"]}
    distributions: dict[str, Any] = {"method": CategoricalDistribution(METHODS)}
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
        "workload": config["workload"],
        "config": json.dumps(dict(config), sort_keys=True),
    }
    if worker is not None:
        user_attrs["worker"] = worker
    ok = result is not None and result.ok
    if result is not None:
        user_attrs["status"] = result.status
        user_attrs["wall_time_s"] = result.wall_time_s
        if not result.ok:
            user_attrs["failure_reason"] = result.failure_reason
    else:
        user_attrs["status"] = STATUS_CRASHED
        user_attrs["failure_reason"] = failure
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE if ok else TrialState.FAIL,
        value=result.primary_metric if ok else None,
        params=params,
        distributions=distributions,
        user_attrs=user_attrs,
    )


def _study_info(row: StudyRow) -> StudyInfo:
    return StudyInfo(row.name, row.kind, row.spec, row.spec_hash, row.created_at, row.updated_at, row.product_version)


def _sqlite_pragmas(connection, _record) -> None:
    # WAL lets readers work while the driver writes; the busy timeout covers the rest.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _at(values: tuple[float, ...], index: int) -> float | None:
    return values[index] if index < len(values) else None


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _first_line(error: Exception) -> str:
    return str(getattr(error, "orig", error)).strip().splitlines()[0]
