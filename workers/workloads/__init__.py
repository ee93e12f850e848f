"""Workloads by name: the built-in ones, or a user's `package.module:factory`.

A factory takes the options mapping and returns a Workload. It runs with
torch's global RNG seeded by the trial seed, so the model's initialization is
fixed by that seed; data should come from the factory's own generator.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

import torch

from workers.workloads import digits, sinusoid, toy
from workers.workloads.base import Workload, parse_options

Factory = Callable[[Mapping[str, Any]], Workload]

BUILTIN: dict[str, tuple[Factory, type]] = {
    "toy": (toy.build, toy.ToyOptions),
    "sinusoid": (sinusoid.build, sinusoid.SinusoidOptions),
    "digits": (digits.build, digits.DigitsOptions),
}


def resolve_factory(name: str) -> Factory:
    if name in BUILTIN:
        return BUILTIN[name][0]
    if ":" not in name:
        raise ValueError(f"workload: unknown workload {name!r} (built-in: {', '.join(BUILTIN)}; or package.module:factory)")
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"workload: cannot import {module_name!r} for {name!r} ({error})") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"workload: {module_name!r} has no callable {attribute!r}")
    return factory


def task_names(name: str, options: Mapping[str, Any]) -> tuple[str, ...]:
    """The task names a workload will have, validating its options; cheap for built-ins."""
    if name in BUILTIN:
        return parse_options(BUILTIN[name][1], name, options).task_names()
    return build_workload(name, options, seed=0).task_names


def build_workload(name: str, options: Mapping[str, Any], seed: int) -> Workload:
    factory = resolve_factory(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        workload = factory(dict(options))
    if not isinstance(workload, Workload):
        raise ValueError(f"workload: factory {name!r} returned {type(workload).__name__}, not a Workload")
    return workload


def check_trial(config) -> tuple[str, ...]:
    """Check a TrialConfig against its workload's tasks; return the task names."""
    names = task_names(config.workload, config.workload_options)
    count = len(names)
    if config.weights is not None and len(config.weights) != count:
        raise ValueError(f"weights: expected {count} values (one per task of {config.workload}), got {len(config.weights)}")
    if isinstance(config.initial_loss, tuple) and len(config.initial_loss) != count:
        raise ValueError(f"initial_loss: expected {count} values (one per task), got {len(config.initial_loss)}")
    if config.task is not None and not config.task < count:
        raise ValueError(f"task: must be a task index below {count}, got {config.task}")
    return names
