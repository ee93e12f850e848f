"""Our tables, beside Optuna's in the same database.

Optuna's `studies`/`trials` hold what the dashboard and `optuna.load_study`
show (params, value, state, the trial key as a user attribute). Ours hold one
row per recorded trial key (the exactly-once guard and a copy of the state and
value for fast reads), per-task results, and the step traces, all keyed to
`gns_trials.id`, which points at Optuna's trial by `optuna_trial_id`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_VERSION = 6  # raise when the tables change; see MIGRATIONS for what a writer adds to an older one
# What each version added: (table, column, SQL type). A writer adds them to an older database
# (ALTER TABLE ... ADD COLUMN, nullable); a reader of an older one never selects them (they are
# deferred), so results recorded before still read without a write.
MIGRATIONS = {
    3: (("gns_trials", "provenance", "JSON"), ("gns_studies", "code_changes", "JSON")),
    4: (("gns_traces", "validation_loss", "FLOAT"), ("gns_trials", "selected_step", "INTEGER")),
    5: (("gns_trials", "resumed_step", "INTEGER"),),  # and the gns_run_states table (create_all makes it)
    6: (),  # the gns_proposals table (create_all makes it)
}
READABLE_VERSIONS = (2, 3, 4, 5, 6)


class Base(DeclarativeBase):
    pass


class SchemaInfo(Base):
    __tablename__ = "gns_schema"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    last_opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StudyRow(Base):
    __tablename__ = "gns_studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(512), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict] = mapped_column(JSON)  # the spec that made the study, as loaded
    spec_hash: Mapped[str] = mapped_column(String(64))
    optuna_study_id: Mapped[int] = mapped_column(Integer)
    product_version: Mapped[str] = mapped_column(String(64))
    planned_trials: Mapped[int | None] = mapped_column(Integer, nullable=True)  # as of the last launch
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The study lease: one driver at a time. Taken by an atomic conditional UPDATE.
    lease_holder: Mapped[str | None] = mapped_column(String(256), nullable=True)  # "host pid N"
    lease_token: Mapped[str | None] = mapped_column(String(36), nullable=True)
    lease_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Version 3: each --allow-code-change relaunch, {at, from, to} (study.provenance fingerprints).
    code_changes: Mapped[list | None] = mapped_column(JSON, nullable=True, deferred=True)


class TrialRow(Base):
    __tablename__ = "gns_trials"
    __table_args__ = (UniqueConstraint("study_id", "key", name="uq_gns_trials_study_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("gns_studies.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    # Null between claiming the key and Optuna's trial existing (a crash there is repaired on retry).
    optuna_trial_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    optuna_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)  # a final outcome is recorded
    status: Mapped[str] = mapped_column(String(16))  # a records.Status value
    # The writer that owns the key until it is complete; a second writer waits for it.
    claim_token: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # Raised each time the key is re-queued; its Optuna trials of earlier attempts stay as history.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # while running
    value: Mapped[float | None] = mapped_column(Float, nullable=True)  # the primary metric; null unless ok
    validation_value: Mapped[float | None] = mapped_column(Float, nullable=True)  # the same on the validation split
    config: Mapped[dict] = mapped_column(JSON)
    wall_time_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    steps_completed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    diverged_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(256), nullable=True)  # where it ran, e.g. a Ray node
    # Version 3: the code fingerprint it trained with, the driver's and the worker's versions and device.
    provenance: Mapped[dict | None] = mapped_column(JSON, nullable=True, deferred=True)
    # Version 4: select: best_validation, the logged step its final numbers were read at.
    selected_step: Mapped[int | None] = mapped_column(Integer, nullable=True, deferred=True)
    # Version 5: continued from a saved state at this step (halving's promotions); null: from step 0.
    resumed_step: Mapped[int | None] = mapped_column(Integer, nullable=True, deferred=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TrialTaskRow(Base):
    """Per-task end-of-run numbers: L_i(0), final test loss, final and time-averaged w_i."""

    __tablename__ = "gns_trial_tasks"

    trial_id: Mapped[int] = mapped_column(ForeignKey("gns_trials.id", ondelete="CASCADE"), primary_key=True)
    task_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(128))
    initial_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    final_test_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    final_validation_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    final_weight: Mapped[float | None] = mapped_column(Float, nullable=True)
    time_averaged_weight: Mapped[float | None] = mapped_column(Float, nullable=True)


class MetricRow(Base):
    __tablename__ = "gns_task_metrics"

    trial_id: Mapped[int] = mapped_column(ForeignKey("gns_trials.id", ondelete="CASCADE"), primary_key=True)
    task_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    split: Mapped[str] = mapped_column(String(16), primary_key=True)  # test | validation
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    higher_is_better: Mapped[bool] = mapped_column(Boolean)


class TraceRow(Base):
    """One task's numbers at one logged step of one trial."""

    __tablename__ = "gns_traces"

    trial_id: Mapped[int] = mapped_column(ForeignKey("gns_trials.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    train_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    test_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    weight: Mapped[float | None] = mapped_column(Float, nullable=True)
    grad_norm: Mapped[float | None] = mapped_column(Float, nullable=True)
    validation_loss: Mapped[float | None] = mapped_column(Float, nullable=True, deferred=True)  # version 4


class RunStateRow(Base):
    """A recorded run's saved state (workers.run_state.RunState as bytes), kept while a longer run
    may still continue from it (a halving rung's runs); deleted when its study has nothing left to run."""

    __tablename__ = "gns_run_states"

    trial_id: Mapped[int] = mapped_column(ForeignKey("gns_trials.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProposalRow(Base):
    """A search's proposal, recorded by the driver before its run trains: the draws a replay reuses
    (study.searchers), so that a relaunch or a report on another machine gives back the same runs."""

    __tablename__ = "gns_proposals"

    study_id: Mapped[int] = mapped_column(ForeignKey("gns_studies.id", ondelete="CASCADE"), primary_key=True)
    seed: Mapped[int] = mapped_column(Integer, primary_key=True)
    searcher: Mapped[str] = mapped_column(String(32), primary_key=True)
    index: Mapped[int] = mapped_column("idx", Integer, primary_key=True)
    draws: Mapped[list] = mapped_column(JSON)  # u before scaling, one per task
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


Index("ix_gns_trials_study_status", TrialRow.study_id, TrialRow.status)
