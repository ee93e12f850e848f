"""What a workload gives the training loop: data, a MultiTaskNet, per-task losses and metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from workers.model import MultiTaskNet
from workers.workloads import dense
from records import TaskMetric

REGRESSION = "regression"  # mean squared error; metric: mse
CLASSIFICATION = "classification"  # cross-entropy on logits; metrics: accuracy, cross_entropy
# Dense (per-pixel) kinds, NYUv2's tasks: workers/workloads/dense.py
SEGMENTATION = "segmentation"  # pixelwise cross-entropy; metrics: miou, pixel_accuracy
DEPTH = "depth"  # L1 over known pixels; metrics: abs_err, rel_err
NORMAL = "normal"  # 1 - cos over known pixels; metrics: mean/median angle, within 11.25/22.5/30 degrees
# Face tasks, MTFL's: workers/workloads/mtfl.py
LANDMARKS = "landmarks"  # MSE on (x1..x5, y1..y5); metrics: error normalized by inter-ocular distance, failure rate
ATTRIBUTE = "attribute"  # a classification whose accuracy is read next to its majority-class rate
TASK_KINDS = (REGRESSION, CLASSIFICATION, SEGMENTATION, DEPTH, NORMAL, LANDMARKS, ATTRIBUTE)


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # one of TASK_KINDS
    classes: int | None = None  # SEGMENTATION: the number of classes (for mIoU)

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"kind: task {self.name!r} has unknown kind {self.kind!r} (choose from {TASK_KINDS})")
        if self.kind == SEGMENTATION and not (isinstance(self.classes, int) and self.classes >= 2):
            raise ValueError(f"classes: segmentation task {self.name!r} needs its number of classes (>= 2)")

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind in (CLASSIFICATION, ATTRIBUTE):
            return F.cross_entropy(output, target)
        if self.kind == SEGMENTATION:
            return dense.segmentation_loss(output, target)
        if self.kind == DEPTH:
            return dense.depth_loss(output, target)
        if self.kind == NORMAL:
            return dense.normal_loss(output, target)
        return F.mse_loss(output, target)

    def metrics(self, output: torch.Tensor, target: torch.Tensor) -> list[TaskMetric]:
        output = output.detach()
        loss = float(self.loss(output, target))
        if self.kind == SEGMENTATION:
            miou, pixel_accuracy = dense.segmentation_scores(output, target, self.classes)
            return [TaskMetric(self.name, "miou", miou, True), TaskMetric(self.name, "pixel_accuracy", pixel_accuracy, True)]
        if self.kind == DEPTH:
            absolute, relative = dense.depth_errors(output, target)
            return [TaskMetric(self.name, "abs_err", absolute, False), TaskMetric(self.name, "rel_err", relative, False)]
        if self.kind == NORMAL:
            mean, median, within = dense.normal_errors(output, target)
            return [TaskMetric(self.name, "mean_angle", mean, False), TaskMetric(self.name, "median_angle", median, False)] + [
                TaskMetric(self.name, f"within_{threshold:g}", share, True)
                for threshold, share in zip(dense.ANGLE_THRESHOLDS, within)
            ]
        if self.kind == LANDMARKS:
            error, failures = dense.landmark_errors(output, target)
            return [TaskMetric(self.name, "nme", error, False), TaskMetric(self.name, "failure_rate", failures, False),
                    TaskMetric(self.name, "mse", loss, False)]
        if self.kind in (CLASSIFICATION, ATTRIBUTE):
            accuracy = float((output.detach().argmax(dim=-1) == target).float().mean())
            metrics = [
                TaskMetric(self.name, "accuracy", accuracy, higher_is_better=True),
                TaskMetric(self.name, "cross_entropy", loss, higher_is_better=False),
            ]
            if self.kind == ATTRIBUTE:  # what always answering the commonest class would score
                majority = float(torch.bincount(target).max()) / len(target)
                metrics.append(TaskMetric(self.name, "majority_rate", majority, higher_is_better=True))
            return metrics
        return [TaskMetric(self.name, "mse", loss, higher_is_better=False)]


@dataclass(frozen=True)
class Split:
    """Inputs and one target tensor per task, aligned on the first dimension."""

    inputs: torch.Tensor
    targets: tuple[torch.Tensor, ...]

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def take(self, index: torch.Tensor) -> "Split":
        return Split(self.inputs[index], tuple(t[index] for t in self.targets))

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.inputs.to(device), tuple(t.to(device) for t in self.targets))


@dataclass
class Workload:
    name: str
    tasks: tuple[Task, ...]
    train: Split
    test: Split
    model: MultiTaskNet
    # L_i(0) a randomly initialized network should start from (GradNorm's initial_loss="theoretical").
    theoretical_initial_losses: tuple[float, ...] | None = None
    # Held out from training and from the test set: what studies choose by. Every built-in
    # workload has one; a user factory may leave it out (then nothing is chosen on it).
    validation: Split | None = None

    def __post_init__(self) -> None:
        if self.model.num_tasks != len(self.tasks):
            raise ValueError(f"model: has {self.model.num_tasks} heads for {len(self.tasks)} tasks")
        for split_name in ("train", "test", "validation"):
            split = getattr(self, split_name)
            if split is None:
                continue
            if len(split.targets) != len(self.tasks):
                raise ValueError(f"{split_name}: has {len(split.targets)} targets for {len(self.tasks)} tasks")

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(task.name for task in self.tasks)

    def task_losses(self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack([task.loss(o, t) for task, o, t in zip(self.tasks, outputs, targets)])

    def test_metrics(self, outputs: Sequence[torch.Tensor], split: Split | None = None) -> list[TaskMetric]:
        """Each task's metrics of `outputs` on `split` (the test set unless told otherwise)."""
        targets = (split or self.test).targets
        return [
            metric
            for task, output, target in zip(self.tasks, outputs, targets)
            for metric in task.metrics(output, target)
        ]

    def to(self, device: str) -> "Workload":
        """The model and every split on `device`."""
        self.model.to(device)
        self.train, self.test = self.train.to(device), self.test.to(device)
        if self.validation is not None:
            self.validation = self.validation.to(device)
        return self


def zero_output_losses(tasks: Sequence[Task], split: Split) -> tuple[float, ...]:
    """The loss of a network whose outputs are all zero: log C for C-class cross-entropy
    (and segmentation), E[y^2] for regression, E|d| over known pixels for depth, 1 for
    normals (a zero vector has cosine 0). Our 'theoretical' L_i(0)."""
    losses = []
    for task, target in zip(tasks, split.targets):
        if task.kind in (CLASSIFICATION, ATTRIBUTE):
            losses.append(math.log(int(target.max()) + 1))
        elif task.kind == SEGMENTATION:
            losses.append(math.log(task.classes))
        elif task.kind == DEPTH:
            losses.append(float(target[target > 0].abs().mean()))
        elif task.kind == NORMAL:
            losses.append(1.0)
        else:
            losses.append(float(target.pow(2).mean()))
    return tuple(losses)


def regression_workload(
    name: str, task_names: Sequence[str], train: Split, test: Split, model: MultiTaskNet, validation: Split
) -> Workload:
    """A workload whose tasks are all MSE regressions (toy, sinusoid)."""
    tasks = tuple(Task(task, REGRESSION) for task in task_names)
    return Workload(name, tasks, train, test, model, theoretical_initial_losses=zero_output_losses(tasks, train),
                    validation=validation)




def hold_out(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """(train, validation): `fraction` of `split` (at least one sample) held out at random by `seed`.

    Raises ValueError when nothing would be left to train on.
    """
    held_out = max(1, int(round(fraction * len(split))))
    if held_out >= len(split):
        raise ValueError(f"{len(split)} training samples cannot spare a validation split")
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    return split.take(order[held_out:]), split.take(order[:held_out])


