"""Workloads by name: the built-in ones, or a user's `package.module:factory`.

A factory takes the options mapping and returns a Workload. It runs with
torch's global RNG seeded by the trial seed, so the model's initialization is
fixed by that seed; data should come from the factory's own generator.

Only a name that the user wrote in a spec or on the command line is ever
imported here; the CLI never passes a workload name read from a database.

Where a user's module may live: anywhere Python already finds it (an
installed package, PYTHONPATH), or in a folder the command names with
`workers.modules.allow_imports_from` (the directory `gns` runs in, a spec's folder). Those
folders are appended to sys.path, so an installed package of the same name
wins; `code_to_ship` says which file or package folder Ray must carry to
its workers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from workers.catalog import BUILTIN_WORKLOADS
from workers.model import PackFacts
from workers.modules import code_folders, module_origin
from workers.workload_options import check_task_count, parse_options
from workers.workloads.base import Workload

Factory = Callable[[Mapping[str, Any]], Workload]


def builtin_module(name: str):
    """The module that builds the built-in workload `name` (its build and OPTIONS)."""
    return importlib.import_module(BUILTIN_WORKLOADS[name])


class WorkloadError(ValueError):
    """A workload name, its options or a user factory is wrong: one line naming it."""


@dataclass(frozen=True)
class WorkloadShape:
    """What planning needs to know of a workload without keeping it."""

    task_names: tuple[str, ...]
    train_size: int
    test_size: int
    parameters: int  # of the model
    outputs_per_sample: int  # summed over the heads
    # Packed runs share one stacked copy of the model: no buffers (batch norm), and for
    # GradNorm a linear shared layer (workers/packed.py).
    packs_fixed_weights: bool = True
    packs_gradnorm: bool = True
    has_validation: bool = True  # what a study chooses by; a user workload may have none

    def run_bytes(self, batch_size: int) -> int:
        """A rough float32 footprint of one run in a pack: parameters, their gradient and
        Adam's two moments, a minibatch's outputs (times 4 for the activations behind them)
        and the test set's outputs at evaluation."""
        floats = 4 * self.parameters + 4 * batch_size * self.outputs_per_sample + self.test_size * self.outputs_per_sample
        return 4 * floats


def _import_user_module(name: str):
    module_name, _, _ = name.partition(":")
    if not module_name or any(not part.isidentifier() for part in module_name.split(".")):
        raise WorkloadError(f"workload: {name!r} is not package.module:factory (module {module_name!r} is no Python name)")
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        parts = module_name.split(".")
        if error.name not in {".".join(parts[:i]) for i in range(1, len(parts) + 1)}:  # found, but its own import failed
            raise WorkloadError(f"workload: importing {module_name!r} for {name!r} failed: {error}") from None
        searched = ", ".join(str(folder) for folder in code_folders) or "no folder of yours"
        raise WorkloadError(
            f"workload: cannot import {module_name!r} for {name!r} ({error}); searched {searched} and the installed "
            f"packages: put {parts[0]}/ or {parts[0]}.py in the directory you run gns from or beside the spec, "
            "or pip install it"
        ) from None
    except Exception as error:  # a syntax error or a failure while the module runs
        raise WorkloadError(f"workload: importing {module_name!r} for {name!r} failed: "
                            f"{type(error).__name__}: {_first_line(error)}") from None


def code_to_ship(name: str) -> list[str]:
    """The package folder or .py file of a user factory found in an `allow_imports_from` folder:
    what Ray workers (on any node) need to import it. Nothing for built-ins and installed packages."""
    if name in BUILTIN_WORKLOADS:
        return []
    _import_user_module(name)
    origin = module_origin(name.partition(":")[0].split(".")[0])
    if origin is None:
        return []
    origin = origin.resolve()
    return [str(origin)] if any(origin.is_relative_to(folder) for folder in code_folders) else []


def resolve_factory(name: str) -> Factory:
    if name in BUILTIN_WORKLOADS:
        return builtin_module(name).build
    if ":" not in name:
        raise WorkloadError(f"workload: unknown workload {name!r} (built-in: {', '.join(BUILTIN_WORKLOADS)}; or package.module:factory)")
    module = _import_user_module(name)
    module_name, _, attribute = name.partition(":")
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise WorkloadError(f"workload: {module_name!r} has no callable {attribute!r}")
    return factory


def build_workload(name: str, options: Mapping[str, Any], seed: int) -> Workload:
    """The workload `name` with `options`, its model initialized from `seed`.

    Anything wrong with the name, the options or a user factory (it cannot be
    called with one options mapping, it raises, it returns something else) is
    a WorkloadError naming the workload.
    """
    factory = resolve_factory(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            workload = factory(dict(options))
        except WorkloadError:
            raise
        except ValueError as error:  # our own option checks say which option
            raise WorkloadError(str(error)) from None
        except Exception as error:  # a user factory's own failure, or the wrong signature
            raise WorkloadError(f"workload: factory {name!r} failed: {type(error).__name__}: {_first_line(error)}") from None
    if not isinstance(workload, Workload):
        raise WorkloadError(
            f"workload: factory {name!r} returned {type(workload).__name__}, not a workers.workloads.base.Workload"
        )
    return workload


def inspect_workload(name: str, options: Mapping[str, Any], seed: int) -> WorkloadShape:
    workload = build_workload(name, options, seed)
    workload.model.eval()
    with torch.no_grad():
        outputs = workload.model(workload.test.inputs[:1])
    facts = PackFacts.of(workload.model)
    return WorkloadShape(
        packs_fixed_weights=facts.packs_fixed_weights,
        packs_gradnorm=facts.packs_gradnorm,
        task_names=workload.task_names,
        train_size=len(workload.train),
        test_size=len(workload.test),
        parameters=sum(p.numel() for p in workload.model.parameters()),
        outputs_per_sample=sum(o.numel() for o in outputs),
        has_validation=workload.validation is not None,
    )


def task_names(name: str, options: Mapping[str, Any]) -> tuple[str, ...]:
    """The task names a workload will have, validating its options; cheap for built-ins."""
    if name in BUILTIN_WORKLOADS:
        try:
            return parse_options(builtin_module(name).OPTIONS, name, options).task_names()
        except ValueError as error:
            raise WorkloadError(str(error)) from None
    return build_workload(name, options, seed=0).task_names


def check_trial(config) -> tuple[str, ...]:
    """Check a TrialConfig against its workload's tasks; return the task names."""
    names = task_names(config.workload, config.workload_options)
    if config.weights is not None:
        check_task_count("weights", config.weights, names, config.workload)
    if isinstance(config.initial_loss, tuple):
        check_task_count("initial_loss", config.initial_loss, names, config.workload)
    if config.task is not None and not config.task < len(names):
        raise ValueError(f"task: must be a task index below {len(names)}, got {config.task}")
    return names


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else "(no message)"
