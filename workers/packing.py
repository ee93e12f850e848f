"""Which runs share a pack, and how many: the packing policy, torch-free.

The packed engine (workers/packed.py) trains what this module groups. One
gate, can_pack, reads declared facts only: the method registry
(records/methods.py) and what the workload's model allows (a WorkloadShape,
or workers.model.PackFacts.of(model)).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol, Sequence

from records import canonical_hash
from records.methods import METHOD_FIELDS, REGISTRY
from workers.catalog import BUILTIN_WORKLOADS
from workers.config import TrialConfig

# resources.pack: auto sizes a pack to fit this much memory per Tune trial, and at most this many runs.
PACK_MEMORY_BYTES = 1 << 30
MAX_AUTO_PACK = 64


class Packable(Protocol):
    """What can_pack asks of a workload: a WorkloadShape, or PackFacts.of(model)."""

    packs_fixed_weights: bool
    packs_gradnorm: bool


def can_pack(config: TrialConfig, shape: Packable, vouched: bool = False) -> str | None:
    """Why `config` trains one run per process (None: it packs). The one gate, read from
    declared facts: the method registry (records/methods.py) and the workload's model.

    A method packs where its registry entry says how; of its fields, those the
    entry calls per_run or shared may take any value, every other one must be
    at its default (a field the packed engine does not know is refused, never
    ignored). Only built-in workloads pack, unless the caller `vouched` for a
    user's model by packing by hand (train_pack): it may hold dropout or state
    that runs stacked under vmap cannot keep apart, and the driver cannot tell.
    """
    method = REGISTRY[config.method]
    if config.workload not in BUILTIN_WORKLOADS and not vouched:
        return "a user workload's model may hold dropout or batch statistics; it trains one run per process"
    if method.packing is None:
        return f"method {config.method!r} learns its weights through the network's loss; it trains one run per process"
    if method.pack_defaults:
        reference = default_options(config)
        for name in method.pack_defaults:
            if getattr(config, name) != getattr(reference, name):
                return f"method {config.method!r} with {name} set trains one run per process"
    if not shape.packs_fixed_weights:
        return "the model has buffers (e.g. batch norm); it trains one run per process"
    if method.packing == "gradnorm" and not shape.packs_gradnorm:
        return "GradNorm runs pack only with a linear shared layer; they train one run per process"
    return None


def default_options(config: TrialConfig) -> TrialConfig:
    """`config` with every option of its method that a pack cannot vary at its default."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrialConfig)}
    return dataclasses.replace(config, **{name: defaults[name] for name in REGISTRY[config.method].pack_defaults})


def pack_group(config: TrialConfig, shape: Packable, vouched: bool = False) -> str | None:
    """Runs with the same group can share a pack; None: this run trains alone (can_pack says why).

    Everything but a run's per_run fields must match: the workload, seed and
    budget (one init, one minibatch order), the packing kind (fixed weights,
    DWA, RLW and FAMO together; GradNorm with GradNorm) and the shared fields
    (a GradNorm pack steps one Adam on [K, T] weights: one balancer_lr).
    """
    if can_pack(config, shape, vouched) is not None:
        return None
    method = REGISTRY[config.method]
    common = {name: value for name, value in config.to_dict().items()
              if name != "method" and name not in METHOD_FIELDS}
    shared = {name: getattr(config, name) for name in method.shared}
    return canonical_hash({"packing": method.packing, "shared": shared, **common})


class Sized(Packable, Protocol):
    """A WorkloadShape: what make_packs asks of a workload."""

    def run_bytes(self, batch_size: int) -> int: ...


def make_packs(configs: Sequence[TrialConfig], shape: Sized, setting: int | str, slots: int) -> list[list[int]]:
    """The indices of `configs` in packs: those of one pack_group together, in packs of `setting`
    runs (`resources.pack`: auto, N, or 1 for never).

    `auto` packs as many as the memory estimate allows, but no more than it takes
    to give each of the `slots` concurrent Tune trials a pack.
    """
    if setting == 1:
        return [[i] for i in range(len(configs))]
    groups: dict[str, list[int]] = {}
    packs: list[list[int]] = []
    for index, config in enumerate(configs):
        group = pack_group(config, shape)  # None: can_pack says why it trains alone
        if group is None:
            packs.append([index])
        else:
            groups.setdefault(group, []).append(index)
    for members in groups.values():
        if setting == "auto":
            fits = auto_pack_size(shape, configs[members[0]].batch_size)
            size = max(1, min(fits, math.ceil(len(members) / max(slots, 1))))
        else:
            size = int(setting)
        start = 0
        for length in pack_sizes(len(members), size):
            packs.append(members[start:start + length])
            start += length
    return packs


def auto_pack_size(shape: Sized, batch_size: int) -> int:
    """As many runs as fit PACK_MEMORY_BYTES by the workload's footprint, at most MAX_AUTO_PACK."""
    return max(1, min(MAX_AUTO_PACK, PACK_MEMORY_BYTES // max(1, shape.run_bytes(batch_size))))


def pack_sizes(total: int, pack: int) -> list[int]:
    """`total` runs in packs of at most `pack`, as even as possible (7 by 3: 3, 2, 2)."""
    if total <= 0:
        return []
    count = math.ceil(total / pack)
    base, extra = divmod(total, count)
    return [base + 1] * extra + [base] * (count - extra)

