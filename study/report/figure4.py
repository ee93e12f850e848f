"""Figure 4: random static weights vs the GradNorm run's time-averaged weights.

x = ||w_static - E_t[w_GradNorm]||_2, y = 100 * mean_i (L_i^GN - L_i^static) / L_i^GN
(final test losses after the same number of steps; negative: worse than
GradNorm). Each static run is compared with the GradNorm run of its own seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from study.report.frames import task_names, task_values
from study.report.stats import LinearFit, fit_line, percent_change, spearman
from records import Status

OK = str(Status.OK)

MIN_POINTS = 3


@dataclass
class Figure4Data:
    tasks: tuple[str, ...]
    points: pd.DataFrame  # one row per static or GradNorm-Static run
    references: pd.DataFrame  # one row per seed: the GradNorm run
    fit: LinearFit | None
    stats: dict[str, Any]
    problems: list[str] = field(default_factory=list)


def figure4_data(runs: pd.DataFrame) -> Figure4Data:
    tasks = task_names(runs)
    ok = runs[runs["status"] == OK]
    references = ok[ok["method"] == "gradnorm"].drop_duplicates("seed").set_index("seed")
    compared = ok[ok["method"].isin(["static", "gradnorm-static"]) & ok["seed"].isin(references.index)]
    failed_static = int(((runs["method"] == "static") & (runs["status"] != OK)).sum())
    problems = []
    if references.empty:
        problems.append("Figure 4 needs a finished GradNorm run; none has finished yet.")

    reference_of_each = references.loc[compared["seed"]]  # the GradNorm run each point is compared with
    reference_weights = task_values(reference_of_each, "time_averaged_weight", tasks)
    reference_losses = task_values(reference_of_each, "test_loss", tasks)
    weights = task_values(compared, "time_averaged_weight", tasks)
    points = pd.DataFrame(
        {
            "key": compared["key"].to_numpy(),
            "method": compared["method"].to_numpy(),
            "seed": compared["seed"].to_numpy(),
            "distance": np.linalg.norm(weights - reference_weights, axis=1),
            "change_pct": percent_change(reference_losses, task_values(compared, "test_loss", tasks)),
            "value": compared["value"].to_numpy(),
        }
    )
    for i, task in enumerate(tasks):
        points[f"w.{task}"] = weights[:, i]
    points["beats_gradnorm"] = points["change_pct"] > 0

    static = points[points["method"] == "static"]
    fit = None
    stats: dict[str, Any] = {
        "static_runs": int(len(static)),
        "static_failed": failed_static,
        "beat_gradnorm": int(static["beats_gradnorm"].sum()),
        "best_static_change_pct": float(static["change_pct"].max()) if len(static) else None,
        "median_static_change_pct": float(static["change_pct"].median()) if len(static) else None,
    }
    if len(static) >= MIN_POINTS and static["distance"].nunique() > 1:
        fit = fit_line(static["distance"], static["change_pct"])
        rho, rho_p = spearman(static["distance"], static["change_pct"])
        stats.update({f"ols_{k}": v for k, v in fit.to_dict().items() if k not in ("x_mean", "x_sum_squares")})
        stats.update({"spearman_rho": rho, "spearman_p": rho_p})
    elif not references.empty:
        problems.append(
            f"Figure 4's regression needs at least {MIN_POINTS} finished static runs; {len(static)} have finished."
        )
    static_retrained = points[points["method"] == "gradnorm-static"]
    if len(static_retrained):
        stats["gradnorm_static_change_pct"] = float(static_retrained["change_pct"].mean())
    stats["gradnorm_time_averaged_weights"] = {
        int(seed): dict(zip(tasks, map(float, row))) for seed, row in zip(references.index, task_values(references, "time_averaged_weight", tasks))
    }
    return Figure4Data(tasks, points, references.reset_index(), fit, stats, problems)


def figure4_plot(data: Figure4Data) -> go.Figure:
    figure = go.Figure()
    static = data.points[data.points["method"] == "static"]
    hover = "key " + static["key"] + "<br>change " + static["change_pct"].map("{:+.2f} %".format)
    for task in data.tasks:
        hover = hover + f"<br>w.{task} = " + static[f"w.{task}"].map("{:.3f}".format)
    # One trace per colour, so that the legend names every kind of mark drawn.
    for beats, name, colour in ((False, "static weights (worse than GradNorm)", "#577590"),
                                (True, "static weights that beat GradNorm", "#2a9d8f")):
        chosen = (static["beats_gradnorm"] == beats).to_numpy()
        if chosen.any():
            figure.add_trace(go.Scattergl(x=static["distance"][chosen], y=static["change_pct"][chosen], mode="markers",
                                          name=name, marker={"size": 7, "color": colour, "opacity": 0.8},
                                          hovertext=hover[chosen].tolist(), hoverinfo="text"))
    if data.fit is not None:
        xs = np.linspace(0, max(float(static["distance"].max()), 1e-9), 100)
        low, high = data.fit.band(xs)
        figure.add_trace(go.Scatter(x=np.r_[xs, xs[::-1]], y=np.r_[high, low[::-1]], fill="toself", line={"width": 0},
                                    fillcolor="rgba(231,111,81,0.18)", name="95 % confidence band", hoverinfo="skip"))
        figure.add_trace(go.Scatter(x=xs, y=data.fit.predict(xs), mode="lines", line={"color": "#e76f51", "width": 2},
                                    name=f"OLS: slope {data.fit.slope:.3g}, r = {data.fit.pearson_r:.3f}, p = {data.fit.p_value:.2g}"))
    retrained = data.points[data.points["method"] == "gradnorm-static"]
    if len(retrained):
        figure.add_trace(go.Scatter(x=retrained["distance"], y=retrained["change_pct"], mode="markers", name="GradNorm-Static",
                                    marker={"symbol": "star", "size": 16, "color": "#f4a261", "line": {"width": 1, "color": "black"}}))
    right = max(float(static["distance"].max()) if len(static) else 1.0, 1e-9)
    figure.add_trace(go.Scatter(x=[0, right], y=[0, 0], mode="lines", name="GradNorm (0 %)", hoverinfo="skip",
                                line={"color": "black", "dash": "dash", "width": 1}))
    figure.update_layout(
        title=f"Static weights vs GradNorm ({data.stats['beat_gradnorm']} of {data.stats['static_runs']} static runs beat it)",
        xaxis_title="L2 distance to GradNorm's time-averaged weights",
        yaxis_title="% change in test loss vs GradNorm (higher is better)",
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


CHANGE_COLOURS = [[0.0, "#d62828"], [0.5, "#fcbf49"], [1.0, "#2a9d8f"]]  # worse ... better than GradNorm


def weights_parallel_plot(data: Figure4Data) -> go.Figure:
    """Where the static weights lie and how they did; GradNorm's E_t[w] for comparison.

    T >= 3: parallel coordinates, one line per static run coloured by its % change.
    T = 2: w_1 = 2 - w_0, so every line would cross at one point; the % change
    against w_0 says the same thing readably.
    """
    static = data.points[data.points["method"] == "static"]
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
