"""search: beyond the paper. Searches over static weights at a compute budget (random, TPE,
successive halving; study.searchers), each choosing on validation, against one GradNorm run
per seed. Adaptive: a round's proposals are planned from the outcomes recorded before it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from study.kinds import StudyKind
from study.kinds.random_static import DEFAULT_SMALLEST  # the log-uniform sampler's space
from study.searchers import Proposal, Rungs, propose, rungs_of, trial_count
from study.spec_checks import MAX_LIST, at_least, distinct_values, fail, trials_bounded, unknown, within
from study.trials import PlannedTrial, Recorded, baselines, planned_trial, reference
from workers.config import DEFAULT_LOG_EVERY, MAX_SEED

if TYPE_CHECKING:
    from study.spec import StudySpec

PROMOTIONS = ("continue", "retrain")  # halving: from the rung's saved state, or from step 0
SEARCHERS = ("random", "tpe", "halving")  # the baseline, a model-based search and a multi-fidelity one
DEFAULT_BUDGET_RUNS = 8  # each searcher's default budget, in full runs' worth of steps
MAX_BUDGET_RUNS = 1000
MAX_SEARCH_TRIALS = 10_000  # per seed, all searchers


@dataclass(frozen=True)
class Search:
    """Beyond the paper: searches over static weights at a compute budget, against one GradNorm run per seed.

    Each searcher spends `budget_steps` training steps per seed (None: DEFAULT_BUDGET_RUNS
    full runs' worth), chooses on validation, and is scored on test. Every weighting is
    w = T * u / sum(u) with each u_i in [smallest, 1] on a log scale, for all searchers.
    """

    searchers: tuple[str, ...] = SEARCHERS
    budget_steps: int | None = None
    batch: int = 2  # tpe: weightings proposed per round, trained side by side
    startup: int | None = None  # tpe: random weightings before its model takes over (None: one batch)
    eta: int = 3  # halving: each rung keeps the best 1/eta and trains them eta times longer
    rungs: int = 3  # halving: budgets training.steps / eta^(rungs-1), ..., training.steps
    smallest: float = DEFAULT_SMALLEST
    weight_seed: int = 0
    gradnorm_static: bool = True
    inverse_initial_loss: bool = True  # the trivial baseline w ∝ 1/L_i(0), one run per seed
    # halving: a promoted run goes on from its rung's saved state ("continue"), or trains again from step 0
    promoted: str = "continue"

    # What a stored spec without a field meant: it was stored before the field existed.
    STORED_BEFORE = {"promoted": "retrain"}

    def __post_init__(self) -> None:
        distinct_values("searchers", self.searchers, "searcher")
        for i, searcher in enumerate(self.searchers):
            if searcher not in SEARCHERS:
                fail(f"searchers[{i}]", unknown("searcher", searcher, SEARCHERS))
        if self.budget_steps is not None:
            at_least("budget_steps", self.budget_steps, 1)
        within("batch", self.batch, 1, MAX_LIST)
        if self.startup is None:
            object.__setattr__(self, "startup", self.batch)
        within("startup", self.startup, 1, MAX_SEARCH_TRIALS)
        within("eta", self.eta, 2, 100)
        within("rungs", self.rungs, 1, 20)
        if not 0 < self.smallest < 1:
            fail("smallest", f"must be between 0 and 1 (each u_i spans [smallest, 1]), got {self.smallest}")
        within("weight_seed", self.weight_seed, 0, MAX_SEED)
        if self.promoted not in PROMOTIONS:
            fail("promoted", unknown("promotion", self.promoted, PROMOTIONS))


def plan(spec: "StudySpec", seed: int, tasks: int, recorded: Recorded) -> list[PlannedTrial]:
    section: Search = spec.section
    gradnorm = reference(spec, seed)
    proposed = [trial for _, trial in search_proposals(spec, seed, tasks, recorded)]
    return [gradnorm, *proposed, *baselines(spec, seed, gradnorm, section.inverse_initial_loss, section.gradnorm_static)]


def search_proposals(spec: "StudySpec", seed: int, tasks: int, recorded: Recorded) -> list[tuple[Proposal, PlannedTrial]]:
    """Each searcher's proposals at `seed` that the outcomes known so far determine, with their trials
    (each trial carries its proposal, whose draws a launch records before it trains).

    The report replays the search with this (only the task count is needed, not the workload).
    """
    pairs = []
    for searcher in spec.section.searchers:
        known = {index: u for (s, name, index), u in recorded.draws.items() if s == seed and name == searcher}
        proposals = propose(spec.section, tasks, spec.training.steps, seed, searcher,
                            lambda proposal: recorded.outcomes.get(search_trial(spec, proposal).key),
                            halving_log_every(spec), known)
        trials = [dataclasses.replace(search_trial(spec, proposal), proposal=proposal) for proposal in proposals]
        last_rung = spec.section.rungs - 1
        for proposal, trial in zip(proposals, trials):
            if searcher == "halving" and spec.section.promoted == "continue":
                trial = dataclasses.replace(trial, keeps_state=proposal.rung < last_rung)
                if proposal.parent is not None:  # goes on from its parent's saved state
                    parent = trials[proposal.parent]
                    trial = dataclasses.replace(trial, resumes=parent.key, resumes_at=parent.config.steps)
            pairs.append((proposal, trial))
    return pairs


def halving_log_every(spec: "StudySpec") -> int:
    """How often a continued halving's runs log: its rungs are multiples of it, since a promoted run goes
    on from a logged step. training.log_every where the spec sets it; else the default, at most the
    shortest rung."""
    steps, section = spec.training.steps, spec.section
    if spec.training.log_every is not None:
        return min(spec.training.log_every, steps)
    shortest = Rungs(steps, section.eta, section.rungs).lengths()[0]
    return min(DEFAULT_LOG_EVERY, steps, shortest)


def search_trial(spec: "StudySpec", proposal: Proposal) -> PlannedTrial:
    """A searcher's proposal as a static run (halving's short rungs log at their end at the latest;
    a continued halving's runs all log every `halving_log_every(spec)`)."""
    if proposal.searcher == "halving" and spec.section.promoted == "continue":
        every = halving_log_every(spec)
    else:
        every = min(spec.training.log_every or DEFAULT_LOG_EVERY, proposal.steps)
    return planned_trial(spec, proposal.seed, method="static", weights=proposal.weights, steps=proposal.steps,
                         log_every=every)


def planned_count(spec: "StudySpec") -> int:
    """Trials in all, known before the later proposals are."""
    section: Search = spec.section
    per_seed = 1 + trial_count(section, spec.training.steps, halving_log_every(spec)) + section.gradnorm_static + section.inverse_initial_loss
    return per_seed * len(spec.seeds)


def check(spec: "StudySpec") -> Search:
    """The budget buys at least one full run and a bounded number of runs; halving's shortest rung
    at least one step. (Bounded because a report replays the search from a stored, untrusted spec.)
    The section with its default budget filled in."""
    section, steps = spec.section, spec.training.steps
    if section.budget_steps is None:
        section = dataclasses.replace(section, budget_steps=DEFAULT_BUDGET_RUNS * steps)
    elif section.budget_steps < steps:
        fail("search.budget_steps", f"{section.budget_steps} buys less than one run of training.steps {steps}")
    elif section.budget_steps > MAX_BUDGET_RUNS * steps:
        fail("search.budget_steps", f"{section.budget_steps} is more than {MAX_BUDGET_RUNS} runs of training.steps {steps}")
    if "halving" in section.searchers:
        rungs = rungs_of(section, steps, halving_log_every(spec))
        if steps < section.eta ** (section.rungs - 1):
            fail("search.rungs", f"{section.rungs} rungs at eta {section.eta} leave the shortest rung under one "
                 f"step of training.steps {steps}")
        if not rungs.increasing():
            fail("search.rungs", f"{section.rungs} rungs at eta {section.eta} round to lengths "
                 f"{rungs.lengths()} at multiples of log_every {rungs.unit} (a promoted run goes on from a logged "
                 "step); use fewer rungs, a smaller log_every, or promoted: retrain")
        if not rungs.first_rung(section.budget_steps):
            least = rungs.cost(section.eta ** (section.rungs - 1))
            fail("search.budget_steps", f"{section.budget_steps} does not pay for halving's {section.rungs} rungs "
                 f"(at least {least} steps at eta {section.eta})")
    runs = trial_count(section, steps, halving_log_every(spec))
    trials_bounded("search", runs, len(spec.seeds), f"its searchers would train {runs:,} runs")
    if runs > MAX_SEARCH_TRIALS:
        fail("search", f"its searchers would train {runs} runs per seed, more than {MAX_SEARCH_TRIALS}; "
             "lower budget_steps or rungs")
    return section


def report(results, study, runs, summary, spec):  # noqa: ANN001 (StudyKind.report)
    from study.report.build import search_sections

    return search_sections(results, study, runs, summary, spec)


def headline(summary: dict[str, Any]) -> list[str]:
    """The page's findings (study.report.search_stats), one per line."""
    from study.report.search_stats import SearchStats

    return SearchStats.from_dict(summary["search"]).headline() if "search" in summary else []


KIND = StudyKind(
    name="search",
    summary="searches over static weights (random, TPE, halving) at a compute budget against GradNorm",
    section=Search,
    plan=plan,
    report=report,
    headline=headline,
    adaptive=True,
    needs_validation=True,
    check=check,
    planned_count=planned_count,
)
