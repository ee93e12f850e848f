"""A search study's report: the best static weighting found vs the compute spent, per searcher.

Each searcher's runs are taken in the order it proposed them (the replayed
search, study.kinds.search.search_proposals). After each run, the searcher's choice is
the full-length run (training.steps, like GradNorm's) with the best validation
value so far, and its score is that choice's test % change vs the GradNorm run
of the same seed,
100 * mean_i (L_i^GN - L_i^choice) / L_i^GN (positive: better than GradNorm).
Compute is the training steps spent so far, as trained (a run stopped early
by patience is charged the steps it took; a promoted run that continued from its
rung's saved state, the steps past it), and the worker seconds, each packed
run charged its share of its pack. Seeds are independent replicates
of the whole search: the curve is the mean over seeds, the band their range.

Halving's shorter rungs spend compute but are never the choice: on a workload
whose test loss rises late in training (digits does), a short run can beat a
full one on test, and scoring it against a full GradNorm run would credit the
search with early stopping, not with its weights. Its curve starts at its
first full-length run.

The crossing point is the least compute from which a searcher's mean stays at
or above 0 (GradNorm), in steps and in full runs' worth of steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from records import Status
from study.report.alpha_cost import AlphaCost
from study.report.figure4 import gradnorm_references, gradnorm_spread
from study.report.frames import task_names, task_values
from study.report.search_stats import SearcherStats, SearchStats
from study.report.search import random_search_curve, stays_from, value_at_compute, whole_run_log_axis
from study.report.stats import mean_interval_half_width, percent_change

OK = str(Status.OK)
COLOURS = {"random": "#577590", "tpe": "#2a9d8f", "halving": "#e76f51"}
NAMES = {"random": "random search", "tpe": "TPE", "halving": "successive halving"}


@dataclass
class BestFoundData:
    tasks: tuple[str, ...]
    steps_per_run: int
    runs: pd.DataFrame  # one row per search run, in each searcher's order, with the choice after it
    curve: pd.DataFrame  # per searcher and position: compute and the choice's score over seeds
    references: pd.DataFrame  # per seed: the GradNorm run (and its GradNorm-Static retrain's score)
    stats: SearchStats
    problems: list[str] = field(default_factory=list)
    # random search's expected choice over every order its runs could have come in (study.report.search)
    random_expected: pd.DataFrame = field(default_factory=pd.DataFrame)


def best_found_data(runs: pd.DataFrame, order: pd.DataFrame, steps_per_run: int,
                    alpha_cost: AlphaCost | None = None) -> BestFoundData:
    """`order`: searcher, seed, index, key, steps of every proposal (study.kinds.search.search_proposals);
    `alpha_cost`: the sweep GradNorm's α came from, added to GradNorm's compute (None: α was set)."""
    tasks = task_names(runs)
    problems: list[str] = []
    ok = runs[runs["status"] == OK]
    references = gradnorm_references(ok)
    if references.empty:
        problems.append("The comparison needs a finished GradNorm run; none has finished yet.")
    by_key = runs.set_index("key")
    rows = []
    for (searcher, seed), proposals in order.groupby(["searcher", "seed"], sort=False):
        if seed not in references.index:
            continue
        reference_losses = task_values(references.loc[[seed]], "test_loss", tasks)[0]
        steps_spent, seconds_spent, trained = 0, 0.0, []
        for proposal in proposals.sort_values("index").itertuples():
            if proposal.key not in by_key.index:
                break  # not trained yet: the searcher's later proposals are not known either
            run = by_key.loc[proposal.key]
            # the steps it trained: fewer than proposed where patience stopped it (or it diverged), and only
            # those past its rung where it continued from the rung's saved state (halving's promotions)
            steps_run = int(run["steps_completed"]) if pd.notna(run["steps_completed"]) else int(proposal.steps)
            resumed = run.get("resumed_step")
            steps_spent += steps_run - (int(resumed) if resumed is not None and pd.notna(resumed) else 0)
            seconds_spent += float(run["wall_time_s"]) if pd.notna(run["wall_time_s"]) else 0.0
            good = run["status"] == OK and pd.notna(run["validation_value"])
            change = np.nan
            if run["status"] == OK:
                change = float(percent_change(reference_losses, task_values(by_key.loc[[proposal.key]], "test_loss", tasks))[0])
            trained.append((int(proposal.steps), float(run["validation_value"]) if good else np.inf, change))
            rows.append({"searcher": searcher, "seed": int(seed), "index": int(proposal.index), "key": proposal.key,
                         "steps": int(proposal.steps), "status": run["status"], "validation_value": trained[-1][1],
                         "change_pct": change, "compute_steps": steps_spent, "compute_s": seconds_spent,
                         "chosen_change_pct": chosen_change(trained, steps_per_run)})
    table = pd.DataFrame(rows, columns=["searcher", "seed", "index", "key", "steps", "status", "validation_value",
                                        "change_pct", "compute_steps", "compute_s", "chosen_change_pct"])
    seeds = len(references)
    curve = mean_curve(table, seeds)
    expected = expected_random_curve(table, steps_per_run)
    references = references.assign(spread_pct=gradnorm_spread(references, tasks))
    stats = summary_stats(table, curve, references, ok, tasks, steps_per_run, alpha_cost)
    if len(expected):
        stats = replace(stats, random_expected=crossing(expected, steps_per_run, stats.gradnorm_compute_steps))
    if seeds and len(table) and not len(curve):
        problems.append("No searcher has results at every seed yet: the curves start when one has.")
    return BestFoundData(tasks, steps_per_run, table, curve, references.reset_index(), stats, problems, expected)


def chosen_change(trained: list[tuple[int, float, float]], full_steps: int) -> float:
    """The test change of the best-on-validation full-length run so far (NaN: none yet).

    `trained`: (steps, validation value (inf: failed), test change) of each run so far.
    """
    candidates = [(value, change) for steps, value, change in trained if steps == full_steps and np.isfinite(value)]
    if not candidates:
        return float("nan")
    return min(candidates, key=lambda candidate: candidate[0])[1]  # min keeps the first of equal values


def mean_curve(table: pd.DataFrame, seeds: int) -> pd.DataFrame:
    """Per searcher and position: mean compute, and the mean, range and t-interval of the choice's score
    over seeds; only positions where every seed has a choice."""
    columns = ["searcher", "index", "compute_steps", "compute_s", "mean_change_pct", "low_change_pct",
               "high_change_pct", "ci_half_width", "seeds"]
    if table.empty or not seeds:
        return pd.DataFrame(columns=columns)
    grouped = table.groupby(["searcher", "index"], sort=False)
    curve = grouped.agg(compute_steps=("compute_steps", "mean"), compute_s=("compute_s", "mean"),
                        mean_change_pct=("chosen_change_pct", "mean"), low_change_pct=("chosen_change_pct", "min"),
                        high_change_pct=("chosen_change_pct", "max"), std=("chosen_change_pct", "std"),
                        seeds=("chosen_change_pct", "count")).reset_index()  # seeds with a choice there
    curve = curve[curve["seeds"] == seeds].copy()
    curve["ci_half_width"] = [mean_interval_half_width(std, n) for std, n in zip(curve["std"], curve["seeds"])]
    return curve[columns].reset_index(drop=True)


def expected_random_curve(table: pd.DataFrame, steps_per_run: int) -> pd.DataFrame:
    """Random search's curve without the luck of its draw order: per k, the exact expected test change
    of the validation-chosen best of k of its runs (study.report.search), averaged over seeds.

    Its compute is k runs at the steps a random run trained on average (fewer than steps_per_run
    where patience stopped them), the same axis as the searchers' own curves."""
    random = table[table["searcher"] == "random"]
    runs = random[np.isfinite(random["validation_value"])]
    points = runs.assign(method="static")[["method", "seed", "validation_value", "change_pct"]]
    curve = random_search_curve(points)
    if curve.empty:
        return pd.DataFrame(columns=["compute_steps", "mean_change_pct", "low_change_pct", "high_change_pct"])
    by_seed = random.groupby("seed")["compute_steps"]
    steps_each = float((by_seed.max() / by_seed.size()).mean())  # the steps a random run trained, on average
    return curve.assign(compute_steps=curve["runs"] * steps_each)


def crossing(curve: pd.DataFrame, steps_per_run: int, gradnorm_steps: float | None = None) -> SearcherStats:
    """One searcher's curve: the least compute from which its mean choice stays at or above GradNorm
    (>= 0 %) to the end of the budget (study.report.search.stays_from), where it ends, and its
    choice at GradNorm's own compute, `gradnorm_steps` (None where its curve starts later)."""
    if curve.empty:
        return SearcherStats()
    start = stays_from(curve["mean_change_pct"])
    steps = float(curve["compute_steps"].iloc[start]) if start is not None else None
    last = curve.iloc[-1]
    return SearcherStats(
        change_at_gradnorm_compute=value_at_compute(curve, "compute_steps", gradnorm_steps or steps_per_run),
        steps_to_match_gradnorm=steps,
        runs_to_match_gradnorm=steps / steps_per_run if steps is not None else None,
        steps_spent=float(last["compute_steps"]),
        seconds_spent=float(last.get("compute_s", np.nan)),
        final_change_pct=float(last["mean_change_pct"]),
        final_change_low=float(last["low_change_pct"]),
        final_change_high=float(last["high_change_pct"]),
        final_change_ci_half_width=float(last.get("ci_half_width", np.nan)),
    )


def summary_stats(table: pd.DataFrame, curve: pd.DataFrame, references: pd.DataFrame, ok: pd.DataFrame,
                  tasks: tuple[str, ...], steps_per_run: int, alpha_cost: AlphaCost | None = None) -> SearchStats:
    # GradNorm's compute per seed: its own run, plus (charged honestly) the sweep its alpha came from
    own = float(references["steps_completed"].mean()) if len(references) else float(steps_per_run)  # early stopping saves
    gradnorm_steps = own + (alpha_cost.steps_per_seed if alpha_cost else 0.0)
    searchers = {}
    for searcher, part in table.groupby("searcher", sort=False):
        final = part.sort_values("index").groupby("seed").tail(1)
        searchers[searcher] = replace(
            crossing(curve[curve["searcher"] == searcher], steps_per_run, gradnorm_steps),
            runs_trained=int(len(part)), runs_failed=int((part["status"] != OK).sum()),
            final_change_pct_by_seed={int(s): float(v) for s, v in zip(final["seed"], final["chosen_change_pct"])})
    seconds = float(references["wall_time_s"].mean()) if len(references) else None
    retrained = ok[(ok["method"] == "gradnorm-static") & ok["seed"].isin(references.index)]
    static: dict[str, Any] = {}
    if len(retrained):
        change = percent_change(task_values(references.loc[retrained["seed"]], "test_loss", tasks),
                                task_values(retrained, "test_loss", tasks))
        static = {"gradnorm_static_change_pct": float(change.mean()),
                  "gradnorm_static_change_by_seed": {int(s): float(v) for s, v in zip(retrained["seed"], change)},
                  "gradnorm_static_seconds": float(retrained["wall_time_s"].mean())}
    return SearchStats(
        seeds=int(len(references)),
        steps_per_run=steps_per_run,
        searchers=searchers,
        alpha_cost=None if alpha_cost is None else alpha_cost.to_dict(steps_per_run),
        gradnorm_compute_steps=gradnorm_steps,
        gradnorm_spread_pct={int(seed): float(v) for seed, v in references["spread_pct"].items()},
        gradnorm_seconds=seconds,
        gradnorm_compute_s=None if seconds is None else seconds + (alpha_cost.seconds_per_seed if alpha_cost else 0.0),
        **static,
    )


def best_found_plot(data: BestFoundData, axis: str = "compute_steps") -> go.Figure:
    """Each searcher's mean choice (line) and range over seeds (band) against compute on a log axis;
    GradNorm at one run's compute (its seed range as an error bar), GradNorm-Static at two runs'."""
    figure = go.Figure()
    for searcher, curve in data.curve.groupby("searcher", sort=False):
        colour = COLOURS.get(searcher, "#888888")
        x = curve[axis].to_numpy()
        figure.add_trace(go.Scatter(x=np.r_[x, x[::-1]], y=np.r_[curve["high_change_pct"], curve["low_change_pct"][::-1]],
                                    mode="lines", fill="toself", line={"width": 0, "shape": "hv"}, fillcolor=_transparent(colour),
                                    hoverinfo="skip", name=f"{NAMES.get(searcher, searcher)}: range over seeds"))
        figure.add_trace(go.Scatter(x=x, y=curve["mean_change_pct"], mode="lines+markers", line={"color": colour, "shape": "hv"},
                                    marker={"size": 5}, name=f"{NAMES.get(searcher, searcher)}: mean over seeds"))
    stats = data.stats
    seconds = axis == "compute_s"
    if not seconds and len(data.random_expected):
        figure.add_trace(go.Scatter(x=data.random_expected["compute_steps"], y=data.random_expected["mean_change_pct"],
                                    mode="lines", line={"color": COLOURS["random"], "dash": "dot", "shape": "hv"},
                                    name="random search: expected over draw orders, mean over seeds"))
    gradnorm_x = stats.gradnorm_compute_s if seconds else stats.gradnorm_compute_steps
    spread = list(stats.gradnorm_spread_pct.values())
    charged = stats.alpha_cost is not None
    if gradnorm_x is not None and spread:
        figure.add_trace(go.Scatter(
            x=[gradnorm_x], y=[0.0], mode="markers",
            name=("GradNorm, charged for its α sweep" if charged else "one GradNorm run") + " (0 %; bar: its seed range)",
            marker={"symbol": "diamond", "size": 12, "color": "black"},
            error_y={"type": "data", "symmetric": False, "array": [max(spread)], "arrayminus": [-min(spread)]}))
    if stats.gradnorm_static_change_pct is not None:
        mean, by_seed = stats.gradnorm_static_change_pct, list(stats.gradnorm_static_change_by_seed.values())
        static_x = (gradnorm_x + stats.gradnorm_static_seconds) if seconds else gradnorm_x + data.steps_per_run
        figure.add_trace(go.Scatter(
            x=[static_x], y=[mean], mode="markers",
            name="GradNorm + GradNorm-Static (two runs; bar: seed range)",
            marker={"symbol": "star", "size": 14, "color": "#f4a261", "line": {"width": 1, "color": "black"}},
            error_y={"type": "data", "symmetric": False, "array": [max(by_seed) - mean],
                     "arrayminus": [mean - min(by_seed)]}))
    figure.add_hline(y=0, line={"color": "black", "dash": "dash", "width": 1})
    if seconds:
        xaxis = {"title": "compute spent per seed (worker seconds, each packed run charged its share), log scale",
                 "type": "log", "dtick": "D2"}
    else:  # a budget spans about a decade: ticks at whole runs' worth of steps read better than powers of 10
        most = max([float(data.curve["compute_steps"].max()) if len(data.curve) else 0.0,
                    stats.gradnorm_compute_steps + data.steps_per_run])
        xaxis = whole_run_log_axis(
            f"compute spent per seed (training steps, ticks at whole runs of {data.steps_per_run}), log scale",
            data.steps_per_run, most)
    figure.update_layout(title="Best static weighting found (chosen on validation) vs compute spent", xaxis=xaxis,
                         yaxis_title="test % change vs GradNorm (higher is better)", template="plotly_white",
                         legend={"orientation": "h", "y": -0.25})
    return figure


def _transparent(colour: str) -> str:
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},0.18)"
