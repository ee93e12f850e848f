"""Two sine regressions whose targets have correlation p.

y_a = a_a sin(x),  y_b = a_b sin(x + arccos p),  x ~ U(-2 pi, 2 pi)

Over whole periods corr(sin x, sin(x + phi)) = cos phi, so phi = arccos p gives
correlation p. Different amplitudes give the tasks different loss scales;
Gaussian noise of `noise` times the amplitude is added to the targets.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from workers.model import fully_connected_net
from workers.workload_options import SinusoidOptions, parse_options
from workers.workloads.base import Split, Workload, regression_workload

HIDDEN_UNITS = 64
TRUNK_DEPTH = 3




OPTIONS = SinusoidOptions  # what build's options parse into (workers/catalog.py)


def build(options: Mapping[str, Any]) -> Workload:
    opts = parse_options(SinusoidOptions, "sinusoid", options)
    generator = torch.Generator().manual_seed(opts.problem_seed)
    phase = math.acos(opts.correlation)

    def sample(size: int) -> Split:
        x = (torch.rand(size, 1, generator=generator) * 2 - 1) * 2 * math.pi
        targets = []
        for amplitude, shift in zip(opts.amplitudes, (0.0, phase)):
            clean = amplitude * torch.sin(x + shift)
            targets.append(clean + opts.noise * amplitude * torch.randn(size, 1, generator=generator))
        return Split(x, tuple(targets))

    model = fully_connected_net(1, HIDDEN_UNITS, TRUNK_DEPTH, [1, 1])
    return regression_workload(
        "sinusoid", opts.task_names(), sample(opts.train_size), sample(opts.test_size), model,
        validation=sample(opts.validation_size),
    )
