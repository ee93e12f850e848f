"""The convergence guard on constructed traces: a falling group is flagged by how much, a flat or
rising one is not, runs stopped by patience count as converged, too few points are named."""

import math

import numpy as np
import pandas as pd
import pytest

from study.report.convergence import convergence_check, fitted_change

TASKS = ("a", "b")


def test_fitted_change_by_hand():
    # a perfect line falling 0.1 a step from 1.0: -30 % over 3 steps; its scatter is rounding only, so t is huge
    change, t = fitted_change(np.array([0, 1, 2, 3]), np.array([1.0, 0.9, 0.8, 0.7]))
    assert change == pytest.approx(-30.0) and t < -1e6
    assert fitted_change(np.array([0, 1]), np.array([1.0, 0.5])) == (pytest.approx(-50.0), -math.inf)  # no dof left
    # slope -0.001, fitted start 0.994: -0.30181 %; residuals 0.006, -0.013, 0.008, -0.001 give
    # se = sqrt(0.00027 / 2 / 5) = 0.0051962, t = -0.19245: noise, not a trend
    change, t = fitted_change(np.array([0, 1, 2, 3]), np.array([1.0, 0.98, 1.0, 0.99]))
    assert change == pytest.approx(-0.30181, abs=1e-5) and t == pytest.approx(-0.19245, abs=1e-5)


def run_row(key, method, steps_completed, weights=(1.0, 1.0), task=None):
    return {"key": key, "status": "ok", "method": method, "alpha": 0.5 if method == "gradnorm" else None,
            "task": task, "balancer_lr": None, "steps": 1000, "steps_completed": steps_completed,
            **{f"time_averaged_weight.{t}": w for t, w in zip(TASKS, weights)}, **{f"test_loss.{t}": 1.0 for t in TASKS}}


def trace_rows(key, curve_a, curve_b, steps, column="validation_loss"):
    rows = []
    for step, a, b in zip(steps, curve_a, curve_b):
        rows += [{"key": key, "step": step, "task": "a", "test_loss": 9.0, column: a},
                 {"key": key, "step": step, "task": "b", "test_loss": 9.0, column: b}]
    return rows


STEPS = [0, 250, 500, 750, 800, 850, 900, 950, 1000]


def test_a_group_still_falling_is_flagged_with_its_task_and_how_much():
    falling = [1.0, 0.8, 0.6, 0.5, 0.48, 0.46, 0.44, 0.42, 0.40]  # -20 % from 750 to 1000, a straight line
    flat = [1.0, 0.5, 0.4, 0.3, 0.301, 0.299, 0.3, 0.301, 0.299]
    rising = [1.0, 0.5, 0.3, 0.30, 0.31, 0.32, 0.33, 0.34, 0.35]  # over-fitting: not "unconverged"
    runs = pd.DataFrame([run_row("e0", "equal", 1000), run_row("e1", "equal", 1000), run_row("g0", "gradnorm", 1000),
                         run_row("s0", "single-task", 1000, weights=(0.0, 2.0), task=1)])
    traces = pd.DataFrame(trace_rows("e0", falling, flat, STEPS) + trace_rows("e1", falling, flat, STEPS)
                          + trace_rows("g0", flat, rising, STEPS) + trace_rows("s0", falling, flat, STEPS))
    check = convergence_check(runs, traces, budget=1000)
    assert check.split == "validation" and not check.converged
    assert [(t.group, t.task) for t in check.falling] == [("equal", "a")]  # s0's task a has weight 0: not fitted
    (trend,) = check.falling
    assert trend.runs == 2 and (trend.window_start, trend.window_end) == (750, 1000)
    assert trend.change_pct == pytest.approx(100 * (0.40 / 0.5 - 1), abs=1e-9)  # the ratio to step 750, -20 %
    assert "equal (a -20.0 %)" in check.headline() and check.headline().startswith("unconverged: validation losses")
    assert {(t.group, t.task) for t in check.trends} == {("equal", "a"), ("equal", "b"), ("gradnorm α=0.5", "a"),
                                                         ("gradnorm α=0.5", "b"), ("single-task 1", "b")}
    assert check.to_dict()["converged"] is False
    assert "(or training.select: best_validation with patience)" in check.headline()  # these runs were read at the end
    selected = convergence_check(runs.assign(selected_step=[750, 1000, 1000, 1000]), traces, budget=1000)
    assert selected.headline().endswith("steps for equal (a -20.0 %); a longer budget may change this study's answer")


def test_runs_stopped_by_patience_count_as_converged_and_old_traces_use_test_losses():
    falling = [1.0, 0.8, 0.6, 0.5, 0.48, 0.46, 0.44, 0.42, 0.40]
    flat = [1.0, 0.5, 0.4, 0.3, 0.301, 0.299, 0.3, 0.301, 0.299]
    runs = pd.DataFrame([run_row("e0", "equal", 500), run_row("e1", "equal", 1000)])
    traces = pd.DataFrame(trace_rows("e0", falling[:3], falling[:3], STEPS[:3], column="test_loss")
                          + trace_rows("e1", flat, flat, STEPS, column="test_loss"))
    traces["validation_loss"] = None  # recorded before validation traces
    check = convergence_check(runs, traces, budget=1000)
    assert check.split == "test" and check.converged and check.headline() is None
    assert [(s.group, s.runs, s.stopped_early) for s in check.stops] == [("equal", 2, 1)]
    short_rung = runs.assign(steps=[500, 1000])  # a search's short rung trained all it was given: not stopped
    assert [s.stopped_early for s in convergence_check(short_rung, traces, budget=1000).stops] == [0]
    assert all(t.runs == 1 for t in check.trends)
    assert any("test losses" in line for line in check.lines())


def test_too_few_log_points_are_named_instead_of_called_converged():
    runs = pd.DataFrame([run_row("e0", "equal", 1000)])
    traces = pd.DataFrame(trace_rows("e0", [1.0, 0.5, 0.4], [1.0, 0.5, 0.4], [0, 500, 1000]))
    check = convergence_check(runs, traces, budget=1000)
    assert not check.converged and check.too_short == ("equal",)
    assert check.headline().startswith("convergence unknown: equal logged fewer than 4 steps")
