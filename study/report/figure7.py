"""Supplement Figure 7 drawn: GradNorm's gain over equal weights as alpha varies.

The statistics (and the alpha chosen on validation) are study.report.sweep's.
"""

from __future__ import annotations

import plotly.graph_objects as go

from study.report.sweep import Figure7Data, figure7_data

__all__ = ["Figure7Data", "figure7_data", "figure7_plot"]


def figure7_plot(data: Figure7Data) -> go.Figure:
    figure = go.Figure()
    finished = data.by_alpha.dropna(subset=["mean_gain_pct"])
    figure.add_trace(
        go.Scatter(
            x=finished["alpha"],
            y=finished["mean_gain_pct"],
            error_y={"type": "data", "array": finished["std_gain_pct"].fillna(0), "visible": True},
            mode="lines+markers",
            name="mean over seeds (± std)",
            line={"color": "#264653"},
        )
    )
    per_seed = data.gains.dropna(subset=["gain_pct"])
    figure.add_trace(
        go.Scatter(x=per_seed["alpha"], y=per_seed["gain_pct"], mode="markers", name="each seed",
                   marker={"color": "#2a9d8f", "size": 6, "opacity": 0.6}, hovertext=per_seed["key"])
    )
    failed = data.by_alpha[data.by_alpha["seeds_failed"] > 0]
    if len(failed):
        floor = float(per_seed["gain_pct"].min()) if len(per_seed) else 0.0
        figure.add_trace(
            go.Scatter(x=failed["alpha"], y=[floor] * len(failed), mode="markers+text", name="diverged",
                       marker={"symbol": "x", "size": 14, "color": "#d62828"},
                       text=[f"{n} diverged" for n in failed["seeds_failed"]], textposition="top center")
        )
    figure.add_hline(y=0, line={"color": "black", "dash": "dash", "width": 1})
    figure.update_layout(
        title="GradNorm's gain over equal weights vs α",
        xaxis_title="α",
        yaxis_title="average % decrease in test loss vs equal weights",
        template="plotly_white",
    )
    return figure
