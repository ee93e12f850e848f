"""The Ray Tune trainable: one planned trial, run on whatever worker Tune picks.

It trains and reports numbers back through `tune.report`; the driver records
them. Progress reports go out at every log point; the last report carries the
whole TrialResult under "result".
"""

from __future__ import annotations

import socket
from typing import Any, Sequence

import ray
import torch
from ray import tune

from records import TracePoint
from workers.config import TrialConfig
from workers.threads import set_threads
from workers.training import train

FINAL = "final"


def run_trial(param: dict[str, Any], trials: Sequence[dict[str, Any]], threads: int = 1, use_gpu: bool = False) -> None:
    """Tune calls this with `param["index"]` picking one of `trials` ({"key", "config"})."""
    trial = trials[param["index"]]
    set_threads(threads)
    device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"

    def progress(point: TracePoint) -> None:
        tune.report({"key": trial["key"], "step": point.step, FINAL: False})

    result = train(TrialConfig.from_dict(trial["config"]), on_log=progress, device=device)
    worker = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:12]}/{device}"
    tune.report(
        {"key": trial["key"], "step": result.steps_completed, FINAL: True, "result": result.to_dict(), "worker": worker}
    )
