"""The search study kind: searchers' arithmetic by hand, their replay, and planning in rounds."""

import math
from collections import Counter

import numpy as np
import pytest

from study.plan import Recorded, plan_study, planned_count, recorded_outcomes
from study.searchers import DamagedProposals, Proposal, Rungs, full_runs, propose, scale_to_task_count, trial_count
from study.kinds.search import DEFAULT_BUDGET_RUNS, Search
from study.spec import parse_spec

TINY_TOY = {"tasks": 2, "train_size": 400, "test_size": 100}


def search_spec(log_every=30, **search):
    """A search spec; halving retrains its promoted runs unless `promoted` says otherwise."""
    return parse_spec({"study": "s", "kind": "search", "workload": "toy", "workload_options": TINY_TOY,
                       "seeds": [0, 1], "training": {"steps": 90, "log_every": log_every},
                       "search": {"promoted": "retrain", **search}})


def first_weight(proposal: Proposal) -> float:
    """A made-up validation value: the smaller w_0, the better."""
    return proposal.weights[0]


def test_halving_rungs_by_hand():
    assert Rungs(1000, 3, 3).lengths() == [111, 333, 1000]
    assert Rungs(3000, 3, 3).lengths() == [333, 1000, 3000]
    assert Rungs(40, 2, 1).lengths() == [40]
    assert Rungs(1000, 3, 3).sizes(18) == [18, 6, 2]
    assert Rungs(1000, 3, 3).sizes(20) == [20, 6, 2]
    # budget 6000: 18 * 111 + 6 * 333 + 2 * 1000 = 5996 fits; 19: 2109 + 1998 + 2000 = 6107 does not
    assert Rungs(1000, 3, 3).first_rung(6000) == 18
    # the fewest that leave one weighting at the last rung is eta^(rungs-1) = 9: 999 + 999 + 1000 = 2998
    assert Rungs(1000, 3, 3).first_rung(2998) == 9
    assert Rungs(1000, 3, 3).first_rung(2997) == 0
    assert full_runs(6000, 1000) == 6 and full_runs(6999, 1000) == 6


def test_continued_halving_rounds_its_rungs_to_logged_steps_and_pays_each_step_once():
    # MultiMNIST v3: 6000 / 9 = 666.7 rounds to 750 at log_every 250; promoted runs pay 1250 and 4000 more
    rungs = Rungs(6000, 3, 3, continued=True, unit=250)
    assert rungs.lengths() == [750, 2000, 6000] and rungs.paid() == [750, 1250, 4000]
    # budget 36000: n_0 = 24 costs 24 * 750 + 8 * 1250 + 2 * 4000 = 36000; 25: 18750 + 10000 + 8000 = 36750
    assert rungs.first_rung(36000) == 24
    # retrained, the same budget buys 17: 17 * 667 + 5 * 2000 + 1 * 6000 = 27339; 18: 12006 + 12000 + 12000
    assert Rungs(6000, 3, 3).first_rung(36000) == 17
    assert Rungs(90, 3, 3, continued=True, unit=30).increasing() is False  # 10 rounds up to 30, the middle rung


def test_a_continued_halving_plans_its_promotions_from_their_parents_states():
    spec = search_spec(log_every=10, promoted="continue", searchers=["halving"], budget_steps=360)
    # rungs (10, 30, 90) at log_every 10 pay (10, 20, 60): n_0 = 18 costs 180 + 6 * 20 + 2 * 60 = 420 > 360;
    # 15: 150 + 100 + 60 = 310, 16: 160 + 100 + 60 = 320, 17: 170 + 100 + 60 = 330 fit, 18 does not
    assert spec.section.promoted == "continue" and trial_count(spec.section, 90, 10) == 17 + 5 + 1
    outcomes = {}
    while True:
        planned = plan_study(spec, recorded=Recorded(outcomes))
        new = [p for p in planned if p.key not in outcomes]
        if not new:
            break
        outcomes.update({p.key: p.config.weights[0] if p.config.method == "static" else 1.0 for p in new})
    halving = [p for p in planned if p.config.method == "static" and p.config.seed == 0]
    by_key = {p.key: p for p in halving}
    assert Counter(p.config.steps for p in halving) == {10: 17, 30: 5, 90: 1}
    for trial in halving:
        assert trial.config.log_every == 10
        assert trial.keeps_state == (trial.config.steps < 90)  # the last rung's state is never continued
        if trial.config.steps == 10:
            assert trial.resumes is None
        else:  # the same weighting one rung below, at that rung's budget
            parent = by_key[trial.resumes]
            assert parent.config.weights == trial.config.weights and trial.resumes_at == parent.config.steps
            assert parent.config.steps == {30: 10, 90: 30}[trial.config.steps]
    # a spec without `promoted` continues; one stored before the field existed meant retrain
    from study.spec import parse_stored_spec

    stored = search_spec(log_every=10).to_dict()
    del stored["search"]["promoted"]
    assert parse_stored_spec(stored).section.promoted == "retrain"
    assert parse_spec(stored).section.promoted == "continue"


def test_a_search_spec_fills_its_defaults_and_counts_its_trials():
    spec = search_spec()
    assert spec.section.budget_steps == DEFAULT_BUDGET_RUNS * 90 == 720
    assert spec.section.startup == spec.section.batch == 2
    # random and tpe: 720 // 90 = 8 runs each; halving at rungs (10, 30, 90): n_0 = 24 costs
    # 240 + 8 * 30 + 2 * 90 = 660, n_0 = 25 costs 250 + 240 + 180 = 670, 26: 260 + 240 + 180 = 680,
    # 27: 270 + 270 + 270 = 810 > 720, so n_0 = 26 and 26 + 8 + 2 = 36 runs
    assert Rungs(90, 3, 3).first_rung(720) == 26
    assert trial_count(spec.section, 90, 30) == 8 + 8 + 36
    # per seed: one GradNorm, one GradNorm-Static, one inverse-initial-loss and the searchers' runs
    assert planned_count(spec, plan_study(spec)) == 2 * (1 + 52 + 1 + 1)


def test_random_draws_span_the_log_range_and_sum_to_the_task_count():
    section = Search(budget_steps=400 * 90, smallest=0.01)
    proposals = propose(section, 3, 90, 0, "random", lambda p: None)
    assert len(proposals) == 400 and all(p.round == 0 and p.steps == 90 for p in proposals)
    draws = np.array([p.draws for p in proposals])
    assert draws.min() >= 0.01 and draws.max() <= 1.0
    # log-uniform: a quarter of the log range below 0.01^(3/4) ~ 0.0316 gets about a quarter of the draws
    assert 0.2 < (draws < 0.01 ** 0.75).mean() < 0.3
    assert np.allclose([sum(p.weights) for p in proposals], 3.0)
    assert scale_to_task_count((1.0, 3.0)) == (0.5, 1.5)
    # each seed its own draws, the same draws every time
    again = propose(section, 3, 90, 0, "random", lambda p: None)
    other_seed = propose(section, 3, 90, 1, "random", lambda p: None)
    assert [p.draws for p in again] == [p.draws for p in proposals] != [p.draws for p in other_seed]


def test_halving_promotes_the_best_on_validation_and_trains_them_longer():
    section = Search(budget_steps=720, promoted="retrain")
    first = propose(section, 2, 90, 0, "halving", lambda p: None)
    assert [p.steps for p in first] == [10] * 26 and {p.rung for p in first} == {0}
    # with rung 0 known: the 8 smallest w_0 go on to 30 steps, with the same draws
    second = propose(section, 2, 90, 0, "halving", lambda p: first_weight(p) if p.rung == 0 else None)
    promoted = second[26:]
    assert [p.steps for p in promoted] == [30] * 8 and [p.index for p in promoted] == list(range(26, 34))
    best_eight = sorted(first, key=first_weight)[:8]
    assert [p.draws for p in promoted] == [p.draws for p in best_eight]
    # and the 2 best of those to the full 90
    every = propose(section, 2, 90, 0, "halving", first_weight)
    assert [p.steps for p in every[34:]] == [90, 90]
    assert [p.draws for p in every[34:]] == [p.draws for p in best_eight[:2]]
    assert {p.parent for p in every} == {None}  # retrained: nothing to go on from
    # a failed run (inf) is never promoted
    failed = propose(section, 2, 90, 0, "halving",
                     lambda p: math.inf if p.index == best_eight[0].index else first_weight(p))
    assert best_eight[0].draws not in [p.draws for p in failed[26:]]


def test_tpe_waits_for_each_round_replays_exactly_and_models_the_results():
    section = Search(budget_steps=16 * 90, batch=2, startup=4)
    assert len(propose(section, 2, 90, 0, "tpe", lambda p: None)) == 4  # the random start only
    # one round's results known: one more batch, modelled on them
    two_rounds = propose(section, 2, 90, 0, "tpe", lambda p: first_weight(p) if p.round == 0 else None)
    assert len(two_rounds) == 6 and [p.round for p in two_rounds[4:]] == [1, 1]
    every = propose(section, 2, 90, 0, "tpe", first_weight)
    assert len(every) == 16 and [p.index for p in every] == list(range(16))
    assert [p.round for p in every] == [0] * 4 + [r for r in range(1, 7) for _ in range(2)]
    # the same outcomes give the same proposals (what a relaunch and the report rely on)
    assert [p.draws for p in propose(section, 2, 90, 0, "tpe", first_weight)] == [p.draws for p in every]
    assert [p.draws for p in every[:6]] == [p.draws for p in two_rounds]
    # and TPE heads where w_0 is small: its modelled proposals beat the random ones it started from
    modelled, random_start = [first_weight(p) for p in every[4:]], [first_weight(p) for p in every[:4]]
    random_search = [first_weight(p) for p in propose(Search(budget_steps=12 * 90), 2, 90, 0, "random", lambda p: None)]
    assert np.median(modelled) < np.median(random_start) and np.median(modelled) < np.median(random_search)


def test_a_replay_takes_the_recorded_draws_whatever_this_machines_tpe_would_propose(monkeypatch):
    """A relaunch or a report on another CPU: TPE's floats differ in the last bits there, so the
    recorded draws, not a new TPE, give back the runs that trained."""
    import study.searchers as searchers

    section = Search(budget_steps=8 * 90, batch=2, startup=2)
    launched = propose(section, 2, 90, 0, "tpe", first_weight)
    known = {p.index: p.draws for p in launched}
    assert len(launched) == 8

    honest = searchers.tpe_batch

    def other_cpu(*args, **kwargs):  # the same model, one ulp apart
        return [tuple(math.nextafter(u, 2.0) for u in draws) for draws in honest(*args, **kwargs)]

    monkeypatch.setattr(searchers, "tpe_batch", other_cpu)
    assert [p.draws for p in propose(section, 2, 90, 0, "tpe", first_weight)] != [p.draws for p in launched]
    replayed = propose(section, 2, 90, 0, "tpe", first_weight, known=known)
    assert [p.draws for p in replayed] == [p.draws for p in launched]
    # past the recorded proposals, this machine's TPE models the next round on the recorded ones
    partly = propose(section, 2, 90, 0, "tpe", first_weight, known={i: known[i] for i in range(4)})
    assert [p.draws for p in partly[:4]] == [p.draws for p in launched[:4]]
    assert [p.draws for p in partly[4:6]] == [tuple(math.nextafter(u, 2.0) for u in p.draws) for p in launched[4:6]]


def test_recorded_draws_are_untrusted():
    section = Search(budget_steps=4 * 90, searchers=("random",))
    with pytest.raises(DamagedProposals, match=r"random #1 at seed 0 is not 2 numbers in \[0.001, 1\]"):
        propose(section, 2, 90, 0, "random", lambda p: None, known={0: (0.5, 0.5), 1: (0.5, 3.0), 2: (1.0, 1.0), 3: (1.0, 1.0)})
    with pytest.raises(DamagedProposals, match="random #0 at seed 0 is not 2 numbers"):
        propose(section, 2, 90, 0, "random", lambda p: None, known={i: (0.5,) for i in range(4)})
    # a batch recorded in part is a damaged record, not a cue to draw the rest anew
    with pytest.raises(DamagedProposals, match="holds only part of the batch of proposals 0-3"):
        propose(section, 2, 90, 0, "random", lambda p: None, known={0: (0.5, 0.5)})


def test_planning_in_rounds_reaches_the_counted_total_with_distinct_keys():
    spec = search_spec(budget_steps=360, batch=1, startup=1)
    outcomes: dict[str, float] = {}
    sizes = []
    while True:
        planned = plan_study(spec, recorded=Recorded(outcomes))
        sizes.append(len(planned))
        new = [p for p in planned if p.key not in outcomes]
        if not new:
            break
        # every run "recorded": validation value w_0 for static runs, 1 for the references
        outcomes.update({p.key: p.config.weights[0] if p.config.method == "static" else 1.0 for p in new})
    # round 0: per seed GradNorm, 4 random, 1 tpe, halving's n_0 = 14 (14 * 10 + 4 * 30 + 1 * 90 = 350 <= 360;
    # 15: 150 + 150 + 90 = 390), GradNorm-Static; then tpe one a round, halving a rung a round
    assert Rungs(90, 3, 3).first_rung(360) == 14
    assert sizes[0] == 2 * (1 + 4 + 1 + 14 + 1 + 1) and len(sizes) == 5  # 4 rounds of proposals, and the check
    assert sizes[-1] == planned_count(spec, planned) == 2 * (1 + 4 + 4 + 14 + 4 + 1 + 1 + 1)
    keys = [p.key for p in planned]
    assert len(set(keys)) == len(keys)
    assert Counter(p.config.method for p in planned) == {"gradnorm": 2, "gradnorm-static": 2, "static": 2 * 27,
                                                         "inverse-initial-loss": 2}
    assert Counter(p.config.steps for p in planned if p.config.method == "static") == {90: 2 * 9, 30: 2 * 4, 10: 2 * 14}
    # halving's short rungs log at their end
    assert {p.config.log_every for p in planned if p.config.steps == 10} == {10}


def test_recorded_outcomes_take_validation_values_and_make_failures_the_worst():
    import pandas as pd

    runs = pd.DataFrame({"key": ["a", "b", "c", "d"], "status": ["ok", "diverged", "ok", "crashed"],
                         "validation_value": [0.5, None, float("nan"), None]})
    assert recorded_outcomes(runs) == {"a": 0.5, "b": math.inf, "c": math.inf, "d": math.inf}


@pytest.mark.parametrize("searcher", ["random", "tpe", "halving"])
def test_searchers_draw_apart(searcher):
    """Two searchers never propose the same weighting: each has its own stream, so their keys differ."""
    section = Search(budget_steps=720)
    mine = {p.draws for p in propose(section, 2, 90, 0, searcher, lambda p: None)}
    others = {p.draws for other in ("random", "tpe", "halving") if other != searcher
              for p in propose(section, 2, 90, 0, other, lambda p: None)}
    assert mine and not mine & others
