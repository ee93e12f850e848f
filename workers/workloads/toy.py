"""The paper's synthetic multitask regression (Chen et al. 2018, section 4).

    f_i(x) = sigma_i * tanh((B + eps_i) x),   x in R^250, f_i(x) in R^100

B and eps_i are constant matrices with IID N(0, 10) and N(0, 3.5) entries.
We read N(mu, v) the usual way, v a variance (std sqrt(10) and sqrt(3.5)).
The paper leaves the rest open; our choices (docs/decisions.md):
x ~ N(0, I); a fixed pool of `train_size` training and `test_size` test
samples drawn from `problem_seed`, so that every run of a study sees the same
data whatever its own seed; sigma = (1, 100) for T = 2 and |N(0, 10^2)|
per task for other T.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from workers.model import fully_connected_net
from workers.workload_options import ToyOptions, parse_options
from workers.workloads.base import Split, Workload, regression_workload

INPUT_DIM = 250  # paper, section 4
OUTPUT_DIM = 100  # paper, section 4
HIDDEN_UNITS = 100  # paper: 4-layer fully-connected ReLU trunk, 100 units
TRUNK_DEPTH = 4
B_VARIANCE = 10.0  # paper: B ~ N(0, 10)
EPSILON_VARIANCE = 3.5  # paper: eps_i ~ N(0, 3.5)
TWO_TASK_SIGMAS = (1.0, 100.0)  # paper, Figure 2 (T = 2)
MANY_TASK_SIGMA_STD = 10.0  # our choice: sigma_i = |N(0, 10^2)| for T != 2




def task_scales(options: ToyOptions, generator: torch.Generator) -> torch.Tensor:
    if options.sigmas is not None:
        return torch.tensor(options.sigmas)
    if options.tasks == 2:
        return torch.tensor(TWO_TASK_SIGMAS)
    return torch.randn(options.tasks, generator=generator).abs() * MANY_TASK_SIGMA_STD


OPTIONS = ToyOptions  # what build's options parse into (workers/catalog.py)


def build(options: Mapping[str, Any]) -> Workload:
    opts = parse_options(ToyOptions, "toy", options)
    generator = torch.Generator().manual_seed(opts.problem_seed)
    sigmas = task_scales(opts, generator)
    shared = torch.randn(OUTPUT_DIM, INPUT_DIM, generator=generator) * math.sqrt(B_VARIANCE)
    task_maps = [
        shared + torch.randn(OUTPUT_DIM, INPUT_DIM, generator=generator) * math.sqrt(EPSILON_VARIANCE)
        for _ in range(opts.tasks)
    ]

    def sample(size: int) -> Split:
        inputs = torch.randn(size, INPUT_DIM, generator=generator) * opts.input_scale
        return Split(inputs, tuple(sigma * torch.tanh(inputs @ m.T) for sigma, m in zip(sigmas.tolist(), task_maps)))

    model = fully_connected_net(INPUT_DIM, HIDDEN_UNITS, TRUNK_DEPTH, [OUTPUT_DIM] * opts.tasks)
    return regression_workload(
        "toy", opts.task_names(), sample(opts.train_size), sample(opts.test_size), model,
        validation=sample(opts.validation_size),
    )
