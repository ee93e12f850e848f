"""Searches over static weights at a compute budget (the `search` study kind).

Each searcher, for one seed, is a pure function of the spec and of the
validation values recorded so far: it returns every weighting it can propose
now, in order. A launch trains what is new and asks again, until nothing new
comes; a relaunch, or a report, replays the same proposals from the recorded
values. So an adaptive search keeps the plan/key/exactly-once design of the
other kinds: the same spec and results give the same keys.

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
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from study.kinds.search import Search

# An outcome: a recorded run's validation value; math.inf for a failed run (the worst);
# None while the run is not recorded yet.
Outcome = Callable[["Proposal"], "float | None"]


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
            log_every: int = 1) -> list[Proposal]:
    """Every weighting `searcher` proposes at `seed` given the outcomes known so far, in order."""
    if searcher == "random":
        return _random(section, tasks, steps, seed)
    if searcher == "tpe":
        return _tpe(section, tasks, steps, seed, outcome)
    if searcher == "halving":
        return _halving(section, tasks, rungs_of(section, steps, log_every), seed, outcome)
    raise ValueError(f"searcher: unknown searcher {searcher!r}")


def _generator(section: "Search", searcher: str, seed: int, round_: int = 0) -> np.random.Generator:
    """Each searcher, seed and round its own stream: no two searchers draw the same weightings."""
    return np.random.default_rng([section.weight_seed, ("random", "tpe", "halving").index(searcher), seed, round_])


def _draw(section: "Search", generator: np.random.Generator, count: int, tasks: int) -> list[tuple[float, ...]]:
    logs = generator.uniform(math.log(section.smallest), 0.0, size=(count, tasks))
    return [tuple(float(u) for u in row) for row in np.exp(logs)]


def _random(section: "Search", tasks: int, steps: int, seed: int) -> list[Proposal]:
    draws = _draw(section, _generator(section, "random", seed), full_runs(section.budget_steps, steps), tasks)
    return [Proposal("random", seed, i, 0, u, steps) for i, u in enumerate(draws)]


def _tpe(section: "Search", tasks: int, steps: int, seed: int, outcome: Outcome) -> list[Proposal]:
    total = full_runs(section.budget_steps, steps)
    first = min(section.startup, total)
    proposals = [Proposal("tpe", seed, i, 0, u, steps)
                 for i, u in enumerate(_draw(section, _generator(section, "tpe", seed), first, tasks))]
    round_ = 0
    while len(proposals) < total:
        values = [outcome(p) for p in proposals]
        if any(v is None for v in values):
            return proposals  # the next batch is modelled on these: wait for them
        round_ += 1
        size = min(section.batch, total - len(proposals))
        batch = tpe_batch(section, tasks, seed, round_, [p.draws for p in proposals], values, size)
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


def _halving(section: "Search", tasks: int, rungs: Rungs, seed: int, outcome: Outcome) -> list[Proposal]:
    lengths = rungs.lengths()
    first = rungs.first_rung(section.budget_steps)
    sizes = rungs.sizes(first)
    draws = _draw(section, _generator(section, "halving", seed), first, tasks)
    rung = [Proposal("halving", seed, i, 0, u, lengths[0], rung=0) for i, u in enumerate(draws)]
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
