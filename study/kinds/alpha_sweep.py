"""alpha-sweep: the supplement's Figure 7. GradNorm at each alpha, with equal weights,
at every seed; other studies take the alpha it chooses on validation (study.choices)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from study.kinds import StudyKind
from study.spec_checks import distinct_values, fail, trial_check
from study.trials import PlannedTrial, Recorded, gradnorm_fields, planned_trial
from workers.config import check_field

if TYPE_CHECKING:
    from study.spec import StudySpec


@dataclass(frozen=True)
class AlphaSweep:
    """Supplement Figure 7: GradNorm at each alpha, plus equal weights, per seed."""

    alphas: tuple[float, ...] = (0.0, 0.12, 0.5, 1.0, 1.5, 2.0, 3.0)

    def __post_init__(self) -> None:
        distinct_values("alphas", self.alphas, "alpha")
        for i, alpha in enumerate(self.alphas):
            trial_check(check_field, "alpha", alpha, path=f"alphas[{i}]")


def plan(spec: "StudySpec", seed: int, tasks: int, recorded: Recorded) -> list[PlannedTrial]:
    planned = [planned_trial(spec, seed, method="equal")]
    return planned + [planned_trial(spec, seed, method="gradnorm", **gradnorm_fields(spec, alpha))
                      for alpha in spec.section.alphas]


def check(spec: "StudySpec") -> None:
    if spec.gradnorm.alpha_from is not None:
        fail("gradnorm.alpha_from", "an alpha-sweep study sweeps alpha itself")


def report(results, study, runs, summary, spec):  # noqa: ANN001 (StudyKind.report)
    from study.report.build import alpha_sweep_sections

    return alpha_sweep_sections(results, study, runs, summary, spec)


def headline(summary: dict[str, Any]) -> list[str]:
    from study.report.sweep import SweepStats  # loaded with the report already

    return SweepStats.from_dict(summary["figure7"]).headline() if "figure7" in summary else []


KIND = StudyKind(
    name="alpha-sweep",
    summary="Figure 7: GradNorm at each alpha against equal weights; chooses alpha on validation",
    section=AlphaSweep,
    plan=plan,
    report=report,
    headline=headline,
    check=check,
)
