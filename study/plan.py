"""Planning: a spec becomes a list of trial configs, each with a stable key (study.trials).

What a study plans per seed is its kind's (study.kinds); here: the workload checks
every kind shares, the order of the plan, and the checks on the whole of it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from records import Status
from study.spec import SpecError, StudySpec
from study.trials import PlannedTrial, Recorded
from workers.workload_options import PlanFacts, plan_facts

if TYPE_CHECKING:
    from workers.workloads import WorkloadShape

__all__ = ["PlannedTrial", "Recorded", "check_plan", "check_workload", "describe", "plan_study", "planned_count",
           "recorded_outcomes"]


def check_workload(spec: StudySpec) -> "WorkloadShape":
    """Build the spec's workload once (torch): its options, data and the batch size must fit. Its
    shape, which also sizes the launch's packs."""
    from workers.workloads import WorkloadError, inspect_workload

    try:
        shape = inspect_workload(spec.workload, spec.workload_options, seed=spec.seeds[0])
    except WorkloadError as error:
        raise SpecError(str(error)) from None
    return _checked(spec, shape)


def check_plan(spec: StudySpec) -> "PlanFacts | WorkloadShape":
    """What planning needs of the spec's workload, checked as a launch checks it: read from the
    options of a built-in that generates or ships its data (no torch), else built."""
    try:
        facts = plan_facts(spec.workload, spec.workload_options)
    except ValueError as error:
        raise SpecError(str(error)) from None
    return check_workload(spec) if facts is None else _checked(spec, facts)


def _checked(spec: StudySpec, shape: "PlanFacts | WorkloadShape") -> "PlanFacts | WorkloadShape":
    """`shape` (its tasks, training size and validation split) fits the spec, or SpecError."""
    if spec.training.batch_size > shape.train_size:
        raise SpecError(
            f"training.batch_size: {spec.training.batch_size} exceeds the {shape.train_size} training samples of {spec.workload}"
        )
    if spec.training.select == "best_validation" and not shape.has_validation:
        raise SpecError(f"training.select: best_validation reads each run at its best validation step, and workload "
                        f"{spec.workload} has no validation split")
    kind = spec.study_kind
    if kind.needs_validation and not shape.has_validation:
        raise SpecError(f"kind: a {kind.name} study chooses among its runs on a validation split, and workload "
                        f"{spec.workload} has none")
    if kind.check_shape is not None:
        kind.check_shape(spec, shape)
    return shape


def plan_study(
    spec: StudySpec, shape: "PlanFacts | WorkloadShape | None" = None, recorded: Recorded | None = None
) -> list[PlannedTrial]:
    """Every trial of the study, GradNorm references before the runs that are compared with them.

    An adaptive kind's later proposals depend on results: `recorded` (the
    recorded keys' validation values, and the proposals made so far) gives what
    is known, and the plan holds every trial that can be proposed from it
    (study.searchers).

    Raises SpecError for anything a launch would refuse (the workload is checked
    once by check_plan, unless the caller passes the shape check_workload gave it).
    """
    tasks = len((shape or check_plan(spec)).task_names)
    planned: list[PlannedTrial] = []
    for seed in spec.seeds:
        planned += spec.study_kind.plan(spec, seed, tasks, recorded or Recorded())
    # GradNorm references first, whatever their seed (a stable sort keeps the rest in order).
    planned.sort(key=lambda p: p.config.method != "gradnorm")
    keys = [p.key for p in planned]
    if len(set(keys)) != len(keys):
        raise SpecError("spec: two planned runs are identical (the same config twice)")
    return planned


def recorded_outcomes(runs: pd.DataFrame) -> dict[str, float]:
    """What an adaptive kind's next proposals are modelled on: each recorded key's validation value.

    A failed run, or one without a validation value, is the worst outcome (inf).
    """
    outcomes = {}
    for key, status, value in zip(runs["key"], runs["status"], runs["validation_value"]):
        good = status == str(Status.OK) and value is not None and math.isfinite(value)
        outcomes[str(key)] = float(value) if good else math.inf
    return outcomes


def planned_count(spec: StudySpec, planned: list[PlannedTrial]) -> int:
    """Trials the study trains in all: an adaptive kind's count is known before its later proposals are."""
    count = spec.study_kind.planned_count
    return len(planned) if count is None else count(spec)


def describe(planned: PlannedTrial) -> dict[str, Any]:
    """One row of `gns plan`'s table."""
    config = planned.config
    return {
        "key": planned.key,
        "method": config.method,
        "seed": config.seed,
        "alpha": config.alpha,
        "task": config.task,
        "steps": config.steps,
        "weights": None if config.weights is None else [round(w, 4) for w in config.weights],
        "after": planned.depends_on,
    }
