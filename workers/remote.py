"""The Ray Tune trainable: one pack of planned trials (often a single one), on whatever worker Tune picks.

It trains and reports numbers back through `tune.report`; the driver records
them, each trial under its own key. Progress reports go out at every log
point; the last report carries one TrialResult per trial under "results".
"""

from __future__ import annotations

import dataclasses
import socket
from typing import Any, Sequence

import ray
import torch
from ray import tune

from records import TracePoint
from workers.config import TrialConfig
from workers.environment import runtime_environment
from workers.packed import Checkpoints, train_pack
from workers.run_state import RunState
from workers.threads import set_threads
from workers.training import train

FINAL = "final"
STATE_OF, STATE = "state_of", "state"  # a report carrying one run's saved state (workers.run_state)


def run_trial(param: dict[str, Any], packs: Sequence[Sequence[dict[str, Any]]], threads: int = 1,
              use_gpu: bool = False, checkpoint_seconds: float | None = None) -> None:
    """Tune calls this with `param["index"]` picking one of `packs`, each a list of {"key", "config"} and maybe
    "state": the bytes of a saved RunState to go on from (a shorter run's for halving's promotions, the run's
    own checkpoint where "restore" is set), "keep_state": report the final state. `checkpoint_seconds`: report
    every run's state that often (at a logged step), so that a stopped study restores its runs from there."""
    pack = packs[param["index"]]
    set_threads(threads)
    device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
    configs = [TrialConfig.from_dict(trial["config"]) for trial in pack]

    def progress(point: TracePoint) -> None:
        tune.report({"step": point.step, FINAL: False})

    # a state to go on from (all of a pack or none), a state to keep for a later promotion
    blobs = [trial.get("state") for trial in pack]
    resume = [RunState.from_bytes(blob) for blob in blobs] if any(blob is not None for blob in blobs) else None
    restore = any(trial.get("restore") for trial in pack)  # the driver packs restored runs only together
    keep = [bool(trial.get("keep_state")) for trial in pack]
    saved: dict[int, bytes] = {}

    def on_state(run: int, state: RunState) -> None:
        if keep[run]:
            saved[run] = state.to_bytes()

    def checkpoint(run: int, state: RunState) -> None:
        tune.report({"step": state.step, FINAL: False, STATE_OF: run, STATE: state.to_bytes()})

    checkpoints = Checkpoints(checkpoint_seconds, checkpoint) if checkpoint_seconds else None
    if len(configs) == 1 and resume is None and not any(keep):
        results = [train(configs[0], on_log=progress, device=device, checkpoints=checkpoints)]
    else:
        results = train_pack(configs, on_log=lambda run, point: run == 0 and progress(point), device=device,
                             resume=resume, on_state=on_state if any(keep) else None, restore=restore,
                             checkpoints=checkpoints)
    for run, blob in saved.items():  # one report each: a pack's states can be large, Tune keeps the last report
        tune.report({"step": results[run].steps_completed, FINAL: False, STATE_OF: run, STATE: blob})
    environment = runtime_environment(device)
    results = [dataclasses.replace(r, environment=environment) for r in results]
    worker = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:12]}/{device}"
    tune.report({
        "step": max(r.steps_completed for r in results), FINAL: True, "worker": worker,
        "results": [r.to_dict() for r in results],
    })
