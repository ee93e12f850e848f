"""random-static: the paper's Figure 4. `runs` random static weightings trained at every
seed, each against one GradNorm run of its seed, with the 1/L_i(0) weights and
GradNorm-Static beside them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from study.kinds import StudyKind
from study.spec_checks import at_least, distinct_values, fail, positive, trials_bounded, unknown, within
from study.trials import PlannedTrial, Recorded, baselines, planned_trial, reference
from workers.config import DEFAULT_LOG_EVERY, MAX_SEED

if TYPE_CHECKING:
    from study.spec import StudySpec

# How the weightings are drawn (random_static_weights): the paper's, then two that reach the
# small weights the paper's almost never draws.
SAMPLERS = ("uniform", "log-uniform", "dirichlet")
DEFAULT_CONCENTRATION = 1.0  # dirichlet: uniform on the simplex
DEFAULT_SMALLEST = 1e-3  # log-uniform: draws span [1e-3, 1] before scaling
MAX_RUNS = 10_000  # 100 times the paper's Figure 4


@dataclass(frozen=True)
class RandomStatic:
    """Figure 4: `runs` random static weightings, each trained at every seed, plus GradNorm references.

    `budgets`: steps at which the report also draws Figure 4, read from the runs'
    traces (each a log point of the run); the full run is always one.
    """

    runs: int = 100
    weight_seed: int = 0
    gradnorm_static: bool = True
    inverse_initial_loss: bool = True  # the trivial baseline w ∝ 1/L_i(0), one run per seed
    sampler: str = "uniform"
    concentration: float | None = None  # dirichlet only
    smallest: float | None = None  # log-uniform only
    budgets: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        within("runs", self.runs, 1, MAX_RUNS)
        within("weight_seed", self.weight_seed, 0, MAX_SEED)
        if self.sampler not in SAMPLERS:
            fail("sampler", unknown("sampler", self.sampler, SAMPLERS))
        for name, owner, fallback in (("concentration", "dirichlet", DEFAULT_CONCENTRATION),
                                      ("smallest", "log-uniform", DEFAULT_SMALLEST)):
            if self.sampler != owner:
                if getattr(self, name) is not None:
                    fail(name, f"only applies to sampler {owner} (this one is {self.sampler})")
            elif getattr(self, name) is None:
                object.__setattr__(self, name, fallback)
        if self.concentration is not None:
            positive("concentration", self.concentration)
        if self.smallest is not None and not 0 < self.smallest < 1:
            fail("smallest", f"must be between 0 and 1 (the draws span [smallest, 1]), got {self.smallest}")
        if self.budgets is not None:
            distinct_values("budgets", self.budgets, "budget")
            for i, budget in enumerate(self.budgets):
                at_least(f"budgets[{i}]", budget, 1)


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


def plan(spec: "StudySpec", seed: int, tasks: int, recorded: Recorded) -> list[PlannedTrial]:
    section: RandomStatic = spec.section
    # The reference first: an interrupted study can already draw Figure 4 from the runs it has.
    gradnorm = reference(spec, seed)
    parameters = {name: getattr(section, name) for name in ("concentration", "smallest") if getattr(section, name) is not None}
    draws = random_static_weights(section.runs, tasks, section.weight_seed, section.sampler, **parameters)
    static = [planned_trial(spec, seed, method="static", weights=tuple(float(w) for w in weights)) for weights in draws]
    return [gradnorm, *static, *baselines(spec, seed, gradnorm, section.inverse_initial_loss, section.gradnorm_static)]


def check(spec: "StudySpec") -> None:
    section: RandomStatic = spec.section
    trials_bounded("random_static.runs", section.runs, len(spec.seeds), f"{section.runs:,} runs")
    if section.budgets is not None:
        log_every = spec.training.log_every or min(DEFAULT_LOG_EVERY, spec.training.steps)
        for i, budget in enumerate(section.budgets):
            if budget > spec.training.steps or budget % log_every:
                fail(f"random_static.budgets[{i}]", f"{budget} is not a logged step of the runs (a multiple of "
                     f"log_every {log_every}, at most training.steps {spec.training.steps})")


def report(results, study, runs, summary, spec):  # noqa: ANN001 (StudyKind.report)
    from study.report.build import random_static_sections

    return random_static_sections(results, study, runs, summary, spec)


def headline(summary: dict[str, Any]) -> list[str]:
    """The page's findings (study.report.figure4_stats, study.report.search), one per line."""
    from study.report.figure4_stats import Figure4Stats
    from study.report.search import RandomSearchStats

    lines = Figure4Stats.from_dict(summary["figure4"]).headline() if "figure4" in summary else []
    for row in summary.get("figure4_by_budget", []):
        lines.append(f"  at {row['steps']} steps: {row['beating_gradnorm']}/{row['weightings']} beat GradNorm "
                     f"({row['share_ci_low_pct']:.1f}-{row['share_ci_high_pct']:.1f} %), median {row['median_change_pct']:+.2f} %")
    if "random_search" in summary:
        lines += RandomSearchStats.from_dict(summary["random_search"]).headline()
    return lines


KIND = StudyKind(
    name="random-static",
    summary="Figure 4: random static weightings against one GradNorm run per seed",
    section=RandomStatic,
    plan=plan,
    report=report,
    headline=headline,
    check=check,
)
