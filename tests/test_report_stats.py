"""Report statistics against values computed by hand."""

import math

import numpy as np
import pytest

from study.report.stats import bootstrap_line, fit_line, percent_change, spearman, wilson_interval


def test_ols_on_four_points_by_hand():
    # x = 0..3, y = 1, 3, 2, 5: mean x 1.5, mean y 2.75, Sxx 5, Sxy 5.5, Syy 8.75
    fit = fit_line([0, 1, 2, 3], [1, 3, 2, 5])
    assert fit.slope == pytest.approx(1.1)  # 5.5 / 5
    assert fit.intercept == pytest.approx(1.1)  # 2.75 - 1.1 * 1.5
    assert fit.pearson_r == pytest.approx(5.5 / math.sqrt(5 * 8.75))
    # residuals -0.1, 0.8, -1.3, 0.6: SSE 2.7, s^2 = 2.7 / 2
    assert fit.residual_std == pytest.approx(math.sqrt(1.35))
    # t = 1.1 / (s / sqrt 5); with 2 degrees of freedom the t CDF is 1/2 + t / (2 sqrt(2 + t^2))
    t = 1.1 / (math.sqrt(1.35) / math.sqrt(5))
    assert fit.p_value == pytest.approx(2 * (0.5 - t / (2 * math.sqrt(2 + t * t))))
    # 95 % t quantile with 2 df is 4.302653
    half_width = 4.302653 * math.sqrt(1.35) / math.sqrt(5)
    assert (fit.slope_ci_low, fit.slope_ci_high) == pytest.approx((1.1 - half_width, 1.1 + half_width), rel=1e-6)


def test_confidence_band_is_narrowest_at_the_mean_x():
    fit = fit_line([0, 1, 2, 3], [1, 3, 2, 5])
    low, high = fit.band(np.array([1.5, 0.0]))
    # at mean x the half-width is t * s * sqrt(1/n)
    assert (high[0] - low[0]) / 2 == pytest.approx(4.302653 * math.sqrt(1.35) * 0.5, rel=1e-6)
    # at x = 0: t * s * sqrt(1/4 + 1.5^2 / 5)
    assert (high[1] - low[1]) / 2 == pytest.approx(4.302653 * math.sqrt(1.35) * math.sqrt(0.25 + 2.25 / 5), rel=1e-6)
    assert (low[0] + high[0]) / 2 == pytest.approx(2.75)


def test_a_perfect_negative_line():
    fit = fit_line([0, 1, 2, 3], [3, 1, -1, -3])
    assert (fit.slope, fit.intercept, fit.pearson_r, fit.p_value) == pytest.approx((-2, 3, -1, 0))


def test_fit_needs_three_points_and_spread():
    with pytest.raises(ValueError, match="at least 3 points"):
        fit_line([0, 1], [1, 2])
    with pytest.raises(ValueError, match="two different x"):
        fit_line([1, 1, 1], [1, 2, 3])


def test_spearman_is_rank_correlation():
    rho, _ = spearman([1, 2, 3, 4, 5], [1, 8, 27, 64, 125])  # monotone, not linear
    assert rho == pytest.approx(1.0)
    rho, _ = spearman([1, 2, 3, 4], [4, 3, 1, 2])
    # ranks d = (-3, -1, 2, 2): rho = 1 - 6 * 18 / (4 * 15) = -0.8
    assert rho == pytest.approx(-0.8)


def test_percent_change_vs_reference_by_hand():
    # (2 - 3) / 2 = -0.5 and (10 - 5) / 10 = 0.5: mean 0
    assert percent_change([2.0, 10.0], [3.0, 5.0]) == pytest.approx(0.0)
    # (1 - 0.5) / 1 = 0.5 and (1 - 2) / 1 = -1: mean -0.25, i.e. -25 % (worse than the reference)
    assert percent_change([1.0, 1.0], [0.5, 2.0]) == pytest.approx(-25.0)
    rows = percent_change(np.array([[1.0, 1.0], [4.0, 2.0]]), np.array([[0.5, 2.0], [2.0, 1.0]]))
    assert rows.tolist() == pytest.approx([-25.0, 50.0])


def test_wilson_interval_by_hand():
    # k = 0: centre = half = (z^2/2) / (n + z^2), so the interval is [0, z^2 / (n + z^2)]
    z2 = 1.959964**2
    assert wilson_interval(0, 100) == pytest.approx((0.0, z2 / (100 + z2)), abs=1e-6)  # 0 of 100: up to 3.7 %
    # k = n: [n / (n + z^2), 1]
    assert wilson_interval(20, 20) == pytest.approx((20 / (20 + z2), 1.0), abs=1e-6)
    # 5 of 20: centre (5 + z^2/2) / (20 + z^2), half z / (20 + z^2) sqrt(5 * 15 / 20 + z^2 / 4)
    centre, half = (5 + z2 / 2) / (20 + z2), math.sqrt(z2) / (20 + z2) * math.sqrt(75 / 20 + z2 / 4)
    assert wilson_interval(5, 20) == pytest.approx((centre - half, centre + half), abs=1e-6)
    assert wilson_interval(5, 20) == pytest.approx((0.1119, 0.4687), abs=1e-4)
    with pytest.raises(ValueError, match="0 <= successes <= trials"):
        wilson_interval(3, 2)


def test_bootstrap_of_a_perfect_line_has_no_width_and_a_noisy_one_covers_its_fit():
    x = np.arange(10.0)
    exact = bootstrap_line(x, 3 * x + 1)
    assert (exact.slope_low, exact.slope_high) == pytest.approx((3.0, 3.0)) and exact.r_low == pytest.approx(1.0)
    noisy_y = 3 * x + np.random.default_rng(1).normal(0, 4, size=10)
    noisy = bootstrap_line(x, noisy_y, resamples=4000, seed=2)
    fit = fit_line(x, noisy_y)
    assert noisy.slope_low < fit.slope < noisy.slope_high and noisy.slope_high - noisy.slope_low > 0.5
    assert noisy.r_low < fit.pearson_r < noisy.r_high <= 1.0
    assert bootstrap_line(x, noisy_y, resamples=4000, seed=2) == noisy  # the same seed, the same interval
    # Resamples that drew one x value only have no slope: they are left out and counted.
    assert bootstrap_line([0.0, 0.0, 1.0], [1.0, 2.0, 3.0], resamples=500).resamples < 500


def test_expected_best_of_k_by_hand_and_against_every_subset():
    from itertools import combinations

    from study.report.search import expected_best_of_k

    validation, change = [1.0, 2.0, 3.0], [10.0, 0.0, -10.0]
    assert expected_best_of_k(validation, change, 1) == pytest.approx(0.0)  # each run alone, equally likely
    # k = 2: the best-validation run is in 2 of the 3 pairs, the second-best wins the remaining pair
    assert expected_best_of_k(validation, change, 2) == pytest.approx(2 / 3 * 10.0)
    assert expected_best_of_k(validation, change, 3) == pytest.approx(10.0)
    rng = np.random.default_rng(4)
    validation, change = rng.normal(size=7), rng.normal(size=7)
    for k in range(1, 8):
        subsets = list(combinations(range(7), k))
        brute = np.mean([change[min(s, key=lambda j: validation[j])] for s in subsets])
        assert expected_best_of_k(validation, change, k) == pytest.approx(brute)
    with pytest.raises(ValueError, match="k must be between 1 and the 7 runs"):
        expected_best_of_k(validation, change, 8)


def test_random_search_curve_averages_seeds_and_finds_the_crossing_point():
    import pandas as pd

    from study.report.search import crossing_point, random_search_curve

    points = pd.DataFrame({
        "method": ["static"] * 6 + ["gradnorm-static"],
        "seed": [0, 0, 0, 1, 1, 1, 0],
        "validation_value": [1.0, 2.0, 3.0, 3.0, 2.0, 1.0, 0.1],
        "change_pct": [10.0, 0.0, -10.0, -30.0, -20.0, 4.0, 50.0],
    })
    curve = random_search_curve(points).set_index("runs")
    # seed 0: E_1 = 0, E_2 = 20/3, E_3 = 10; seed 1 (best validation is the +4 run): E_1 = -46/3, E_2 = (2 * 4 - 20) / 3 = -4, E_3 = 4
    assert curve["mean_change_pct"].tolist() == pytest.approx([-23 / 3, (20 / 3 - 4) / 2, 7.0])
    assert curve.loc[2, ["low_change_pct", "high_change_pct"]].tolist() == pytest.approx([-4.0, 20 / 3])
    assert crossing_point(curve.reset_index()).to_dict() == {
        "runs_to_match_gradnorm": 2, "runs_searched": 3, "best_of_all_change_pct": pytest.approx(7.0),
        "gradnorm_runs_charged": 1.0, "change_at_gradnorm_compute": pytest.approx(-23 / 3), "alpha_cost": None}
    # GradNorm charged 2.5 runs for its alpha: a random search of 2 runs is what the same compute buys
    charged = crossing_point(curve.reset_index(), 2.5, {"source": "sweep", "sentence": "charged."})
    assert charged.change_at_gradnorm_compute == pytest.approx((20 / 3 - 4) / 2)
    assert len(charged.findings()) == 2 and len(crossing_point(curve.reset_index()).findings()) == 1  # the cost, said


def test_one_crossing_rule_stays_at_or_above_rather_than_first_touch():
    import pandas as pd

    from study.report.search import crossing_point, stays_from

    assert stays_from([-1.0, 2.0, -0.5, 3.0, 4.0]) == 3  # touches at 1, falls back, stays from 3
    assert stays_from([1.0, 2.0, -0.1]) is None
    assert stays_from([0.0, 0.0]) == 0
    assert stays_from([1.0, float("nan"), 2.0]) == 2  # an unknown value is not "at or above"
    curve = pd.DataFrame({"runs": [1, 2, 3, 4], "mean_change_pct": [-1.0, 0.5, -0.2, 0.3]})
    assert crossing_point(curve).runs_to_match_gradnorm == 4  # the random-static report: the same rule


def test_alpha_cost_is_the_sweep_divided_over_its_seeds_by_hand():
    import pandas as pd

    from study.report.alpha_cost import alpha_source, sweep_cost

    # 2 seeds x (equal + 2 alphas); one run diverged at step 40, one crashed (no steps recorded)
    sweep = pd.DataFrame({"seed": [0, 0, 0, 1, 1, 1],
                          "steps_completed": [100, 100, 40, 100, 100, None],
                          "wall_time_s": [2.0, 3.0, 1.0, 2.0, 3.0, None]})
    cost = sweep_cost("sw", sweep)
    assert (cost.runs, cost.seeds, cost.steps_per_seed, cost.seconds_per_seed) == (6, 2, 220.0, 5.5)
    assert cost.runs_worth(100) == pytest.approx(2.2)
    assert cost.to_dict(100)["runs_worth"] == pytest.approx(2.2)
    assert "2.2 runs' worth of 100 steps per seed" in cost.sentence(100)
    assert sweep_cost("sw", sweep.iloc[0:0]) is None
    assert alpha_source({"gradnorm": {"alpha": 0.5, "alpha_from": "sw"}}) == "sw"
    assert alpha_source({"gradnorm": {"alpha": 0.5}}) is None and alpha_source({"gradnorm": ["x"]}) is None


def test_mean_interval_half_width_by_hand():
    from study.report.stats import mean_interval_half_width

    # n = 3: t(0.975, 2) = 4.302653, so the half width is 4.302653 * std / sqrt(3)
    assert mean_interval_half_width(2.0, 3) == pytest.approx(4.302653 * 2.0 / math.sqrt(3), rel=1e-6)
    assert math.isnan(mean_interval_half_width(2.0, 1)) and math.isnan(mean_interval_half_width(float("nan"), 3))


@pytest.mark.parametrize("values, shown", [
    ((-12.94, 0.1672), ["-12.94", "0.17"]),
    ((0.1672, 0.05), ["0.1672", "0.0500"]),
    ((-30.1, -38.14, -20.06), ["-30.10", "-38.14", "-20.06"]),
    ((1234.5, 2.0), ["1234", "2"]),
    ((0.0, 0.0), ["0", "0"]),
])
def test_an_estimate_and_its_interval_are_shown_with_one_number_of_decimals(values, shown):
    from study.output import same_decimals

    assert same_decimals(*values) == shown


def test_the_random_search_plot_labels_its_log_axis_at_whole_runs():
    import pandas as pd

    from study.report.search import search_plot

    curve = pd.DataFrame({"runs": [1, 2, 3, 4, 5, 6], "mean_change_pct": [-5.0, -1, 0, 1, 2, 3],
                          "low_change_pct": [-6.0] * 6, "high_change_pct": [4.0] * 6})
    axis = search_plot(curve, steps=500, gradnorm_static_change=None).layout.xaxis
    assert axis.type == "log"
    assert list(axis.tickvals) == [500, 1000, 1500, 2000, 3000]
    assert list(axis.ticktext) == ["1 run", "2 runs", "3 runs", "4 runs", "6 runs"]


def test_the_paired_bootstrap_of_a_difference_in_r_by_hand():
    from study.report.stats import bootstrap_r_difference

    x = [0.0, 1.0, 2.0, 3.0, 4.0]
    y = [0.0, -1.1, -1.9, -3.2, -4.0]  # r(x, y) = -0.9975...
    r = np.corrcoef(x, y)[0, 1]
    assert bootstrap_r_difference(x, x, y) == (0.0, 0.0, 0.0)  # the same x: no difference in any resample
    difference, low, high = bootstrap_r_difference(x, [-v for v in x], y)  # r(-x, y) = -r
    assert difference == pytest.approx(2 * r) and low <= difference <= high <= 0
    assert bootstrap_r_difference(x, [-v for v in x], y) == (difference, low, high)  # a fixed seed: reproducible
