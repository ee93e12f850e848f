"""A real, offline multitask problem: scikit-learn's bundled 8x8 digits (1,797 images).

The input is the image scaled to [0, 1] with fixed Gaussian noise added; four
tasks with loss scales four orders of magnitude apart:

    digit    10-class classification        cross-entropy, ~2.3 at init
    parity   odd/even classification        cross-entropy, ~0.7 at init
    ink      total ink, in pixel units      MSE, ~1e5 at init (sums of 0..16 values)
    denoise  the clean image, 0..16 units   MSE, ~60 at init

Train/test split (80/20) and noise are fixed by `split_seed`, so every run of a
study sees the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from workers.model import fully_connected_net
from workers.workloads.base import (
    CLASSIFICATION,
    REGRESSION,
    Split,
    Task,
    Workload,
    check_option,
    is_int,
    parse_options,
    zero_output_losses,
)

PIXEL_MAX = 16.0  # the digits images hold integers 0..16
HIDDEN_UNITS = 128
TRUNK_DEPTH = 3
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class DigitsOptions:
    noise: float = 0.3  # std of the noise added to the [0, 1]-scaled input
    split_seed: int = 0

    def __post_init__(self) -> None:
        check_option(isinstance(self.noise, (int, float)) and self.noise >= 0, "noise", "must be a number >= 0")
        check_option(is_int(self.split_seed) and self.split_seed >= 0, "split_seed", "must be an integer >= 0")

    def task_names(self) -> tuple[str, ...]:
        return ("digit", "parity", "ink", "denoise")


def build(options: Mapping[str, Any]) -> Workload:
    try:
        from sklearn.datasets import load_digits  # imported here: only this workload needs it
    except ImportError:
        raise ValueError("workload: 'digits' needs scikit-learn: pip install 'gradnorm-study[digits]'") from None

    opts = parse_options(DigitsOptions, "digits", options)
    generator = torch.Generator().manual_seed(opts.split_seed)
    bunch = load_digits()
    pixels = torch.tensor(bunch.data, dtype=torch.float32)  # [1797, 64], 0..16
    labels = torch.tensor(bunch.target, dtype=torch.long)
    inputs = pixels / PIXEL_MAX + opts.noise * torch.randn(pixels.shape, generator=generator)
    targets = (labels, labels % 2, pixels.sum(dim=1, keepdim=True), pixels)

    order = torch.randperm(len(labels), generator=generator)
    test_size = int(round(TEST_FRACTION * len(labels)))
    everything = Split(inputs, targets)
    test, train = everything.take(order[:test_size]), everything.take(order[test_size:])

    tasks = (
        Task("digit", CLASSIFICATION),
        Task("parity", CLASSIFICATION),
        Task("ink", REGRESSION),
        Task("denoise", REGRESSION),
    )
    return Workload(
        name="digits",
        tasks=tasks,
        train=train,
        test=test,
        model=fully_connected_net(pixels.shape[1], HIDDEN_UNITS, TRUNK_DEPTH, [10, 2, 1, pixels.shape[1]]),
        theoretical_initial_losses=zero_output_losses(tasks, train),
    )
