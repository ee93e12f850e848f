"""Training dynamics (paper Figures 2, 3, 5): w_i(t) and loss curves per method.

Curves are averaged over seeds per run label ("gradnorm α=0.12", "equal", ...).
The task-normalized test loss is sum_i L_i^test(t) / L_i(0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from study.report.frames import run_labels, task_names

# Loss and weight axes go logarithmic when the curves span more than this factor.
LOG_SCALE_SPAN = 100.0
# Loss panels per row: wider rows make ten-task studies unreadable.
LOSS_PANELS_PER_ROW = 4
LOSS_ROW_HEIGHT = 300
# A log axis with one tick per decade reads 1, 0.1, 0.01 instead of 2, 1, 5, 2, 0.1.
LOG_AXIS = {"type": "log", "dtick": 1}
# A test loss this much above its own minimum at the end of training "rises".
RISE_FACTOR = 1.05
# GradNorm resets a stuck task's weight to 1 (workers.balancers.gradnorm.STUCK_WEIGHT; not imported: no torch here).
STUCK_WEIGHT = 1.0


@dataclass
class DynamicsData:
    weights: pd.DataFrame  # label, step, task, weight (mean over seeds)
    losses: pd.DataFrame  # label, step, task, train_loss, test_loss
    normalized: pd.DataFrame  # label, step, normalized_test_loss
    stuck: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["label", "key", "task", "step"]))


def dynamics_data(runs: pd.DataFrame, traces: pd.DataFrame) -> DynamicsData:
    labels = pd.Series(run_labels(runs).to_numpy(), index=runs["key"], name="label")
    tasks = task_names(runs)
    initial = runs.set_index("key")[[f"initial_loss.{t}" for t in tasks]]
    initial.columns = list(tasks)
    frame = traces.join(labels, on="key")
    frame = frame[frame["label"].notna()]
    weights = frame.groupby(["label", "step", "task"], sort=False)["weight"].mean().reset_index()
    losses = frame.groupby(["label", "step", "task"], sort=False)[["train_loss", "test_loss"]].mean().reset_index()
    long_initial = initial.stack().rename("initial_loss")
    long_initial.index.names = ["key", "task"]
    with_initial = frame.join(long_initial, on=["key", "task"])
    with_initial["ratio"] = with_initial["test_loss"] / with_initial["initial_loss"]
    per_run = with_initial.groupby(["label", "key", "step"], sort=False)["ratio"].sum().reset_index()
    normalized = per_run.groupby(["label", "step"], sort=False)["ratio"].mean().rename("normalized_test_loss").reset_index()
    return DynamicsData(weights, losses, normalized, stuck_events(runs, labels))


def stuck_events(runs: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """One row per task GradNorm's stuck-task detection took out: label, key, task, step."""
    columns = [c for c in runs.columns if c.startswith("stuck_at_step.")]
    long = runs.melt(id_vars="key", value_vars=columns, var_name="task", value_name="step").dropna(subset=["step"])
    long["task"] = long["task"].str.removeprefix("stuck_at_step.")
    long["label"] = long["key"].map(labels)
    return long.astype({"step": int})[["label", "key", "task", "step"]].reset_index(drop=True)


def colours(names) -> dict[str, str]:
    """One colour per name, the same in every subplot."""
    palette = qualitative.Plotly + qualitative.D3
    return {name: palette[i % len(palette)] for i, name in enumerate(dict.fromkeys(names))}


def spans_decades(values) -> bool:
    """True where positive values span more than LOG_SCALE_SPAN: draw them on a log axis."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    return bool(len(values)) and values.max() / values.min() > LOG_SCALE_SPAN


def changing_weights(weights: pd.DataFrame) -> list[str]:
    """The labels whose weights move during training (GradNorm, uncertainty), in order."""
    spread = weights.groupby(["label", "task"], sort=False)["weight"].agg(lambda w: w.max() - w.min())
    moving = spread[spread > 1e-9].index.get_level_values("label")
    return list(dict.fromkeys(moving))


def weights_plot(data: DynamicsData) -> go.Figure:
    """w_i(t) of the methods that learn their weights; fixed weights are in the CSV."""
    labels = changing_weights(data.weights)
    task_colour = colours(data.weights["task"])
    figure = make_subplots(rows=1, cols=len(labels), subplot_titles=labels, shared_yaxes=True)
    shown_stuck = False
    for column, label in enumerate(labels, start=1):
        subset = data.weights[data.weights["label"] == label]
        for task, curve in subset.groupby("task", sort=False):
            figure.add_trace(go.Scatter(x=curve["step"], y=curve["weight"], mode="lines", name=f"w.{task}",
                                        line={"color": task_colour[task]}, legendgroup=task, showlegend=column == 1),
                             row=1, col=column)
        events = data.stuck[data.stuck["label"] == label]
        if len(events):  # where a task was taken out of GradNorm's update, one mark per run
            figure.add_trace(go.Scatter(
                x=events["step"], y=[STUCK_WEIGHT] * len(events), mode="markers", name="task taken out (stuck)",
                marker={"symbol": "x", "size": 11, "color": [task_colour.get(t, "black") for t in events["task"]],
                        "line": {"width": 1, "color": "black"}},
                hovertext=[f"{t} stopped learning: taken out of the update at step {s}" for t, s in zip(events["task"], events["step"])],
                hoverinfo="text", legendgroup="stuck", showlegend=not shown_stuck), row=1, col=column)
            shown_stuck = True
    figure.update_yaxes(title_text="w_i(t)", row=1, col=1)
    if spans_decades(data.weights.loc[data.weights["label"].isin(labels), "weight"]):
        figure.update_yaxes(**LOG_AXIS)
    figure.update_xaxes(title_text="step")
    figure.update_layout(title="Loss weights during training (methods that learn them)", template="plotly_white")
    return figure


def rising_test_losses(losses: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, task) whose test loss ends more than RISE_FACTOR above its own minimum."""
    ends = losses.sort_values("step").groupby(["label", "task"], sort=False)["test_loss"].agg(["last", "min"])
    rising = ends[ends["last"] > RISE_FACTOR * ends["min"]]
    return list(rising.index)


def panel_grid(panels: int, per_row: int) -> list[tuple[int, int]]:
    """(row, column), both from 1, of each panel when filling rows of per_row panels."""
    return [(index // per_row + 1, index % per_row + 1) for index in range(panels)]


def losses_plot(data: DynamicsData) -> go.Figure:
    tasks = list(dict.fromkeys(data.losses["task"]))
    label_colour = colours(data.normalized["label"])
    cells = panel_grid(len(tasks) + 1, LOSS_PANELS_PER_ROW)
    rows, columns = cells[-1][0], min(len(cells), LOSS_PANELS_PER_ROW)
    # One row keeps the page's default height; more rows grow the figure.
    height = 150 + LOSS_ROW_HEIGHT * rows if rows > 1 else None
    # About 110 px between rows leaves room for an axis title and the next panel's title.
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=["task-normalized test loss"] + tasks,
                           vertical_spacing=110 / height if height else 0.3)
    for label, curve in data.normalized.groupby("label", sort=False):
        figure.add_trace(go.Scatter(x=curve["step"], y=curve["normalized_test_loss"], mode="lines", name=label,
                                    line={"color": label_colour[label]}, legendgroup=label), row=1, col=1)
    for task, (row, column) in zip(tasks, cells[1:]):
        subset = data.losses[data.losses["task"] == task]
        for label, curve in subset.groupby("label", sort=False):
            colour = label_colour[label]
            figure.add_trace(go.Scatter(x=curve["step"], y=curve["test_loss"], mode="lines", name=f"{label} test",
                                        line={"color": colour}, legendgroup=label, showlegend=False), row=row, col=column)
            figure.add_trace(go.Scatter(x=curve["step"], y=curve["train_loss"], mode="lines",
                                        line={"color": colour, "dash": "dot"}, name=f"{label} train",
                                        legendgroup=label, showlegend=False, opacity=0.6), row=row, col=column)
        if spans_decades(subset[["train_loss", "test_loss"]].to_numpy().ravel()):
            figure.update_yaxes(**LOG_AXIS, row=row, col=column)
    figure.update_xaxes(title_text="step")
    figure.update_layout(title="Loss curves (solid: test, dotted: train; mean over seeds)", template="plotly_white",
                         height=height)
    return figure
