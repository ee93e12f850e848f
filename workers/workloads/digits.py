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

from typing import Any, Mapping

import torch

from workers.model import fully_connected_net
from workers.workload_options import DIGITS_NEED_SKLEARN, DigitsOptions, digits_test_size, digits_validation_size, parse_options
from workers.workloads.base import CLASSIFICATION, REGRESSION, Split, Task, Workload, zero_output_losses

PIXEL_MAX = 16.0  # the digits images hold integers 0..16
HIDDEN_UNITS = 128
TRUNK_DEPTH = 3




OPTIONS = DigitsOptions  # what build's options parse into (workers/catalog.py)


def build(options: Mapping[str, Any]) -> Workload:
    try:
        from sklearn.datasets import load_digits  # imported here: only this workload needs it
    except ImportError:
        raise ValueError(DIGITS_NEED_SKLEARN) from None

    opts = parse_options(DigitsOptions, "digits", options)
    generator = torch.Generator().manual_seed(opts.split_seed)
    bunch = load_digits()
    pixels = torch.tensor(bunch.data, dtype=torch.float32)  # [1797, 64], 0..16
    labels = torch.tensor(bunch.target, dtype=torch.long)
    inputs = pixels / PIXEL_MAX + opts.noise * torch.randn(pixels.shape, generator=generator)
    targets = (labels, labels % 2, pixels.sum(dim=1, keepdim=True), pixels)

    order = torch.randperm(len(labels), generator=generator)
    test_size = digits_test_size(len(labels))
    validation_size = digits_validation_size(test_size, len(labels))
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
