"""Searches over static weights at a compute budget (the `search` study kind).

Each searcher, for one seed, is a pure function of the spec and of the
validation values recorded so far: it returns every weighting it can propose
now, in order. A launch trains what is new and asks again, until nothing new
comes; a relaunch, or a report, replays the same proposals from the recorded
values. So an adaptive search keeps the plan/key/exactly-once design of the
other kinds: the same spec and results give the same keys.

A replay also takes the draws recorded at launch (`known`; the driver keeps
every proposal's draws in the database before its run trains), and computes
only proposals past them. TPE's arithmetic differs in the last bits between
CPUs (vectorized exp and log), which is enough to change its choice: without
the recorded draws a relaunch or a report on another machine would propose
other weightings than those that trained.

Every searcher works in the same space: w = T * u / sum(u) with log u_i
uniform in [log smallest, 0] for the draws of `random` (and of the other two
where they draw at random).

    random   the baseline: floor(budget / steps) weightings drawn up front.
    tpe      Optuna's TPE (multivariate, constant liar inside a batch): one
             random batch of `startup`, then `batch` at a time, each round
             modelled on every earlier round's validation values.
    halving  synchronous successive halving: n_0 random weightings trained for
             steps / eta^(rungs-1); the best 1/eta of each rung (on validation)
             trained eta times longer from scratch, up to training.steps; n_0
             the most the budget pays for.

Why our own synchronous halving and not Ray Tune's ASHA or Optuna's pruner:
both stop a trial from its intermediate reports while it trains, which (1)
stops a whole pack of runs at once, since a packed Tune trial trains many
runs, and (2) makes which runs go on depend on the order their reports
arrive, so a relaunch could not replay it and seeds would differ by timing.
Promoting at rung boundaries from recorded results is deterministic, packs
every rung and keeps the driver the one writer. A promoted run goes on from
the state its rung saved (search.promoted: continue, the default), so the
budget pays each step once; with `retrain` (how studies were run before the
states existed) it trains again from step 0 and is charged in full.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np

if TYPE_CHECKING:
    from study.kinds.search import Search

# An outcome: a recorded run's validation value; math.inf for a failed run (the worst);
# None while the run is not recorded yet.
Outcome = Callable[["Proposal"], "float | None"]
# The draws a searcher proposed at one seed, recorded at launch: index -> u (untrusted: read from a database).
Known = Mapping[int, "tuple[float, ...]"]


class DamagedProposals(ValueError):
    """Recorded draws that do not fit the search's space, or a batch recorded in part."""


@dataclass(frozen=True)
class Proposal:
    searcher: str
    seed: int
    index: int  # order within the searcher at this seed
    round: int  # which round of proposals it came in (0: needs no results)
    draws: tuple[float, ...]  # u before scaling, each in [smallest, 1]
    steps: int  # how long it trains
    rung: int | None = None  # halving only
    parent: int | None = None  # halving, continued: the index of the proposal whose saved state it goes on from

    @property
    def weights(self) -> tuple[float, ...]:
        return scale_to_task_count(self.draws)


def scale_to_task_count(draws: tuple[float, ...]) -> tuple[float, ...]:
    total = math.fsum(draws)
    return tuple(len(draws) * u / total for u in draws)


def full_runs(budget_steps: int, steps: int) -> int:
    """Full-length runs random search and TPE can afford."""
    return budget_steps // steps


@dataclass(frozen=True)
class Rungs:
    """Successive halving's schedule: how long each rung trains, how many it trains, what it costs.

    `continued`: a promoted run goes on from its rung's saved state (workers.run_state), so it pays
    only the steps past its rung; the shorter rungs' lengths are then multiples of `unit` (the runs'
    log_every: a state is saved at a logged step). Otherwise a promoted run trains again from step 0.
    """

    steps: int
    eta: int
    count: int
    continued: bool = False
    unit: int = 1

    def lengths(self) -> list[int]:
        """Training lengths, shortest first: steps / eta^(count-1), ..., steps."""
        lengths = [max(1, round(self.steps / self.eta ** (self.count - 1 - k))) for k in range(self.count)]
        if self.continued and self.unit > 1:
            lengths = [max(self.unit, round(b / self.unit) * self.unit) for b in lengths[:-1]] + [self.steps]
        return lengths

    def sizes(self, first: int) -> list[int]:
        """How many weightings each rung trains: n_k = floor(n_0 / eta^k)."""
        return [first // self.eta ** k for k in range(self.count)]

    def paid(self) -> list[int]:
        """Steps each run of a rung trains: all of them, or (continued) those past the rung below."""
        lengths = self.lengths()
        return [b - (lengths[k - 1] if self.continued and k else 0) for k, b in enumerate(lengths)]

    def cost(self, first: int) -> int:
        """Training steps all the rungs take, starting from `first` weightings."""
        return sum(n * b for n, b in zip(self.sizes(first), self.paid()))

    def first_rung(self, budget_steps: int) -> int:
        """The largest n_0 whose rungs cost at most the budget with one run left at the last rung; 0 if none."""
        fewest = self.eta ** (self.count - 1)  # leaves one weighting at the last rung
        if self.cost(fewest) > budget_steps:
            return 0
        low, high = fewest, budget_steps // self.lengths()[0] + 1  # cost(low) fits, cost(high) does not
        while high - low > 1:  # the cost grows with n_0: bisect
            middle = (low + high) // 2
            low, high = (middle, high) if self.cost(middle) <= budget_steps else (low, middle)
        return low

    def increasing(self) -> bool:
        """Every rung longer than the one below (rounding to `unit` can merge short rungs)."""
        lengths = self.lengths()
        return all(a < b for a, b in zip(lengths, lengths[1:]))


def rungs_of(section: "Search", steps: int, log_every: int) -> Rungs:
    """The section's halving schedule for runs of `steps` logged every `log_every` steps."""
    return Rungs(steps, section.eta, section.rungs, continued=section.promoted == "continue", unit=log_every)


def trial_count(section: "Search", steps: int, log_every: int) -> int:
    """Runs one seed's searchers train in all (the driver's progress total)."""
    count = 0
    for searcher in section.searchers:
        if searcher == "halving":
            rungs = rungs_of(section, steps, log_every)
            count += sum(rungs.sizes(rungs.first_rung(section.budget_steps)))
        else:
            count += full_runs(section.budget_steps, steps)
    return count


def propose(section: "Search", tasks: int, steps: int, seed: int, searcher: str, outcome: Outcome,
            log_every: int = 1, known: Known | None = None) -> list[Proposal]:
    """Every weighting `searcher` proposes at `seed` given the outcomes known so far, in order; where
    `known` holds a proposal's recorded draws, those (DamagedProposals if they do not fit the space)."""
    draws = _Draws(section, searcher, seed, tasks, known or {})
    if searcher == "random":
        return _random(section, steps, seed, draws)
    if searcher == "tpe":
        return _tpe(section, tasks, steps, seed, outcome, draws)
    if searcher == "halving":
        return _halving(rungs_of(section, steps, log_every), section.budget_steps, seed, outcome, draws)
    raise ValueError(f"searcher: unknown searcher {searcher!r}")


@dataclass(frozen=True)
class _Draws:
    """One searcher's draws at one seed: recorded ones where known, else made here."""

    section: "Search"
    searcher: str
    seed: int
    tasks: int
    known: Known

    def batch(self, first: int, count: int, make: Callable[[], list[tuple[float, ...]]]) -> list[tuple[float, ...]]:
        """Proposals first .. first+count-1: recorded, or `make()` when none of them is (a launch
        records a batch whole, so a part of one is a damaged record)."""
        recorded = [self.known.get(i) for i in range(first, first + count)]
        if all(u is None for u in recorded):
            return make()
        if any(u is None for u in recorded):
            raise DamagedProposals(f"recorded proposals: {self.searcher} at seed {self.seed} holds only part of the batch "
                             f"of proposals {first}-{first + count - 1}")
        return [self._checked(first + i, u) for i, u in enumerate(recorded)]

    def random(self, round_: int, count: int) -> list[tuple[float, ...]]:
        """The round's uniform draws (on the log scale) from the searcher's own stream."""
        generator = np.random.default_rng(
            [self.section.weight_seed, ("random", "tpe", "halving").index(self.searcher), self.seed, round_])
        logs = generator.uniform(math.log(self.section.smallest), 0.0, size=(count, self.tasks))
        return [tuple(float(u) for u in row) for row in np.exp(logs)]

    def _checked(self, index: int, draws: tuple[float, ...]) -> tuple[float, ...]:
        """Recorded draws are untrusted: `tasks` numbers in [smallest, 1]."""
        low = self.section.smallest
        if len(draws) != self.tasks or not all(isinstance(u, float) and low <= u <= 1.0 for u in draws):
            raise DamagedProposals(f"recorded proposals: {self.searcher} #{index} at seed {self.seed} is not "
                             f"{self.tasks} numbers in [{low:g}, 1]: {list(draws)[:8]}")
        return draws


def _random(section: "Search", steps: int, seed: int, draws: _Draws) -> list[Proposal]:
    count = full_runs(section.budget_steps, steps)
    return [Proposal("random", seed, i, 0, u, steps)
            for i, u in enumerate(draws.batch(0, count, lambda: draws.random(0, count)))]


def _tpe(section: "Search", tasks: int, steps: int, seed: int, outcome: Outcome, draws: _Draws) -> list[Proposal]:
    total = full_runs(section.budget_steps, steps)
    first = min(section.startup, total)
    proposals = [Proposal("tpe", seed, i, 0, u, steps)
                 for i, u in enumerate(draws.batch(0, first, lambda: draws.random(0, first)))]
    round_ = 0
    while len(proposals) < total:
        values = [outcome(p) for p in proposals]
        if any(v is None for v in values):
            return proposals  # the next batch is modelled on these: wait for them
        round_ += 1
        size = min(section.batch, total - len(proposals))
        history = [p.draws for p in proposals]
        batch = draws.batch(len(proposals), size,
                            lambda: tpe_batch(section, tasks, seed, round_, history, values, size))  # noqa: B023 (called at once)
        proposals += [Proposal("tpe", seed, len(proposals) + i, round_, u, steps) for i, u in enumerate(batch)]
    return proposals


def tpe_batch(
    section: "Search", tasks: int, seed: int, round_: int, history: list[tuple[float, ...]], values: list[float], size: int
) -> list[tuple[float, ...]]:
    """`size` draws from TPE fitted to `history` (draws and validation values; inf: failed)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {f"u{i}": optuna.distributions.FloatDistribution(section.smallest, 1.0, log=True) for i in range(tasks)}
    with warnings.catch_warnings():  # multivariate and constant_liar are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        seed_of_round = int(np.random.SeedSequence([section.weight_seed, seed, round_]).generate_state(1)[0])
        sampler = optuna.samplers.TPESampler(seed=seed_of_round, n_startup_trials=0, multivariate=True, constant_liar=True)
        search = optuna.create_study(direction="minimize", sampler=sampler)
        for draws, value in zip(history, values):
            params = {f"u{i}": u for i, u in enumerate(draws)}
            state = optuna.trial.TrialState.COMPLETE if math.isfinite(value) else optuna.trial.TrialState.FAIL
            search.add_trial(optuna.trial.create_trial(params=params, distributions=space, state=state,
                                                       value=value if math.isfinite(value) else None))
        batch = []
        for _ in range(size):
            trial = search.ask(space)  # left RUNNING: the constant liar keeps the batch apart
            batch.append(tuple(float(trial.params[f"u{i}"]) for i in range(tasks)))
    return batch


def _halving(rungs: Rungs, budget_steps: int, seed: int, outcome: Outcome, draws: _Draws) -> list[Proposal]:
    lengths = rungs.lengths()
    first = rungs.first_rung(budget_steps)
    sizes = rungs.sizes(first)
    rung = [Proposal("halving", seed, i, 0, u, lengths[0], rung=0)
            for i, u in enumerate(draws.batch(0, first, lambda: draws.random(0, first)))]
    proposals = list(rung)
    for k in range(1, rungs.count):
        values = [outcome(p) for p in rung]
        if any(v is None for v in values):
            return proposals
        # the best n_k of the rung below, on validation (a stable sort: ties keep their order)
        promoted = [rung[i] for i in sorted(range(len(rung)), key=lambda i: values[i])[:sizes[k]]]
        rung = [Proposal("halving", seed, len(proposals) + i, k, p.draws, lengths[k], rung=k,
                         parent=p.index if rungs.continued else None) for i, p in enumerate(promoted)]
        proposals += rung
    return proposals
