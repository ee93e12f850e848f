"""Report data checked against numbers computed by hand, on a real SQLite database."""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from db import ResultsDB
from study.choices import resolve_choices
from study.errors import BadInput
from study.plan import plan_study
from study.report.dynamics import dynamics_data
from study.report.figure4 import figure4_data
from study.report.figure4_stats import Figure4Stats
from study.report.figure7 import figure7_data
from study.report.stats import wilson_interval
from study.report.tables import method_table
from study.spec import parse_spec
from records import Status, TaskMetric
from tests.fake_results import diverged_result, fake_result
from workers.config import TrialConfig


@pytest.fixture
def results(sqlite_url):
    with ResultsDB(sqlite_url) as store:
        yield store


def add(store, study, config, result):
    store.record(study, config.key(), config.to_dict(), result)


def static(weights, seed=0):
    return TrialConfig(method="static", weights=weights, seed=seed)


@pytest.fixture
def figure4_study(results):
    results.create_study("f4", "random-static", {"study": "f4"})
    # GradNorm: E_t[w] = (1.2, 0.8), test losses (1, 100)
    add(results, "f4", TrialConfig(method="gradnorm"), fake_result(final_test_losses=(1.0, 100.0), time_averaged_weights=(1.2, 0.8)))
    points = {
        (1.2, 0.8): (0.9, 110.0),  # distance 0;                 100 * mean(0.1, -0.1) = 0
        (1.5, 0.5): (1.2, 100.0),  # distance sqrt(0.18);        100 * mean(-0.2, 0) = -10
        (0.2, 1.8): (2.0, 50.0),  # distance sqrt(2);            100 * mean(-1, 0.5) = -25
        (1.0, 1.0): (0.8, 95.0),  # distance sqrt(0.08);         100 * mean(0.2, 0.05) = +12.5
    }
    for weights, losses in points.items():
        add(results, "f4", static(weights), fake_result(final_test_losses=losses, time_averaged_weights=weights))
    add(results, "f4", static((0.5, 1.5)), diverged_result())
    retrained = TrialConfig(method="gradnorm-static", weights=(1.2, 0.8), weights_from="x")
    add(results, "f4", retrained, fake_result(final_test_losses=(1.1, 100.0), time_averaged_weights=(1.2, 0.8)))  # -5
    return results


def test_figure4_distances_and_changes_by_hand(figure4_study):
    data = figure4_data(figure4_study.runs("f4"))
    points = data.points.set_index("method")
    static = points.loc["static"].sort_values("distance")
    assert static["distance"].tolist() == pytest.approx([0.0, math.sqrt(0.08), math.sqrt(0.18), math.sqrt(2.0)])
    assert static["change_pct"].tolist() == pytest.approx([0.0, 12.5, -10.0, -25.0])
    assert static["beats_gradnorm"].tolist() == [False, True, False, False]
    assert points.loc["gradnorm-static", "change_pct"] == pytest.approx(-5.0)
    stats = data.stats
    assert (stats.beat_gradnorm, stats.static_runs, stats.static_failed) == (1, 4, 1)
    assert stats.best_static_change_pct == pytest.approx(12.5)
    assert stats.gradnorm_static_change_pct == pytest.approx(-5.0) and stats.gradnorm_static_change_std is None
    assert stats.gradnorm_time_averaged_weights == {0: {"a": pytest.approx(1.2), "b": pytest.approx(0.8)}}


def test_figure4_measures_each_weighting_against_the_trivial_1_over_l0_weights_too(figure4_study):
    """L(0) = (1, 100) (fake_result's): 1/L(0) = (1, 0.01) scaled to sum 2 is (200/101, 2/101)."""
    data = figure4_data(figure4_study.runs("f4"))
    inverse = (200 / 101, 2 / 101)
    static = data.points[data.points["method"] == "static"].sort_values("distance")
    expected = [math.dist(w, inverse) for w in ((1.2, 0.8), (1.0, 1.0), (1.5, 0.5), (0.2, 1.8))]
    assert static["distance_inverse"].tolist() == pytest.approx(expected)
    confound = data.stats.confound
    weightings = data.weightings
    r_inverse = np.corrcoef(weightings["distance_inverse"], weightings["change_pct"])[0, 1]
    r_gradnorm = np.corrcoef(weightings["distance"], weightings["change_pct"])[0, 1]
    assert confound.pearson_r_inverse == pytest.approx(r_inverse)
    assert confound.r_difference == pytest.approx(r_gradnorm - r_inverse)
    assert confound.r_difference_ci_low <= confound.r_difference <= confound.r_difference_ci_high


def test_the_better_reference_is_named_only_when_the_paired_interval_excludes_0():
    from study.report.figure4 import confound_stats

    exact = np.arange(10.0)  # performance falls exactly with this distance (r = -1)
    change = -10 * exact
    noisy = np.array([3, 7, 1, 9, 0, 5, 8, 2, 6, 4.0])  # r = -0.055 with the change
    frame = lambda first, second: pd.DataFrame({"distance": first, "distance_inverse": second, "change_pct": change})  # noqa: E731
    assert confound_stats(frame(exact, noisy)).better_reference == "GradNorm's E_t[w]"
    assert confound_stats(frame(noisy, exact)).better_reference == "the 1/L_i(0) weights"
    same = confound_stats(frame(exact, exact))
    assert same.r_difference == 0 and same.better_reference.startswith("neither clearly")


def test_figure4_over_seeds_pools_each_weighting_and_gives_intervals_by_hand(results):
    results.create_study("seeds", "random-static", {"study": "seeds"})
    references = {0: ((1.0, 1.0), (1.0, 10.0)), 1: ((1.2, 0.8), (3.0, 10.0))}  # seed: (E_t[w], test losses)
    for seed, (weights, losses) in references.items():
        add(results, "seeds", TrialConfig(method="gradnorm", seed=seed), fake_result(final_test_losses=losses, time_averaged_weights=weights))
    static_losses = {  # (weights, seed): test losses -> % change vs that seed's GradNorm
        ((1.0, 1.0), 0): (0.5, 10.0),  # +25, distance 0
        ((0.5, 1.5), 0): (2.0, 10.0),  # -50, sqrt(0.5)
        ((1.5, 0.5), 0): (1.0, 5.0),  # +25, sqrt(0.5)
        ((1.0, 1.0), 1): (3.0, 10.0),  # 0, sqrt(0.08)
        ((0.5, 1.5), 1): (6.0, 10.0),  # -50, sqrt(0.98)
        ((1.5, 0.5), 1): (3.0, 20.0),  # -50, sqrt(0.18)
    }
    for (weights, seed), losses in static_losses.items():
        add(results, "seeds", static(weights, seed), fake_result(final_test_losses=losses, time_averaged_weights=weights))
    data = figure4_data(results.runs("seeds"))
    pooled = data.weightings.set_index("w.a")
    assert pooled["change_pct"].to_dict() == pytest.approx({1.0: 12.5, 0.5: -50.0, 1.5: -12.5})
    assert pooled.loc[1.0, "distance"] == pytest.approx(math.sqrt(0.08) / 2)
    assert pooled.loc[0.5, "distance"] == pytest.approx((math.sqrt(0.5) + math.sqrt(0.98)) / 2)
    assert pooled.loc[1.0, "change_std"] == pytest.approx(25 / math.sqrt(2))  # std of (25, 0)
    assert pooled["seeds"].tolist() == [2, 2, 2]
    stats = data.stats
    assert (stats.weightings_beating_gradnorm, stats.weightings, stats.beat_gradnorm, stats.static_runs) == (1, 3, 2, 6)
    assert stats.share_ci == pytest.approx(wilson_interval(1, 3)) and stats.share_beating_gradnorm == pytest.approx(1 / 3)
    # GradNorm's mean test losses (2, 10): seed 0 at 100 * mean(1/2, 0) = +25, seed 1 at -25
    assert stats.gradnorm_spread_pct == {0: pytest.approx(25.0), 1: pytest.approx(-25.0)}
    assert stats.per_seed[0].beat_gradnorm == 2 and stats.per_seed[1].beat_gradnorm == 0
    # seed 0: changes (+25, -50, +25) at distances (0, sqrt(0.5), sqrt(0.5)): its median +25
    assert stats.per_seed[0].median_change_pct == pytest.approx(25.0)
    line = stats.line
    assert line.n == 3 and line.bootstrap_slope_low <= line.slope <= line.bootstrap_slope_high
    # summary.json and back (JSON makes the seeds' keys text), and the sentences read from it
    back = Figure4Stats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert back == stats and back.headline() == [f"Figure 4: {line}" for line in stats.findings()]
    assert "1 of 3 weightings beat GradNorm over 2 seeds" in stats.share_sentence()


def test_figure4_at_a_budget_reads_the_traces_at_that_step_by_hand(figure4_study):
    from study.report.budgets import budget_table, runs_at_budget

    runs = figure4_study.runs("f4")
    gradnorm, near, far = TrialConfig(method="gradnorm").key(), static((1.0, 1.0)).key(), static((0.2, 1.8)).key()
    rows = []
    for key, points in {
        gradnorm: {10: ((1.0, 100.0), (1.4, 0.6)), 20: ((2.0, 100.0), (1.0, 1.0))},  # (test losses, weights)
        near: {10: ((0.5, 100.0), (1.0, 1.0)), 20: ((4.0, 100.0), (1.0, 1.0))},
        far: {10: ((1.0, 200.0), (0.2, 1.8))},  # not logged at step 20: it drops out there
    }.items():
        for step, (losses, weights) in points.items():
            rows += [{"key": key, "step": step, "task": task, "test_loss": loss, "weight": weight}
                     for task, loss, weight in zip(("a", "b"), losses, weights)]
    traces = pd.DataFrame(rows)
    at_10 = figure4_data(runs_at_budget(runs, traces, 10)).points.set_index("key")
    # GradNorm's E_t[w] over (0, 10] is (1.4, 0.6); its test losses there (1, 100)
    assert at_10.loc[near, "distance"] == pytest.approx(math.sqrt(0.32)) and at_10.loc[near, "change_pct"] == pytest.approx(25.0)
    assert at_10.loc[far, "distance"] == pytest.approx(math.sqrt(2.88)) and at_10.loc[far, "change_pct"] == pytest.approx(-50.0)
    assert set(at_10.index) == {near, far}  # runs without traces, and GradNorm-Static, are not at this budget
    at_20 = figure4_data(runs_at_budget(runs, traces, 20)).points.set_index("key")
    # over (0, 20]: E_t[w] = (1.2, 0.8), losses (2, 100)
    assert at_20.loc[near, "distance"] == pytest.approx(math.sqrt(0.08)) and at_20.loc[near, "change_pct"] == pytest.approx(-50.0)
    table = budget_table(runs, traces, [20, 10]).set_index("steps")
    assert table.loc[10, ["weightings", "beating_gradnorm"]].tolist() == [2, 1]
    assert table.loc[20, ["weightings", "beating_gradnorm"]].tolist() == [1, 0]
    assert table.loc[10, "share_ci_high_pct"] == pytest.approx(100 * wilson_interval(1, 2)[1])


def test_figure4_regression_uses_only_the_static_runs(figure4_study):
    data = figure4_data(figure4_study.runs("f4"))
    # x = sqrt(2) u with u = (0, 0.2, 0.3, 1), mean u 0.375; y = (0, 12.5, -10, -25), mean -5.625.
    # Suu = 0.5675, so Sxx = 1.135; Suy = -17.0625, so Sxy = -17.0625 sqrt(2); Syy = 754.6875.
    assert data.fit.n == 4  # the diverged static run and GradNorm-Static are left out
    assert data.fit.slope == pytest.approx(-17.0625 * math.sqrt(2) / 1.135)  # -21.2599
    assert data.fit.intercept == pytest.approx(-5.625 + 17.0625 / 1.135 * 0.375 * 2)  # 5.6498
    assert data.stats.line.pearson_r == pytest.approx(-17.0625 * math.sqrt(2) / math.sqrt(1.135 * 754.6875))  # -0.8245
    # ranks of x (1, 2, 3, 4), of y (3, 4, 2, 1): d^2 = 4 + 4 + 1 + 9 = 18, rho = 1 - 6 * 18 / (4 * 15)
    assert data.stats.line.spearman_rho == pytest.approx(-0.8)


def test_figure4_with_too_few_runs_says_so(results):
    results.create_study("thin", "random-static", {"study": "thin"})
    add(results, "thin", static((1.0, 1.0)), fake_result())
    data = figure4_data(results.runs("thin"))
    assert data.fit is None and data.points.empty
    assert data.problems == ["Figure 4 needs a finished GradNorm run; none has finished yet."]
    add(results, "thin", TrialConfig(method="gradnorm"), fake_result())
    data = figure4_data(results.runs("thin"))
    assert data.fit is None and len(data.points) == 1
    assert "needs at least 3 finished static weightings; 1 have finished" in data.problems[0]


@pytest.fixture
def sweep_study(results):
    results.create_study("sweep", "alpha-sweep", {"study": "sweep"})
    for seed, equal_losses in ((0, (2.0, 10.0)), (1, (4.0, 20.0))):
        add(results, "sweep", TrialConfig(method="equal", seed=seed), fake_result(final_test_losses=equal_losses))
    runs = {
        (0.5, 0): (1.0, 10.0),  # 100 * mean(0.5, 0) = 25
        (0.5, 1): (4.0, 10.0),  # 100 * mean(0, 0.5) = 25
        (1.5, 0): (3.0, 5.0),  # 100 * mean(-0.5, 0.5) = 0
        (1.5, 1): (2.0, 20.0),  # 100 * mean(0.5, 0) = 25
    }
    for (alpha, seed), losses in runs.items():
        add(results, "sweep", TrialConfig(method="gradnorm", alpha=alpha, seed=seed), fake_result(final_test_losses=losses))
    add(results, "sweep", TrialConfig(method="gradnorm", alpha=5.0, seed=0), diverged_result())
    add(results, "sweep", TrialConfig(method="gradnorm", alpha=5.0, seed=1), fake_result(final_test_losses=(4.0, 40.0)))  # -50
    return results


def test_figure7_gains_vs_equal_weights_of_the_same_seed(sweep_study):
    data = figure7_data(sweep_study.runs("sweep"))
    gains = data.gains.set_index(["alpha", "seed"])["gain_pct"]
    assert gains[(0.5, 0)] == pytest.approx(25.0) and gains[(0.5, 1)] == pytest.approx(25.0)
    assert gains[(1.5, 0)] == pytest.approx(0.0) and gains[(1.5, 1)] == pytest.approx(25.0)
    assert math.isnan(gains[(5.0, 0)]) and gains[(5.0, 1)] == pytest.approx(-50.0)
    by_alpha = data.by_alpha.set_index("alpha")
    assert by_alpha.loc[0.5, "mean_gain_pct"] == pytest.approx(25.0) and by_alpha.loc[0.5, "std_gain_pct"] == pytest.approx(0.0)
    assert by_alpha.loc[1.5, "mean_gain_pct"] == pytest.approx(12.5)
    assert by_alpha.loc[1.5, "std_gain_pct"] == pytest.approx(math.sqrt(2 * 12.5**2))  # sample std of (0, 25)
    assert by_alpha.loc[5.0, ["seeds_ok", "seeds_failed"]].tolist() == [1, 1]
    assert data.stats.best_alpha == 0.5 and data.stats.first_unstable_alpha == 5.0


def add_validation_sweep(results, spec=None):
    """Alpha 1.5 wins on validation, 0.5 on the test set (numbers below)."""
    results.create_study("sweep", "alpha-sweep", spec or {"study": "sweep"})

    def run(test, validation):
        return dataclasses.replace(fake_result(final_test_losses=test), final_validation_losses=validation)

    for seed, equal in ((0, (2.0, 10.0)), (1, (4.0, 20.0))):
        add(results, "sweep", TrialConfig(method="equal", seed=seed), run(equal, equal))
    sweep = {  # (alpha, seed): (test losses, validation losses)
        (0.5, 0): ((1.0, 10.0), (2.0, 10.0)),  # test gain 25, validation gain 0
        (0.5, 1): ((4.0, 10.0), (4.0, 20.0)),  # test 25, validation 0
        (1.5, 0): ((3.0, 5.0), (1.0, 10.0)),  # test 0, validation 100 * mean(0.5, 0) = 25
        (1.5, 1): ((2.0, 20.0), (2.0, 20.0)),  # test 25, validation 25
    }
    for (alpha, seed), (test, validation) in sweep.items():
        add(results, "sweep", TrialConfig(method="gradnorm", alpha=alpha, seed=seed), run(test, validation))


def test_figure7_chooses_alpha_on_validation_and_reports_its_test_gain(results):
    add_validation_sweep(results)
    data = figure7_data(results.runs("sweep"))
    by_alpha = data.by_alpha.set_index("alpha")
    assert by_alpha.loc[0.5, "mean_validation_gain_pct"] == pytest.approx(0.0)
    assert by_alpha.loc[1.5, "mean_validation_gain_pct"] == pytest.approx(25.0)
    assert data.stats.alpha_chosen_on_validation == 1.5
    assert data.stats.test_gain_pct_at_chosen == pytest.approx(12.5)  # mean of 0 and 25
    assert data.stats.best_alpha == 0.5 and data.stats.best_mean_gain_pct == pytest.approx(25.0)  # hindsight


def test_a_spec_takes_the_alpha_a_sweep_chose_on_validation(results, sqlite_url):
    base = {"study": "f4", "kind": "random-static", "workload_options": {"tasks": 2, "train_size": 400, "test_size": 100},
            "training": {"steps": 40, "log_every": 20}, "random_static": {"runs": 2}}
    sweep_spec = parse_spec({**base, "study": "sweep", "kind": "alpha-sweep", "random_static": None})
    add_validation_sweep(results, sweep_spec.to_dict())
    spec = resolve_choices(parse_spec({**base, "gradnorm": {"alpha_from": "sweep"}}), sqlite_url)
    assert spec.gradnorm.alpha == 1.5 and spec.gradnorm.alpha_from == "sweep"  # validation's choice, not the test's 0.5
    assert [p.config.alpha for p in plan_study(spec) if p.config.method == "gradnorm"] == [1.5]
    assert parse_spec(spec.to_dict()).identity() == spec.identity()  # the stored spec plans the same again
    other = parse_spec({**base, "training": {"steps": 60, "log_every": 20}, "gradnorm": {"alpha_from": "sweep"}})
    with pytest.raises(BadInput, match="^gradnorm.alpha_from: study 'sweep' has a different training"):
        resolve_choices(other, sqlite_url)
    results.set_planned_trials("sweep", 7)
    with pytest.raises(BadInput, match=r"^gradnorm.alpha_from: study 'sweep' is not finished \(6 of 7 trials recorded\)"):
        resolve_choices(parse_spec({**base, "gradnorm": {"alpha_from": "sweep"}}), sqlite_url)
    with pytest.raises(BadInput, match="^gradnorm.alpha_from: study 'f4' is a random-static study"):
        results.create_study("f4", "random-static", spec.to_dict())
        resolve_choices(parse_spec({**base, "study": "g", "gradnorm": {"alpha_from": "f4"}}), sqlite_url)


def test_figure7_without_validation_losses_chooses_nothing_on_them(sweep_study):
    assert figure7_data(sweep_study.runs("sweep")).stats.alpha_chosen_on_validation is None


def metrics(accuracy, mse):
    return (TaskMetric("a", "accuracy", accuracy, True), TaskMetric("b", "mse", mse, False))


@pytest.fixture
def methods_study(results):
    results.create_study("table", "methods", {"study": "table"})

    def result(accuracy, mse):
        return dataclasses.replace(fake_result(final_test_losses=(1.0, mse)), test_metrics=metrics(accuracy, mse))

    for seed, (acc_eq, mse_eq, acc_gn, mse_gn) in enumerate([(0.8, 4.0, 0.9, 3.0), (0.6, 6.0, 0.9, 5.0)]):
        add(results, "table", TrialConfig(method="equal", seed=seed), result(acc_eq, mse_eq))
        add(results, "table", TrialConfig(method="gradnorm", alpha=1.5, seed=seed), result(acc_gn, mse_gn))
        # single-task runs: task 0 is scored on accuracy.a, task 1 on mse.b
        add(results, "table", TrialConfig(method="single-task", task=0, seed=seed), result(0.5, 99.0))
        add(results, "table", TrialConfig(method="single-task", task=1, seed=seed), result(0.1, 2.0))
    return results


def test_method_table_means_stds_best_and_delta_m(methods_study):
    table = method_table(methods_study.runs("table"), methods_study.metric_directions("table"))
    assert table.columns == ["accuracy.a", "mse.b"]
    assert table.mean.loc["equal"].tolist() == pytest.approx([0.7, 5.0])
    assert table.std.loc["equal"].tolist() == pytest.approx([math.sqrt(0.02), math.sqrt(2.0)])
    assert table.mean.loc["gradnorm α=1.5"].tolist() == pytest.approx([0.9, 4.0])
    assert table.mean.loc["single-task"].tolist() == pytest.approx([0.5, 2.0])  # each task from its own run
    assert table.best.loc["gradnorm α=1.5", "accuracy.a"] and table.best.loc["single-task", "mse.b"]
    assert table.best.to_numpy().sum() == 2
    # Delta_m: equal: (-(0.7 - 0.5) / 0.5 + (5 - 2) / 2) / 2 = (-0.4 + 1.5) / 2 = 55 %
    assert table.delta_m["equal"] == pytest.approx(55.0)
    # gradnorm: (-(0.9 - 0.5) / 0.5 + (4 - 2) / 2) / 2 = (-0.8 + 1) / 2 = 10 %
    assert table.delta_m["gradnorm α=1.5"] == pytest.approx(10.0)
    assert table.delta_m["single-task"] == pytest.approx(0.0)


def test_delta_m_per_seed_its_interval_and_paired_comparisons_by_hand(methods_study):
    from study.report.tables import MethodTableStats, table_html, table_stats

    table = method_table(methods_study.runs("table"), methods_study.metric_directions("table"))
    # per seed against the mean single-task baseline (0.5, 2.0): equal (-0.6 + 1) / 2 = 20 %, (-0.2 + 2) / 2 = 90 %;
    # gradnorm (-0.8 + 0.5) / 2 = -15 %, (-0.8 + 1.5) / 2 = 35 %: their means are the table's 55 and 10
    assert table.scores.loc["equal"].tolist() == pytest.approx([20.0, 90.0])
    assert table.scores.loc["gradnorm α=1.5"].tolist() == pytest.approx([-15.0, 35.0])
    # t interval of (20, 90): 12.7062 * (70 / sqrt 2) / sqrt 2 = 444.717 either side of 55
    low, high = table.intervals.loc["equal", ["ci_low", "ci_high"]]
    assert (low, high) == (pytest.approx(55 - 444.71, abs=0.01), pytest.approx(55 + 444.71, abs=0.01))
    assert table.best_label == "gradnorm α=1.5" == table.gradnorm_label
    (versus,) = table.paired()  # GradNorm is the best row: one reference, one comparison
    # differences 35 and 55: mean 45, half width 12.706 * (20 / sqrt 2) / sqrt 2 = 127.06; better in neither seed
    assert (versus.method, versus.other, versus.seeds, versus.better_seeds) == ("equal", "gradnorm α=1.5", 2, 0)
    assert versus.mean_difference == pytest.approx(45.0)
    assert (versus.ci_low, versus.ci_high) == (pytest.approx(45 - 127.06, abs=0.01), pytest.approx(45 + 127.06, abs=0.01))
    assert versus.verdict == "not distinguishable"
    stats = table_stats(table)
    assert stats.best_by_mean == "gradnorm α=1.5" and stats.paired == (versus,)
    assert stats.delta_m_pct == {"equal": pytest.approx(55.0), "gradnorm α=1.5": pytest.approx(10.0),
                                 "single-task": pytest.approx(0.0)}
    assert MethodTableStats.from_dict(json.loads(json.dumps(stats.to_dict()))) == stats  # summary.json and back
    assert stats.to_dict()["paired"][0]["verdict"] == "not distinguishable"
    assert "+55.00 (-389.72 to +499.72)" in table_html(table)


def test_paired_verdicts_follow_the_interval():
    from study.report.paired import paired

    scores = pd.DataFrame({0: [1.0, 2.0], 1: [1.1, 2.2], 2: [0.9, 2.1]}, index=["a", "b"])
    comparison = paired(scores, "a", "b")  # a is lower in every seed by 1.0, 1.1, 1.2: the interval excludes 0
    assert comparison.mean_difference == pytest.approx(-1.1) and comparison.better_seeds == 3
    assert comparison.verdict == "better" and paired(scores, "b", "a").verdict == "worse"
    one_seed = paired(scores[[0]], "a", "b")
    assert one_seed.seeds == 1 and one_seed.verdict == "not distinguishable" and math.isnan(one_seed.ci_low)


def test_normalized_test_loss_curve_from_traces(results):
    results.create_study("dyn", "methods", {"study": "dyn"})
    add(results, "dyn", TrialConfig(method="equal", seed=0), fake_result(initial_losses=(1.0, 100.0)))
    add(results, "dyn", TrialConfig(method="equal", seed=1), fake_result(initial_losses=(2.0, 100.0)))
    runs = results.runs("dyn")
    data = dynamics_data(runs, results.traces("dyn"))
    # fake traces: test loss = step + i + 2; at step 10: seed 0: 12/1 + 13/100 = 12.13, seed 1: 12/2 + 0.13 = 6.13
    at_10 = data.normalized[(data.normalized["label"] == "equal") & (data.normalized["step"] == 10)]
    assert at_10["normalized_test_loss"].item() == pytest.approx((12.13 + 6.13) / 2)
    weights = data.weights[(data.weights["step"] == 20) & (data.weights["task"] == "a")]
    assert weights["weight"].item() == pytest.approx(1.5)


def test_only_weights_that_move_are_drawn(results):
    from study.report.dynamics import changing_weights

    results.create_study("moving", "methods", {"study": "moving"})
    add(results, "moving", TrialConfig(method="static", weights=(3.0, 1.0)), fake_result(time_averaged_weights=(1.5, 0.5)))
    add(results, "moving", TrialConfig(method="gradnorm"), fake_result(moving_weights=True))
    data = dynamics_data(results.runs("moving"), results.traces("moving"))
    assert changing_weights(data.weights) == ["gradnorm α=0.12"]  # static weights differ by task, not in time


def test_log_axes_only_for_values_spanning_more_than_a_hundredfold():
    from study.report.dynamics import spans_decades

    assert spans_decades([0.001, 1.5, 2.0]) and not spans_decades([0.5, 1.0, 49.0])
    assert not spans_decades([]) and not spans_decades([0.0, 0.0])  # nothing positive to scale


def test_loss_panels_fill_rows_of_four():
    from study.report.dynamics import panel_grid

    # a ten-task study: the normalized-loss panel and ten task panels, 4 + 4 + 3
    cells = panel_grid(11, 4)
    assert cells[:5] == [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1)]
    assert cells[-1] == (3, 3)
    assert panel_grid(3, 4) == [(1, 1), (1, 2), (1, 3)]


def test_loss_figure_of_five_tasks_has_two_rows_and_grows_taller():
    from study.report.dynamics import DynamicsData, losses_plot

    tasks = [f"task{i}" for i in range(5)]
    losses = pd.DataFrame([("equal", step, task, 1.0, 1.0) for step in (0, 10) for task in tasks],
                          columns=["label", "step", "task", "train_loss", "test_loss"])
    normalized = pd.DataFrame({"label": ["equal", "equal"], "step": [0, 10], "normalized_test_loss": [5.0, 4.0]})
    figure = losses_plot(DynamicsData(weights=pd.DataFrame(), losses=losses, normalized=normalized))
    # six panels in rows of four, 150 + 2 * 300 px high; the normalized loss is on y, tasks on y2..y6
    assert figure.layout.height == 750
    assert [trace.yaxis for trace in figure.data if trace.name == "equal test"] == ["y2", "y3", "y4", "y5", "y6"]
    assert figure.layout.yaxis5.domain[1] < figure.layout.yaxis4.domain[0]  # task3 opens the second row


def test_every_mark_of_figure4_has_a_legend_entry(figure4_study):
    from study.report.figure4 import figure4_plot

    names = [trace.name for trace in figure4_plot(figure4_data(figure4_study.runs("f4"))).data]
    # 3 static runs worse than GradNorm (grey-blue), 1 better (green), each colour its own legend entry
    assert "static weights, worse than GradNorm" in names and "static weights that beat GradNorm" in names
    assert "GradNorm (0 %)" in names and "GradNorm-Static" in names


def test_two_task_weights_are_drawn_against_w0_not_as_parallel_coordinates(figure4_study):
    from study.report.figure4 import weights_parallel_plot

    figure = weights_parallel_plot(figure4_data(figure4_study.runs("f4")))
    assert figure.data[0].type == "scatter"
    assert sorted(figure.data[0].x) == pytest.approx([0.2, 1.0, 1.2, 1.5])  # w.a of the four finished static runs


def test_rising_test_losses_are_found_by_hand():
    from study.report.dynamics import rising_test_losses

    losses = pd.DataFrame({
        "label": ["equal"] * 6,
        "task": ["a", "a", "a", "b", "b", "b"],
        "step": [0, 10, 20, 0, 10, 20],
        "train_loss": [1.0] * 6,
        "test_loss": [1.0, 0.5, 0.6, 1.0, 0.5, 0.52],  # a ends 20 % above its minimum, b 4 %
    })
    assert rising_test_losses(losses) == [("equal", "a")]


def test_log_axes_have_one_tick_per_decade():
    from study.report.dynamics import DynamicsData, losses_plot

    losses = pd.DataFrame({"label": ["equal"] * 2, "step": [0, 10], "task": ["a"] * 2,
                           "train_loss": [100.0, 0.01], "test_loss": [100.0, 0.02]})
    normalized = pd.DataFrame({"label": ["equal"] * 2, "step": [0, 10], "normalized_test_loss": [1.0, 0.5]})
    figure = losses_plot(DynamicsData(pd.DataFrame(), losses, normalized))
    assert figure.layout.yaxis2.type == "log" and figure.layout.yaxis2.dtick == 1


def test_the_validation_view_puts_validation_metrics_under_the_test_names():
    from study.report.build import validation_view

    runs = pd.DataFrame({"test_loss.a": [1.0], "accuracy.a": [0.9], "validation_accuracy.a": [0.7],
                         "validation_loss.a": [2.0], "validation_value": [3.0]})
    view = validation_view(runs)
    assert view["accuracy.a"].tolist() == [0.7] and "test_loss.a" in view and view["validation_value"].tolist() == [3.0]
    assert validation_view(runs.assign(**{"validation_accuracy.a": [None], "validation_loss.a": [None]})) is None


def test_a_method_swept_over_its_lr_gets_one_row_per_lr_and_one_chosen_on_validation(results):
    from study.report.tables import chosen_on_validation

    results.create_study("lrs", "methods", {"study": "lrs"})
    for seed in (0, 1):
        add(results, "lrs", TrialConfig(method="equal", seed=seed), fake_result())
        # validation values: lr 0.01 at 3 and 5 (mean 4), lr 0.1 at 2 and 8 (mean 5)
        for lr, validation in ((0.01, (3.0, 5.0)[seed]), (0.1, (2.0, 8.0)[seed])):
            result = dataclasses.replace(fake_result(), validation_metric=validation)
            add(results, "lrs", TrialConfig(method="uncertainty", balancer_lr=lr, seed=seed), result)
    runs = results.runs("lrs")
    table = method_table(runs, results.metric_directions("lrs"))
    assert list(table.mean.index) == ["equal", "uncertainty lr=0.01", "uncertainty lr=0.1"]
    chosen = chosen_on_validation(runs)
    assert chosen == {"uncertainty": {"label": "uncertainty lr=0.01", "validation_value": pytest.approx(4.0),
                                      "variants": {"uncertainty lr=0.01": pytest.approx(4.0), "uncertainty lr=0.1": pytest.approx(5.0)}}}


def test_the_step_a_task_was_taken_out_is_stored_queried_and_marked(results):
    from study.report.dynamics import weights_plot

    results.create_study("stuck", "methods", {"study": "stuck"})
    config = TrialConfig(method="gradnorm", stuck_window=10)
    result = dataclasses.replace(fake_result(moving_weights=True), stuck_at_step=(None, 20))
    add(results, "stuck", config, result)
    add(results, "stuck", TrialConfig(method="equal"), fake_result())
    runs = results.runs("stuck").set_index("method")
    assert runs.loc["gradnorm", "stuck_at_step.b"] == 20 and "stuck_at_step.a" not in runs.columns  # no task a was taken out
    assert pd.isna(runs.loc["equal", "stuck_at_step.b"])
    assert "stuck_at_step" not in results.metric_directions("stuck")  # not a column of the methods table
    runs = results.runs("stuck")
    data = dynamics_data(runs, results.traces("stuck"))
    assert data.stuck[["key", "task", "step"]].to_dict(orient="records") == [{"key": config.key(), "task": "b", "step": 20}]
    marks = [trace for trace in weights_plot(data).data if trace.name == "task taken out (stuck)"]
    assert len(marks) == 1 and list(marks[0].x) == [20]


def with_validation(result, value):
    return dataclasses.replace(result, validation_metric=value)


@pytest.fixture
def search_study(results):
    """Two seeds of a random search of three 10-step runs each (each trains its 10 steps; the diverged one
    fails at its last); hand numbers in the test."""
    ten = (0, 5, 10)  # the fake runs' log steps: 10 steps completed
    results.create_study("srch", "search", {"study": "srch"})
    references = {0: (1.0, 100.0), 1: (2.0, 100.0)}
    for seed, losses in references.items():
        add(results, "srch", TrialConfig(method="gradnorm", seed=seed, steps=10), fake_result(final_test_losses=losses, steps=ten))
    add(results, "srch", TrialConfig(method="gradnorm-static", weights=(1.5, 0.5), weights_from="x", seed=0, steps=10),
        fake_result(final_test_losses=(1.1, 100.0), steps=ten))  # -5 % vs seed 0's GradNorm
    proposals = {
        0: [((1.0, 1.0), 3.0, (0.9, 110.0)),   # 100 * mean(0.1, -0.1) = 0
            ((0.5, 1.5), 2.0, (1.2, 100.0)),   # 100 * mean(-0.2, 0) = -10
            ((1.5, 0.5), 5.0, (0.8, 95.0))],   # +12.5, but the worst on validation
        1: [((1.0, 1.0), 1.0, (1.0, 100.0)),   # 100 * mean(0.5, 0) = +25
            ((0.5, 1.5), 4.0, (2.0, 100.0)),   # 0
            ((1.5, 0.5), None, None)],         # diverged
    }
    order = []
    for seed, runs in proposals.items():
        for index, (weights, validation, losses) in enumerate(runs):
            config = TrialConfig(method="static", weights=weights, seed=seed, steps=10)
            result = (fake_result(status=Status.DIVERGED, steps=ten) if losses is None else
                      with_validation(fake_result(final_test_losses=losses, steps=ten), validation))
            add(results, "srch", config, result)
            order.append({"searcher": "random", "seed": seed, "index": index, "key": config.key(), "steps": 10})
    return results, pd.DataFrame(order)


def test_best_found_follows_the_validation_choice_by_hand(search_study):
    from study.report.best_found import best_found_data
    from study.report.search_stats import SearchStats

    results, order = search_study
    data = best_found_data(results.runs("srch"), order, steps_per_run=10)
    runs = data.runs.set_index(["seed", "index"])
    # seed 0 chooses the run with the best validation value so far: 0, then -10 (validation 2 < 3), still -10
    assert runs.loc[0, "chosen_change_pct"].tolist() == pytest.approx([0.0, -10.0, -10.0])
    assert runs.loc[0, "change_pct"].tolist() == pytest.approx([0.0, -10.0, 12.5])
    # seed 1: +25 throughout; the diverged run changes nothing
    assert runs.loc[1, "chosen_change_pct"].tolist() == pytest.approx([25.0, 25.0, 25.0])
    assert runs.loc[(1, 2), "validation_value"] == math.inf
    curve = data.curve
    assert curve["compute_steps"].tolist() == [10, 20, 30]
    assert curve["compute_s"].tolist() == pytest.approx([1.25, 2.5, 3.75])  # fake runs take 1.25 s each
    assert curve["mean_change_pct"].tolist() == pytest.approx([12.5, 7.5, 7.5])
    assert curve["low_change_pct"].tolist() == pytest.approx([0.0, -10.0, -10.0])
    assert curve["high_change_pct"].tolist() == pytest.approx([25.0, 25.0, 25.0])
    # t interval of the mean of (-10, 25): t_{0.975, 1} = 12.706, std = 35 / sqrt(2)
    assert curve["ci_half_width"].iloc[-1] == pytest.approx(12.706 * 35 / math.sqrt(2) / math.sqrt(2), rel=1e-4)
    entry = data.stats.searchers["random"]
    assert entry.steps_to_match_gradnorm == 10 and entry.runs_to_match_gradnorm == 1
    assert entry.final_change_pct == pytest.approx(7.5) and entry.runs_trained == 6 and entry.runs_failed == 1
    assert entry.final_change_pct_by_seed == pytest.approx({0: -10.0, 1: 25.0})
    assert data.stats.gradnorm_static_change_pct == pytest.approx(-5.0)
    # random search without the luck of its order (finished runs only): best of 1 is the mean, seed 0
    # (0 - 10 + 12.5) / 3, seed 1 (25 + 0) / 2; best of 2 at seed 0 is the validation-best of a pair:
    # the -10 run (rank 1) in 2 of 3 pairs, the 0 run (rank 2) in 1, so -20/3; seed 1's pair: +25
    assert data.random_expected["compute_steps"].tolist() == [10, 20]
    assert data.random_expected["mean_change_pct"].tolist() == pytest.approx([(2.5 / 3 + 12.5) / 2, (-20 / 3 + 25) / 2])
    assert data.stats.random_expected.steps_to_match_gradnorm == 10
    assert data.stats.random_expected.runs_trained is None  # an expectation over its runs, not runs of its own
    # summary.json and back: JSON makes the seeds' keys text; from_dict makes them seeds again
    back = SearchStats.from_dict(json.loads(json.dumps(data.stats.to_dict())))
    assert back.searchers["random"].final_change_pct_by_seed == entry.final_change_pct_by_seed  # keys are seeds again
    assert json.dumps(back.to_dict(), sort_keys=True) == json.dumps(data.stats.to_dict(), sort_keys=True)
    # a run stopped early by patience is charged the steps it trained, not the 10 proposed
    runs = results.runs("srch")
    runs.loc[runs["key"] == order["key"].iloc[0], "steps_completed"] = 4
    stopped_data = best_found_data(runs, order, steps_per_run=10)
    stopped = stopped_data.runs.set_index(["seed", "index"])
    assert stopped.loc[0, "compute_steps"].tolist() == [4, 14, 24]
    # the order-free curve is on the same axis: a random run trained (24 / 3 + 30 / 3) / 2 = 9 steps on average
    assert stopped_data.random_expected["compute_steps"].tolist() == [9.0, 18.0]
    # GradNorm's seed spread: each seed vs the mean of (1, 100) and (2, 100) = (1.5, 100)
    assert data.stats.gradnorm_spread_pct == pytest.approx({0: 100 * (0.5 / 1.5) / 2, 1: -100 * (0.5 / 1.5) / 2})


def test_best_found_choice_and_crossing_point_by_hand():
    from study.report.best_found import chosen_change, crossing

    # the choice is among full-length runs only: halving's short rungs never are
    assert chosen_change([(30, 1.0, -3.0), (30, 0.5, 7.0)], 30) == 7.0
    assert math.isnan(chosen_change([(10, 1.0, -3.0), (10, 0.5, 7.0)], 30))
    assert chosen_change([(10, 0.1, 50.0), (30, 2.0, 4.0), (30, 3.0, 9.0)], 30) == 4.0
    assert math.isnan(chosen_change([(30, math.inf, 1.0)], 30))
    curve = pd.DataFrame({"compute_steps": [10, 20, 30, 40, 50], "compute_s": [1, 2, 3, 4, 5],
                          "mean_change_pct": [-1.0, 2.0, -0.5, 3.0, 4.0], "low_change_pct": [-2.0] * 5,
                          "high_change_pct": [5.0] * 5, "ci_half_width": [1.0] * 5})
    # it touches 0 at 20 steps but falls back: it stays at or above GradNorm from 40 on
    assert crossing(curve, steps_per_run=20).steps_to_match_gradnorm == 40
    assert crossing(curve, steps_per_run=20).runs_to_match_gradnorm == 2
    assert crossing(curve.assign(mean_change_pct=[1.0, 2.0, 3.0, 4.0, -0.1]), 20).steps_to_match_gradnorm is None
    assert crossing(curve.assign(mean_change_pct=[0.0] * 5), 20).steps_to_match_gradnorm == 10
    # GradNorm at one run (20 steps) or charged 30 more for its alpha: the choice that compute buys
    assert crossing(curve, 20).change_at_gradnorm_compute == 2.0
    assert crossing(curve, 20, gradnorm_steps=50).change_at_gradnorm_compute == 4.0
    assert crossing(curve.iloc[2:], 20).change_at_gradnorm_compute is None  # the curve starts later


def test_a_search_report_refuses_to_replay_an_unbounded_stored_spec(results, tmp_path):
    """The stored spec is untrusted: one asking for 10^15 runs is named as a problem, not replayed."""
    from study.report.build import build_report

    stored = {"study": "huge", "kind": "search", "workload": "toy", "training": {"steps": 1},
              "search": {"budget_steps": 10 ** 15, "searchers": ["random"]}}
    results.create_study("huge", "search", stored)
    add(results, "huge", TrialConfig(method="gradnorm", steps=1), fake_result())
    report = build_report(results, "huge", tmp_path / "report", png=False)
    assert any("search.budget_steps" in problem and "cannot be read" in problem for problem in report.summary["problems"])
    assert "search" not in report.summary


def test_gradnorm_is_charged_in_static_runs_as_trained_by_hand():
    from study.report.alpha_cost import AlphaCost
    from study.report.build import gradnorm_in_static_runs

    runs = pd.DataFrame({"status": ["ok", "ok", "ok", "diverged"], "method": ["static", "static", "gradnorm", "static"],
                         "steps_completed": [1000, 1200, 900, 10]})
    cost = AlphaCost("sweep", runs=10, seeds=2, steps_per_seed=3300.0, seconds_per_seed=1.0)
    # static runs trained 1,100 steps on average (patience); GradNorm 900 plus its sweep's 3,300 per seed
    assert gradnorm_in_static_runs(runs, cost, steps=3000) == pytest.approx((900 + 3300) / 1100)
    assert gradnorm_in_static_runs(runs, None, steps=3000) == pytest.approx(900 / 1100)
    full = runs.assign(steps_completed=[3000, 3000, 3000, 10])
    assert gradnorm_in_static_runs(full, cost, steps=3000) == pytest.approx(1 + 3300 / 3000)


def test_a_report_of_a_study_mid_run_says_it_is_incomplete_and_counts_the_seeds_that_trained_static_runs(
        results, tmp_path):
    """Mid-study, GradNorm's references of every seed can be in while only seed 0's static runs are:
    the share of weightings beating GradNorm is over 1 seed, and the page says the study is unfinished."""
    from study.report.build import build_report

    results.create_study("mid", "random-static", {"study": "mid", "kind": "random-static"}, planned_trials=12)
    for seed in (0, 1, 2):
        add(results, "mid", TrialConfig(method="gradnorm", seed=seed), fake_result(final_test_losses=(1.0, 10.0)))
    for weights, losses in (((1.0, 1.0), (0.5, 10.0)), ((0.5, 1.5), (2.0, 10.0)), ((1.5, 0.5), (1.0, 5.0))):
        add(results, "mid", static(weights), fake_result(final_test_losses=losses, time_averaged_weights=weights))
    report = build_report(results, "mid", tmp_path / "report", png=False)
    assert report.summary["figure4"]["seeds"] == 3 and report.summary["figure4"]["static_seeds"] == 1
    first = report.summary["problems"][0]
    assert first.startswith("incomplete: 6 of the 12 planned trials have finished")
