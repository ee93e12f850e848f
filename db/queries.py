"""Reads that return DataFrames: one row per study, per run, or per (run, step, task).

Column names for per-task values are `<quantity>.<task>`, e.g. `test_loss.task0`,
`time_averaged_weight.digit`, `accuracy.digit` (test set), `validation_accuracy.digit`. Runs and traces hold recorded
trials only (a final outcome); `status_counts` also counts running ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Select, and_, case, column, func, null, select, table
from sqlalchemy.orm import Session

from db.schema import MetricRow, StudyRow, TraceRow, TrialRow, TrialTaskRow
from records import Status

if TYPE_CHECKING:
    import pandas as pd

OK = str(Status.OK)

# Config fields shown as run columns, in this order.
CONFIG_COLUMNS = ("method", "workload", "seed", "alpha", "task", "steps", "batch_size", "lr", "weights_from",
                  "balancer_lr", "weight_update")
TASK_QUANTITIES = {
    "initial_loss": "initial_loss",
    "final_test_loss": "test_loss",
    "final_validation_loss": "validation_loss",
    "final_weight": "final_weight",
    "time_averaged_weight": "time_averaged_weight",
}


STUDY_COLUMNS = ["study", "kind", "trials", "ok", "failed", "created", "updated"]


def studies(session: Session | None) -> pd.DataFrame:
    """One row per study; None: a database without our tables (empty, or Optuna's studies only)."""
    import pandas as pd  # here: the reads that need no DataFrame (status, delete) skip it

    rows = [] if session is None else _study_rows(session)
    return pd.DataFrame(rows, columns=STUDY_COLUMNS).astype({"trials": "int64", "ok": "int64", "failed": "int64"})


def _study_rows(session: Session) -> list:
    counts = (
        select(
            TrialRow.study_id,
            func.count().label("trials"),
            func.sum(case((TrialRow.status == OK, 1), else_=0)).label("ok"),
            func.sum(case((TrialRow.status != OK, 1), else_=0)).label("failed"),
        )
        .where(TrialRow.complete)
        .group_by(TrialRow.study_id)
        .subquery()
    )
    return session.execute(
        select(
            StudyRow.name,
            StudyRow.kind,
            func.coalesce(counts.c.trials, 0),
            func.coalesce(counts.c.ok, 0),
            func.coalesce(counts.c.failed, 0),
            StudyRow.created_at,
            StudyRow.updated_at,
        )
        .outerjoin(counts, counts.c.study_id == StudyRow.id)
        .order_by(StudyRow.created_at)
    ).all()


def status_counts(session: Session, study_id: int) -> dict[str, int]:
    """Trial keys by status: recorded ones (ok, diverged, crashed) and those running or pending."""
    rows = session.execute(
        select(TrialRow.status, func.count()).where(TrialRow.study_id == study_id).group_by(TrialRow.status)
    ).all()
    return {status: int(count) for status, count in rows}


def best_value(session: Session, study_id: int) -> float | None:
    return session.scalar(
        select(func.min(TrialRow.value)).where(TrialRow.study_id == study_id, TrialRow.complete, TrialRow.status == OK)
    )


def metric_directions(session: Session, study_id: int) -> dict[str, bool]:
    rows = session.execute(
        select(MetricRow.metric, MetricRow.higher_is_better)
        .join(TrialRow, TrialRow.id == MetricRow.trial_id)
        .where(TrialRow.study_id == study_id, MetricRow.split == "test")
        .distinct()
    ).all()
    return {metric: bool(higher) for metric, higher in rows}


def runs(session: Session, study_id: int, with_version_4: bool = True, with_version_5: bool = True) -> pd.DataFrame:
    """One row per recorded run: identity, state, config, value, then per-task columns.

    `selected_step` (version 4) is the step a best-validation run was read at, `resumed_step`
    (version 5) the step a continued run went on from; empty in an older database.
    """
    import pandas as pd  # here: the reads that need no DataFrame (status, delete) skip it

    trials = session.execute(
        select(
            TrialRow.id,
            TrialRow.key,
            TrialRow.optuna_number,
            TrialRow.status,
            TrialRow.value,
            TrialRow.validation_value,
            TrialRow.config,
            TrialRow.wall_time_s,
            TrialRow.steps_completed,
            TrialRow.diverged_step,
            TrialRow.failure_reason,
            TrialRow.worker,
            TrialRow.selected_step if with_version_4 else null().label("selected_step"),
            TrialRow.resumed_step if with_version_5 else null().label("resumed_step"),
        )
        .where(TrialRow.study_id == study_id, TrialRow.complete)
        .order_by(TrialRow.optuna_number)
    ).all()
    base = pd.DataFrame(
        [
            {
                "trial_id": t.id,
                "key": t.key,
                "number": t.optuna_number,
                "state": "COMPLETE" if t.status == OK else "FAIL",
                "status": t.status,
                "value": t.value,
                "validation_value": t.validation_value,
                **{name: t.config.get(name) for name in CONFIG_COLUMNS},
                "wall_time_s": t.wall_time_s,
                "steps_completed": t.steps_completed,
                "selected_step": t.selected_step,
                "resumed_step": t.resumed_step,
                "diverged_step": t.diverged_step,
                "failure_reason": t.failure_reason,
                "worker": t.worker,
            }
            for t in trials
        ],
        columns=["trial_id", "key", "number", "state", "status", "value", "validation_value", *CONFIG_COLUMNS,
                 "wall_time_s", "steps_completed", "selected_step", "resumed_step", "diverged_step", "failure_reason",
                 "worker"],
    )
    if base.empty:
        return base.drop(columns="trial_id")
    trial_ids = select(TrialRow.id).where(TrialRow.study_id == study_id, TrialRow.complete).scalar_subquery()
    tasks = pd.DataFrame(
        session.execute(
            select(TrialTaskRow.trial_id, TrialTaskRow.task_index, TrialTaskRow.task, *(
                getattr(TrialTaskRow, column) for column in TASK_QUANTITIES
            )).where(TrialTaskRow.trial_id.in_(trial_ids))
        ).all(),
        columns=["trial_id", "task_index", "task", *TASK_QUANTITIES],
    )
    metrics = pd.DataFrame(
        session.execute(
            select(MetricRow.trial_id, MetricRow.task_index, MetricRow.split, MetricRow.metric, MetricRow.value).where(
                MetricRow.trial_id.in_(trial_ids)
            )
        ).all(),
        columns=["trial_id", "task_index", "split", "metric", "value"],
    )
    # test and training metrics (stuck_at_step) keep their plain names; validation ones are prefixed
    metrics["metric"] = metrics["metric"].where(metrics["split"] != "validation", "validation_" + metrics["metric"])
    metrics = metrics.drop(columns="split")
    frame = base
    if not tasks.empty:
        order = tasks.drop_duplicates("task_index").sort_values("task_index")["task"].tolist()
        wide = tasks.pivot(index="trial_id", columns="task", values=list(TASK_QUANTITIES))
        wide.columns = [f"{TASK_QUANTITIES[quantity]}.{task}" for quantity, task in wide.columns]
        ordered = [f"{name}.{task}" for name in TASK_QUANTITIES.values() for task in order]
        frame = frame.merge(wide[ordered], left_on="trial_id", right_index=True, how="left")
        if not metrics.empty:
            metrics = metrics.merge(tasks[["trial_id", "task_index", "task"]], on=["trial_id", "task_index"])
            wide_metrics = metrics.pivot(index="trial_id", columns=["metric", "task"], values="value")
            names = metrics.drop_duplicates("metric")["metric"].tolist()
            columns = [(m, t) for m in names for t in order if (m, t) in wide_metrics.columns]
            wide_metrics = wide_metrics[columns]
            wide_metrics.columns = [f"{m}.{t}" for m, t in columns]
            frame = frame.merge(wide_metrics, left_on="trial_id", right_index=True, how="left")
    return frame.drop(columns="trial_id").reset_index(drop=True)


def traces(session: Session, study_id: int, keys: list[str] | None = None, with_validation: bool = True) -> pd.DataFrame:
    """Long format: one row per (run, logged step, task); validation_loss is empty before version 4."""
    import pandas as pd  # here: the reads that need no DataFrame (status, delete) skip it

    query = (
        select(
            TrialRow.key,
            TrialRow.config["method"].as_string().label("method"),
            TraceRow.step,
            TrialTaskRow.task,
            TraceRow.train_loss,
            TraceRow.test_loss,
            TraceRow.weight,
            TraceRow.grad_norm,
            TraceRow.validation_loss if with_validation else null().label("validation_loss"),
        )
        .join(TrialRow, TrialRow.id == TraceRow.trial_id)
        .join(
            TrialTaskRow,
            (TrialTaskRow.trial_id == TraceRow.trial_id) & (TrialTaskRow.task_index == TraceRow.task_index),
        )
        .where(TrialRow.study_id == study_id, TrialRow.complete)
        .order_by(TrialRow.optuna_number, TraceRow.step, TraceRow.task_index)
    )
    if keys is not None:
        query = query.where(TrialRow.key.in_(keys))
    columns = ["key", "method", "step", "task", "train_loss", "test_loss", "weight", "grad_norm", "validation_loss"]
    return pd.DataFrame(session.execute(query).all(), columns=columns)


# Optuna's trial tables, named here for the one lookup its API has no index for (a key's trials by
# user attribute); db.store.optuna_tables() takes the full list from Optuna's own models.
_OPTUNA_TRIALS = table("trials", column("trial_id"), column("study_id"))
_OPTUNA_USER_ATTRS = table("trial_user_attributes", column("trial_id"), column("key"), column("value_json"))


def optuna_trials_with_attrs(optuna_study_id: int, attrs: dict[str, str], without: str | None = None) -> Select:
    """Ids of the study's Optuna trials whose user attributes hold each `attrs` JSON text (and lack `without`)."""
    query = select(_OPTUNA_TRIALS.c.trial_id).where(_OPTUNA_TRIALS.c.study_id == optuna_study_id)
    for index, (name, value_json) in enumerate(attrs.items()):
        attr = _OPTUNA_USER_ATTRS.alias(f"attr_{index}")
        query = query.join(attr, and_(attr.c.trial_id == _OPTUNA_TRIALS.c.trial_id, attr.c.key == name,
                                      attr.c.value_json == value_json))
    if without is not None:
        absent = select(_OPTUNA_USER_ATTRS.c.trial_id).where(_OPTUNA_USER_ATTRS.c.key == without)
        query = query.where(_OPTUNA_TRIALS.c.trial_id.not_in(absent))
    return query
