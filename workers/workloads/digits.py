"""A real, offline multitask problem: scikit-learn's bundled 8x8 digits (1,797 images).

The input is the image scaled to [0, 1] with fixed Gaussian noise added; four
tasks with loss scales four orders of magnitude apart:

    digit    10-class classification        cross-entropy, ~2.3 at init
    parity   odd/even classification        cross-entropy, ~0.7 at init
    ink      total ink, in pixel units      MSE, ~1e5 at init (sums of 0..16 values)
    denoise  the clean image, 0..16 units   MSE, ~60 at init

Test (20 %), validation (16 %) and train (64 %) splits and the noise are fixed
by `split_seed`, so every run of a study sees the same data.
`standardize_targets` z-scores the regression targets (ink, denoise) with the
training split's mean and standard deviation, so that no task dwarfs the
others by its units alone (docs/decisions.md).
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
VALIDATION_FRACTION = 0.2  # of what the test set leaves


@dataclass(frozen=True)
class DigitsOptions:
    noise: float = 0.3  # std of the noise added to the [0, 1]-scaled input
    split_seed: int = 0
    standardize_targets: bool = False  # z-score ink and denoise on the training split (the paper-faithful raw units by default)

    def __post_init__(self) -> None:
        check_option(isinstance(self.noise, (int, float)) and self.noise >= 0, "noise", "must be a number >= 0")
        check_option(is_int(self.split_seed) and self.split_seed >= 0, "split_seed", "must be an integer >= 0")
        check_option(isinstance(self.standardize_targets, bool), "standardize_targets", "must be true or false")

    def task_names(self) -> tuple[str, ...]:
        return ("digit", "parity", "ink", "denoise")


OPTIONS = DigitsOptions  # what build's options parse into (workers/catalog.py)


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
    validation_size = int(round(VALIDATION_FRACTION * (len(labels) - test_size)))
    everything = Split(inputs, targets)
    test = everything.take(order[:test_size])
    validation = everything.take(order[test_size:test_size + validation_size])
    train = everything.take(order[test_size + validation_size:])
    if opts.standardize_targets:
        train, validation, test = standardized((2, 3), train, validation, test)

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
        validation=validation,
        model=fully_connected_net(pixels.shape[1], HIDDEN_UNITS, TRUNK_DEPTH, [10, 2, 1, pixels.shape[1]]),
        theoretical_initial_losses=zero_output_losses(tasks, train),
    )


def standardized(tasks: tuple[int, ...], train: Split, *others: Split) -> tuple[Split, ...]:
    """Every split with the targets of `tasks` z-scored by the training split's mean and std."""
    stats = {i: (train.targets[i].mean(), train.targets[i].std()) for i in tasks}

    def scale(split: Split) -> Split:
        targets = tuple((t - stats[i][0]) / stats[i][1] if i in stats else t for i, t in enumerate(split.targets))
        return Split(split.inputs, targets)

    return tuple(scale(split) for split in (train, *others))
