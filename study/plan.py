"""Planning: a spec becomes a list of trial configs, each with a stable key.

The key is the hash of the trial's config (workers.config.TrialConfig.key), so
planning the same spec again gives the same keys, and a launch runs only the
keys the database does not hold yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from records import Status
from study.searchers import Proposal, propose, trial_count
from study.spec import DEFAULT_CONCENTRATION, DEFAULT_SMALLEST, SpecError, StudySpec
from workers.config import DEFAULT_LOG_EVERY, TrialConfig
from workers.workloads import WorkloadError, WorkloadShape, check_task_count, inspect_workload


@dataclass(frozen=True)
class PlannedTrial:
    key: str
    config: TrialConfig
    # gradnorm-static: the key of the GradNorm run whose E_t[w] it retrains with
    depends_on: str | None = None


def random_static_weights(
    runs: int,
    tasks: int,
    weight_seed: int,
    sampler: str = "uniform",
    concentration: float = DEFAULT_CONCENTRATION,
    smallest: float = DEFAULT_SMALLEST,
) -> np.ndarray:
    """`runs` weight vectors, each scaled to sum to T. The draw before scaling:

    uniform      w_i ~ U(0, 1)                     (the paper's)
    log-uniform  log w_i ~ U(log smallest, 0)       (every decade of w_i as likely)
    dirichlet    w / T ~ Dirichlet(concentration)   (1: uniform on the simplex; < 1: towards its corners)
    """
    rng = np.random.default_rng(weight_seed)
    if sampler == "uniform":
        draws = rng.uniform(0.0, 1.0, size=(runs, tasks))
    elif sampler == "log-uniform":
        draws = np.exp(rng.uniform(np.log(smallest), 0.0, size=(runs, tasks)))
    elif sampler == "dirichlet":
        draws = rng.dirichlet(np.full(tasks, concentration), size=runs)
    else:
        raise ValueError(f"sampler: unknown sampler {sampler!r}")
    return draws * (tasks / draws.sum(axis=1, keepdims=True))


def check_workload(spec: StudySpec) -> WorkloadShape:
    """Build the spec's workload once: its options, data and the batch size must fit. Its shape."""
    try:
        shape = inspect_workload(spec.workload, spec.workload_options, seed=spec.seeds[0])
    except WorkloadError as error:
        raise SpecError(str(error)) from None
    if spec.training.batch_size > shape.train_size:
        raise SpecError(
            f"training.batch_size: {spec.training.batch_size} exceeds the {shape.train_size} training samples of {spec.workload}"
        )
    if spec.training.select == "best_validation" and not shape.has_validation:
        raise SpecError(f"training.select: best_validation reads each run at its best validation step, and workload "
                        f"{spec.workload} has no validation split")
    if spec.kind == "search" and not shape.has_validation:
        raise SpecError(f"kind: a search chooses among its runs on a validation split, and workload {spec.workload} has none")
    if spec.methods is not None and spec.methods.weights is not None:
        try:
            check_task_count("weights", spec.methods.weights, shape.task_names, spec.workload)
        except ValueError as error:
            raise SpecError(f"methods.{error}") from None
    return shape


def plan_study(
    spec: StudySpec, shape: WorkloadShape | None = None, outcomes: Mapping[str, float] | None = None
) -> list[PlannedTrial]:
    """Every trial of the study, GradNorm references before the runs that are compared with them.

    A search study's later proposals depend on results: `outcomes` (recorded
    keys: validation value, inf where the run failed) gives what is known, and
    the plan holds every trial that can be proposed from it (study.searchers).

    Raises SpecError for anything a launch would refuse (the workload is built once
    to check, unless the caller passes the shape check_workload gave it).
    """
    tasks = (shape or check_workload(spec)).task_names
    planned: list[PlannedTrial] = []
    for seed in spec.seeds:
        if spec.kind == "random-static":
            planned += _random_static(spec, seed, len(tasks))
        elif spec.kind == "alpha-sweep":
            planned += _alpha_sweep(spec, seed)
        elif spec.kind == "search":
            planned += _search(spec, seed, len(tasks), outcomes or {})
        else:
            planned += _methods(spec, seed, len(tasks))
    # GradNorm references first, whatever their seed (a stable sort keeps the rest in order).
    planned.sort(key=lambda p: p.config.method != "gradnorm")
    keys = [p.key for p in planned]
    if len(set(keys)) != len(keys):
        raise SpecError("spec: two planned runs are identical (the same config twice)")
    return planned


def _random_static(spec: StudySpec, seed: int, tasks: int) -> list[PlannedTrial]:
    section = spec.random_static
    # The reference first: an interrupted study can already draw Figure 4 from the runs it has.
    reference = _reference(spec, seed)
    planned = [reference]
    parameters = {name: getattr(section, name) for name in ("concentration", "smallest") if getattr(section, name) is not None}
    draws = random_static_weights(section.runs, tasks, section.weight_seed, section.sampler, **parameters)
    planned += [planned_trial(spec, seed, method="static", weights=tuple(float(w) for w in weights)) for weights in draws]
    if section.inverse_initial_loss:
        planned.append(planned_trial(spec, seed, method="inverse-initial-loss"))
    if section.gradnorm_static:
        planned.append(_retrained(spec, seed, reference))
    return planned


def _search(spec: StudySpec, seed: int, tasks: int, outcomes: Mapping[str, float]) -> list[PlannedTrial]:
    reference = _reference(spec, seed)
    planned = [reference] + [trial for _, trial in search_proposals(spec, seed, tasks, outcomes)]
    if spec.search.inverse_initial_loss:
        planned.append(planned_trial(spec, seed, method="inverse-initial-loss"))
    if spec.search.gradnorm_static:
        planned.append(_retrained(spec, seed, reference))
    return planned


def _reference(spec: StudySpec, seed: int) -> PlannedTrial:
    """The GradNorm run of a seed, with the spec's GradNorm options."""
    return planned_trial(spec, seed, method="gradnorm", **_gradnorm(spec, spec.gradnorm.alpha))


def _retrained(spec: StudySpec, seed: int, reference: PlannedTrial) -> PlannedTrial:
    """GradNorm-Static: a second run with `reference`'s E_t[w], once that run is recorded."""
    return planned_trial(spec, seed, depends_on=reference.key, method="gradnorm-static", weights_from=reference.key)


def search_proposals(
    spec: StudySpec, seed: int, tasks: int, outcomes: Mapping[str, float]
) -> list[tuple[Proposal, PlannedTrial]]:
    """Each searcher's proposals at `seed` that the outcomes known so far determine, with their trials.

    The report replays the search with this (only the task count is needed, not the workload).
    """
    pairs = []
    for searcher in spec.search.searchers:
        proposals = propose(spec.search, tasks, spec.training.steps, seed, searcher,
                            lambda proposal: outcomes.get(search_trial(spec, proposal).key))
        pairs += [(proposal, search_trial(spec, proposal)) for proposal in proposals]
    return pairs


def search_trial(spec: StudySpec, proposal: Proposal) -> PlannedTrial:
    """A searcher's proposal as a static run (halving's short rungs log at their end at the latest)."""
    log_every = min(spec.training.log_every or DEFAULT_LOG_EVERY, proposal.steps)
    return planned_trial(spec, proposal.seed, method="static", weights=proposal.weights, steps=proposal.steps,
                         log_every=log_every)


def recorded_outcomes(runs: pd.DataFrame) -> dict[str, float]:
    """What a search's next proposals are modelled on: each recorded key's validation value.

    A failed run, or one without a validation value, is the worst outcome (inf).
    """
    outcomes = {}
    for key, status, value in zip(runs["key"], runs["status"], runs["validation_value"]):
        good = status == str(Status.OK) and value is not None and math.isfinite(value)
        outcomes[str(key)] = float(value) if good else math.inf
    return outcomes


def planned_count(spec: StudySpec, planned: list[PlannedTrial]) -> int:
    """Trials the study trains in all: a search's count is known before its later proposals are."""
    if spec.kind != "search":
        return len(planned)
    per_seed = (1 + trial_count(spec.search, spec.training.steps) + spec.search.gradnorm_static
                + spec.search.inverse_initial_loss)
    return per_seed * len(spec.seeds)


def _alpha_sweep(spec: StudySpec, seed: int) -> list[PlannedTrial]:
    planned = [planned_trial(spec, seed, method="equal")]
    planned += [planned_trial(spec, seed, method="gradnorm", **_gradnorm(spec, alpha)) for alpha in spec.alpha_sweep.alphas]
    return planned


def _methods(spec: StudySpec, seed: int, tasks: int) -> list[PlannedTrial]:
    planned: list[PlannedTrial] = []
    reference: PlannedTrial | None = None
    # gradnorm first, so that gradnorm-static can name its key
    methods = spec.methods.methods + (("inverse-initial-loss",) if spec.methods.inverse_initial_loss
                                      and "inverse-initial-loss" not in spec.methods.methods else ())
    for method in sorted(methods, key=lambda m: m == "gradnorm-static"):
        if method == "single-task":
            planned += [planned_trial(spec, seed, method=method, task=task) for task in range(tasks)]
        elif method == "static":
            planned.append(planned_trial(spec, seed, method=method, weights=spec.methods.weights))
        elif method == "gradnorm":
            reference = _reference(spec, seed)
            planned.append(reference)
        elif method == "gradnorm-static":
            planned.append(_retrained(spec, seed, reference))
        elif method == "uncertainty" and spec.methods.uncertainty_lrs is not None:
            planned += [planned_trial(spec, seed, method=method, balancer_lr=lr) for lr in spec.methods.uncertainty_lrs]
        else:
            planned.append(planned_trial(spec, seed, method=method))
    return planned


def _gradnorm(spec: StudySpec, alpha: float | None) -> dict[str, Any]:
    options = spec.gradnorm
    if alpha is None:  # only alpha_from leaves it open
        raise SpecError(f"gradnorm.alpha_from: the alpha that study {options.alpha_from!r} chose has not been "
                        "read yet (gns plan and gns launch read it from --storage)")
    return {
        "alpha": alpha,
        "initial_loss": options.initial_loss,
        "balancer_lr": options.balancer_lr,
        "shared_params": options.shared_params,
        "weight_update": options.weight_update,
        "stuck_window": options.stuck_window,
    }


def planned_trial(spec: StudySpec, seed: int, depends_on: str | None = None, **fields: Any) -> PlannedTrial:
    training = spec.training
    fields = {"steps": training.steps, "log_every": training.log_every, "select": training.select,
              "patience": training.patience, **fields}
    try:
        config = TrialConfig(
            workload=spec.workload,
            workload_options=dict(spec.workload_options),
            batch_size=training.batch_size,
            lr=training.lr,
            seed=seed,
            **fields,
        )
    except ValueError as error:  # the spec's own checks ran first: a field combination it cannot see
        raise SpecError(f"spec: a planned trial is invalid: {error}") from None
    return PlannedTrial(config.key(), config, depends_on)


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
