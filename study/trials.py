"""Planned trials: what every study kind's plan is made of (study.kinds), with stable keys.

The key is the hash of the trial's config (workers.config.TrialConfig.key), so
planning the same spec again gives the same keys, and a launch runs only the
keys the database does not hold yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from study.spec_checks import SpecError
from workers.config import TrialConfig

if TYPE_CHECKING:
    from study.searchers import Proposal
    from study.spec import StudySpec


@dataclass(frozen=True)
class PlannedTrial:
    key: str
    config: TrialConfig
    # gradnorm-static: the key of the GradNorm run whose E_t[w] it retrains with
    depends_on: str | None = None
    # halving's promotion: the key of the shorter run whose saved state it continues from, and its budget;
    # or, with `restores`, the trial's own key and the step of the checkpoint it goes on from
    resumes: str | None = None
    resumes_at: int | None = None
    restores: bool = False
    # a later run may continue from this one: its state is saved with its result
    keeps_state: bool = False
    # a search's run: the searcher's proposal it trains (its draws are recorded before it trains)
    proposal: "Proposal | None" = None


@dataclass(frozen=True)
class Recorded:
    """What a study has recorded that an adaptive kind plans from (study.kinds.search).

    `outcomes`: each recorded key's validation value (inf where the run failed). `draws`: every
    proposal's draws recorded at launch, by (seed, searcher, index); a replay reuses them, so it gives
    back the runs that trained whatever machine replays it (study.searchers).
    """

    outcomes: Mapping[str, float] = field(default_factory=dict)
    draws: Mapping[tuple[int, str, int], tuple[float, ...]] = field(default_factory=dict)


def planned_trial(spec: "StudySpec", seed: int, depends_on: str | None = None, **fields: Any) -> PlannedTrial:
    """One run of the study at `seed`: the spec's training settings, then `fields`."""
    training = spec.training
    fields = {"steps": training.steps, "lr": training.lr, "log_every": training.log_every, "select": training.select,
              "patience": training.patience, **fields}
    try:
        config = TrialConfig(
            workload=spec.workload,
            workload_options=dict(spec.workload_options),
            batch_size=training.batch_size,
            seed=seed,
            **fields,
        )
    except ValueError as error:  # the spec's own checks ran first: a field combination it cannot see
        raise SpecError(f"spec: a planned trial is invalid: {error}") from None
    return PlannedTrial(config.key(), config, depends_on)


def gradnorm_fields(spec: "StudySpec", alpha: float | None) -> dict[str, Any]:
    """The spec's GradNorm options as a run's fields, at `alpha`."""
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


def reference(spec: "StudySpec", seed: int) -> PlannedTrial:
    """The GradNorm run of a seed, with the spec's GradNorm options."""
    return planned_trial(spec, seed, method="gradnorm", **gradnorm_fields(spec, spec.gradnorm.alpha))


def retrained(spec: "StudySpec", seed: int, gradnorm: PlannedTrial) -> PlannedTrial:
    """GradNorm-Static: a second run with `gradnorm`'s E_t[w], once that run is recorded."""
    return planned_trial(spec, seed, depends_on=gradnorm.key, method="gradnorm-static", weights_from=gradnorm.key)


def baselines(spec: "StudySpec", seed: int, gradnorm: PlannedTrial, inverse_initial_loss: bool,
              gradnorm_static: bool) -> list[PlannedTrial]:
    """What a study set against GradNorm adds per seed: the 1/L_i(0) weights and GradNorm-Static."""
    planned = [planned_trial(spec, seed, method="inverse-initial-loss")] if inverse_initial_loss else []
    return planned + ([retrained(spec, seed, gradnorm)] if gradnorm_static else [])
