"""Figure 4: random static weights vs the GradNorm run's time-averaged weights.

x = ||w_static - E_t[w_GradNorm]||_2, y = 100 * mean_i (L_i^GN - L_i^static) / L_i^GN
(final test losses after the same number of steps; negative: worse than
GradNorm). Each static run is compared with the GradNorm run of its own seed.

With several seeds every weighting is trained at each seed: a weighting's
point is its mean over seeds (x: the mean distance to each seed's E_t[w]), the
line is fitted to those points with bootstrap intervals over weightings, and
the share of weightings that beat GradNorm gets a Wilson interval. GradNorm's
own seed spread (each seed's % change vs the mean of GradNorm's test losses)
is drawn as a band around 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from study.report.figure4_stats import Confound, DistanceLine, Figure4Stats, SeedLine
from study.report.frames import task_names, task_values
from study.report.stats import (
    LinearFit,
    bootstrap_line,
    bootstrap_r_difference,
    fit_line,
    percent_change,
    spearman,
    wilson_interval,
)
from records import Status

OK = str(Status.OK)

MIN_POINTS = 3


@dataclass
class Figure4Data:
    tasks: tuple[str, ...]
    points: pd.DataFrame  # one row per static or GradNorm-Static run
    weightings: pd.DataFrame  # one row per static weighting: its mean over seeds
    references: pd.DataFrame  # one row per seed: the GradNorm run, with its spread_pct
    fit: LinearFit | None  # fitted to the weightings' means
    stats: Figure4Stats
    problems: list[str] = field(default_factory=list)


def figure4_data(runs: pd.DataFrame) -> Figure4Data:
    tasks = task_names(runs)
    ok = runs[runs["status"] == OK]
    references = gradnorm_references(ok)
    compared = ok[ok["method"].isin(["static", "gradnorm-static"]) & ok["seed"].isin(references.index)]
    failed_static = int(((runs["method"] == "static") & (runs["status"] != OK)).sum())
    problems = []
    if references.empty:
        problems.append("Figure 4 needs a finished GradNorm run; none has finished yet.")

    reference_of_each = references.loc[compared["seed"]]  # the GradNorm run each point is compared with
    reference_weights = task_values(reference_of_each, "time_averaged_weight", tasks)
    reference_losses = task_values(reference_of_each, "test_loss", tasks)
    weights = task_values(compared, "time_averaged_weight", tasks)
    # The trivial rival reference: w ∝ 1/L_i(0) (sum T), from the same seed's first-batch losses, which
    # every run of a seed shares; no run needs to train for it.
    inverse = inverse_initial_loss_weights(task_values(reference_of_each, "initial_loss", tasks))
    points = pd.DataFrame(
        {
            "key": compared["key"].to_numpy(),
            "method": compared["method"].to_numpy(),
            "seed": compared["seed"].to_numpy(),
            "distance": np.linalg.norm(weights - reference_weights, axis=1),
            "distance_inverse": np.linalg.norm(weights - inverse, axis=1),
            "change_pct": percent_change(reference_losses, task_values(compared, "test_loss", tasks)),
            "value": compared["value"].to_numpy(),
            "validation_value": compared["validation_value"].to_numpy() if "validation_value" in compared else np.nan,
        }
    )
    for i, task in enumerate(tasks):
        points[f"w.{task}"] = weights[:, i]
    points["beats_gradnorm"] = points["change_pct"] > 0

    static = points[points["method"] == "static"]
    weightings = mean_over_seeds(static, tasks)
    references = references.assign(spread_pct=gradnorm_spread(references, tasks))
    fit = line = confound = None
    if len(weightings) >= MIN_POINTS and weightings["distance"].nunique() > 1:
        fit = fit_line(weightings["distance"], weightings["change_pct"])
        line = distance_line(fit, weightings)
        confound = confound_stats(weightings)
    elif not references.empty:
        problems.append(
            f"Figure 4's regression needs at least {MIN_POINTS} finished static weightings; {len(weightings)} have finished."
        )
    beating = int(weightings["beats_gradnorm"].sum())
    retrained = points.loc[points["method"] == "gradnorm-static", "change_pct"]
    stats = Figure4Stats(
        seeds=int(len(references)),
        static_seeds=int(static["seed"].nunique()),
        static_runs=int(len(static)),
        static_failed=failed_static,
        beat_gradnorm=int(static["beats_gradnorm"].sum()),
        weightings=int(len(weightings)),
        weightings_beating_gradnorm=beating,
        best_static_change_pct=float(weightings["change_pct"].max()) if len(weightings) else None,
        median_static_change_pct=float(weightings["change_pct"].median()) if len(weightings) else None,
        gradnorm_spread_pct={int(seed): float(v) for seed, v in references["spread_pct"].items()},
        gradnorm_time_averaged_weights={int(seed): dict(zip(tasks, map(float, row))) for seed, row in
                                        zip(references.index, task_values(references, "time_averaged_weight", tasks))},
        share_ci=wilson_interval(beating, len(weightings)) if len(weightings) else None,
        line=line,
        confound=confound,
        per_seed=per_seed_stats(static) if len(references) > 1 else None,
        gradnorm_static_change_pct=float(retrained.mean()) if len(retrained) else None,
        gradnorm_static_change_std=float(retrained.std()) if len(retrained) > 1 else None,
    )
    return Figure4Data(tasks, points, weightings, references.reset_index(), fit, stats, problems)


def inverse_initial_loss_weights(initial_losses: np.ndarray) -> np.ndarray:
    """Rows of w_i = T * (1 / L_i(0)) / sum_j (1 / L_j(0)), as workers.balancers.static trains them."""
    inverse = 1.0 / np.asarray(initial_losses, dtype=float)
    return inverse * (inverse.shape[-1] / inverse.sum(axis=-1, keepdims=True))


def distance_line(fit: LinearFit, weightings: pd.DataFrame) -> DistanceLine:
    """The fitted line over weightings with Spearman's rho and the bootstrap intervals beside it."""
    rho, rho_p = spearman(weightings["distance"], weightings["change_pct"])
    boot = bootstrap_line(weightings["distance"], weightings["change_pct"])
    return DistanceLine(
        n=fit.n, slope=fit.slope, intercept=fit.intercept, pearson_r=fit.pearson_r, p_value=fit.p_value,
        slope_ci_low=fit.slope_ci_low, slope_ci_high=fit.slope_ci_high, residual_std=fit.residual_std,
        spearman_rho=rho, spearman_p=rho_p, bootstrap_resamples=boot.resamples, bootstrap_slope_low=boot.slope_low,
        bootstrap_slope_high=boot.slope_high, bootstrap_r_low=boot.r_low, bootstrap_r_high=boot.r_high,
    )


def confound_stats(weightings: pd.DataFrame) -> Confound:
    """Does distance to GradNorm's E_t[w] explain performance better than distance to the 1/L_i(0) weights?

    r_difference = r(distance to E_t[w], change) - r(distance to 1/L(0) weights, change), with a paired
    bootstrap 95 % interval over weightings. Performance falling with distance is a negative r, so a
    difference below 0 favours GradNorm's weights as the reference, above 0 the trivial ones.
    """
    if weightings["distance_inverse"].nunique() < 2:
        return Confound("undetermined (every weighting is as far from the 1/L_i(0) weights)")
    difference, low, high = bootstrap_r_difference(weightings["distance"], weightings["distance_inverse"],
                                                   weightings["change_pct"])
    r_inverse = fit_line(weightings["distance_inverse"], weightings["change_pct"]).pearson_r
    if high < 0:
        better = "GradNorm's E_t[w]"
    elif low > 0:
        better = "the 1/L_i(0) weights"
    else:
        better = "neither clearly (the interval of the difference spans 0)"
    return Confound(better, r_inverse, difference, low, high)


def gradnorm_references(ok: pd.DataFrame) -> pd.DataFrame:
    """The finished GradNorm run of each seed, indexed by seed: what that seed's other runs are compared with."""
    return ok[ok["method"] == "gradnorm"].drop_duplicates("seed").set_index("seed")


def mean_over_seeds(static: pd.DataFrame, tasks: tuple[str, ...]) -> pd.DataFrame:
    """One row per weighting (the same w at every seed): mean distance and % change, their spread, seeds."""
    weight_columns = [f"w.{task}" for task in tasks]
    grouped = static.assign(weighting=static[weight_columns].round(9).apply(tuple, axis=1)).groupby("weighting", sort=False)
    weightings = grouped.agg(
        distance=("distance", "mean"),
        distance_inverse=("distance_inverse", "mean"),
        change_pct=("change_pct", "mean"),
        change_std=("change_pct", "std"),
        seeds=("seed", "nunique"),
        **{column: (column, "first") for column in weight_columns},
    ).reset_index(drop=True)
    weightings["beats_gradnorm"] = weightings["change_pct"] > 0
    return weightings


def gradnorm_spread(references: pd.DataFrame, tasks: tuple[str, ...]) -> np.ndarray:
    """Each seed's GradNorm run as a % change vs the mean of GradNorm's test losses over seeds."""
    losses = task_values(references, "test_loss", tasks)
    if not len(losses):
        return np.zeros(0)
    return percent_change(losses.mean(axis=0, keepdims=True), losses)


def per_seed_stats(static: pd.DataFrame) -> dict[int, SeedLine]:
    """Figure 4 seed by seed: how many runs beat that seed's GradNorm, and the line through them."""
    result = {}
    for seed, runs in static.groupby("seed"):
        fit = (fit_line(runs["distance"], runs["change_pct"])
               if len(runs) >= MIN_POINTS and runs["distance"].nunique() > 1 else None)
        result[int(seed)] = SeedLine(int(len(runs)), int(runs["beats_gradnorm"].sum()), float(runs["change_pct"].median()),
                                     *((fit.slope, fit.pearson_r, fit.p_value) if fit else ()))
    return result


def figure4_plot(data: Figure4Data) -> go.Figure:
    figure = go.Figure()
    static = data.weightings
    several_seeds = data.stats.seeds > 1
    hover = np.array([_hover(row, data.tasks, several_seeds) for _, row in static.iterrows()], dtype=object)
    spread = data.references["spread_pct"]
    right = max(float(static["distance"].max()) if len(static) else 1.0, 1e-9)
    if several_seeds:  # GradNorm's own seed noise: points inside the band are within it
        figure.add_trace(go.Scatter(x=[0, right, right, 0], y=[spread.min(), spread.min(), spread.max(), spread.max()],
                                    mode="lines", fill="toself", line={"width": 0}, fillcolor="rgba(0,0,0,0.08)", hoverinfo="skip",
                                    name=f"GradNorm's range over {len(spread)} seeds"))
    # One trace per colour, so that the legend names every kind of mark drawn.
    what = "weightings (mean over seeds)" if several_seeds else "static weights"
    for beats, name, colour in ((False, f"{what}, worse than GradNorm", "#577590"),
                                (True, f"{what} that beat GradNorm", "#2a9d8f")):
        chosen = (static["beats_gradnorm"] == beats).to_numpy()
        if chosen.any():
            error = {"type": "data", "array": static["change_std"][chosen], "thickness": 1, "width": 0} if several_seeds else None
            figure.add_trace(go.Scattergl(x=static["distance"][chosen], y=static["change_pct"][chosen], mode="markers",
                                          name=name, marker={"size": 7, "color": colour, "opacity": 0.8}, error_y=error,
                                          hovertext=hover[chosen].tolist(), hoverinfo="text"))
    if data.fit is not None:
        xs = np.linspace(0, right, 100)
        low, high = data.fit.band(xs)
        figure.add_trace(go.Scatter(x=np.r_[xs, xs[::-1]], y=np.r_[high, low[::-1]], fill="toself", line={"width": 0},
                                    fillcolor="rgba(231,111,81,0.18)", name="95 % confidence band", hoverinfo="skip"))
        figure.add_trace(go.Scatter(x=xs, y=data.fit.predict(xs), mode="lines", line={"color": "#e76f51", "width": 2},
                                    name=f"OLS: slope {data.fit.slope:.3g}, r = {data.fit.pearson_r:.3f}, p = {data.fit.p_value:.2g}"))
    retrained = data.points[data.points["method"] == "gradnorm-static"]
    if len(retrained):
        figure.add_trace(go.Scatter(x=retrained["distance"], y=retrained["change_pct"], mode="markers", name="GradNorm-Static" + (" (one star per seed)" if several_seeds else ""),
                                    marker={"symbol": "star", "size": 16, "color": "#f4a261", "line": {"width": 1, "color": "black"}}))
    figure.add_trace(go.Scatter(x=[0, right], y=[0, 0], mode="lines", name="GradNorm (0 %)", hoverinfo="skip",
                                line={"color": "black", "dash": "dash", "width": 1}))
    stats = data.stats
    share = f" (95 % CI {100 * stats.share_ci[0]:.0f}–{100 * stats.share_ci[1]:.0f} %)" if stats.share_ci else ""
    figure.update_layout(
        title=f"Static weights vs GradNorm: {stats.weightings_beating_gradnorm} of {stats.weightings} weightings beat it{share}",
        xaxis_title="L2 distance to GradNorm's time-averaged weights",
        yaxis_title="% change in test loss vs GradNorm (higher is better)",
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def _hover(weighting: pd.Series, tasks: tuple[str, ...], several_seeds: bool) -> str:
    text = f"change {weighting['change_pct']:+.2f} %"
    if several_seeds:
        text += f" ± {weighting['change_std']:.2f} (std over {int(weighting['seeds'])} seeds)"
    return text + "".join(f"<br>w.{task} = {weighting[f'w.{task}']:.3f}" for task in tasks)


CHANGE_COLOURS = [[0.0, "#d62828"], [0.5, "#fcbf49"], [1.0, "#2a9d8f"]]  # worse ... better than GradNorm


def weights_parallel_plot(data: Figure4Data) -> go.Figure:
    """Where the static weights lie and how they did; GradNorm's E_t[w] for comparison.

    T >= 3: parallel coordinates, one line per static run coloured by its % change.
    T = 2: w_1 = 2 - w_0, so every line would cross at one point; the % change
    against w_0 says the same thing readably.
    """
    static = data.weightings
    references = data.references
    change = static["change_pct"].to_numpy()
    colourbar = {"title": "% change vs GradNorm<br>(green: better)"}
    if len(data.tasks) == 2:
        first = data.tasks[0]
        figure = go.Figure(go.Scatter(
            x=static[f"w.{first}"], y=change, mode="markers", name="static weights",
            marker={"size": 7, "color": change, "colorscale": CHANGE_COLOURS, "showscale": True, "colorbar": colourbar},
        ))
        for seed, weight in zip(references.index, references[f"time_averaged_weight.{first}"]):
            figure.add_vline(x=float(weight), line={"color": "black", "dash": "dash"})
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="GradNorm's E_t[w]",
                                    line={"color": "black", "dash": "dash"}))
        figure.update_layout(title=f"% change vs GradNorm against w.{first} (w.{data.tasks[1]} = 2 − w.{first})",
                             xaxis_title=f"w.{first}", yaxis_title="% change vs GradNorm", template="plotly_white",
                             legend={"orientation": "h", "y": -0.2})
        return figure
    low, high = (float(change.min()), float(change.max())) if len(change) else (-1.0, 1.0)
    span = max(high - low, 1e-9)
    # The reference rows get a value below every static run, mapped to black.
    marker = low - span * 0.02
    colour = np.r_[change, np.full(len(references), marker)]
    scale = [[0.0, "black"], [0.0196, "black"], [0.02, "#d62828"], [0.5, "#fcbf49"], [1.0, "#2a9d8f"]]
    dimensions = [
        {"label": f"w.{task}", "values": np.r_[static[f"w.{task}"], references[f"time_averaged_weight.{task}"]], "range": [0, len(data.tasks)]}
        for task in data.tasks
    ]
    dimensions.append({"label": "% vs GradNorm", "values": np.r_[change, np.zeros(len(references))]})
    figure = go.Figure(
        go.Parcoords(line={"color": colour, "colorscale": scale, "cmin": marker, "cmax": high, "showscale": True,
                           "colorbar": colourbar}, dimensions=dimensions)
    )
    figure.update_layout(title="Static weights, one line per run (colour: % change vs GradNorm); black: GradNorm's E_t[w]",
                         template="plotly_white")
    return figure
