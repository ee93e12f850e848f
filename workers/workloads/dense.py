"""Metrics of dense (per-pixel) and face-landmark tasks, as plain functions checked on hand-built numbers.

Shapes: outputs [N, C, H, W]; segmentation targets [N, H, W] (class index,
IGNORE for unlabelled pixels); depth targets [N, 1, H, W] (0 where unknown);
surface-normal targets [N, 3, H, W] (unit vectors, 0 where unknown). These are
the NYUv2 conventions of the MTL libraries (docs/workloads.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE = -1
ANGLE_THRESHOLDS = (11.25, 22.5, 30.0)  # degrees: the share of pixels within each


def segmentation_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixelwise cross-entropy over labelled pixels."""
    return F.cross_entropy(output, target.long(), ignore_index=IGNORE)


def segmentation_scores(output: torch.Tensor, target: torch.Tensor, classes: int) -> tuple[float, float]:
    """(mIoU, pixel accuracy) over labelled pixels; mIoU averages the classes present in prediction or truth."""
    predicted = output.argmax(dim=1)
    labelled = target != IGNORE
    predicted, truth = predicted[labelled], target[labelled].long()
    if truth.numel() == 0:
        return math.nan, math.nan
    ious = []
    for c in range(classes):
        union = ((predicted == c) | (truth == c)).sum()
        if union > 0:
            ious.append(float(((predicted == c) & (truth == c)).sum()) / float(union))
    return sum(ious) / len(ious), float((predicted == truth).float().mean())


def _valid_depth(target: torch.Tensor) -> torch.Tensor:
    return target > 0


def depth_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 over pixels of known depth."""
    valid = _valid_depth(target)
    return (output - target).abs()[valid].mean()


def depth_errors(output: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """(absolute error, relative error |d - d*| / d*) over pixels of known depth."""
    valid = _valid_depth(target)
    difference = (output - target).abs()[valid]
    return float(difference.mean()), float((difference / target[valid]).mean())


def _valid_normal(target: torch.Tensor) -> torch.Tensor:
    return target.abs().sum(dim=1) > 0  # [N, H, W]


def _cosines(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cosine between predicted and true normals at known pixels."""
    cosine = F.cosine_similarity(output, target, dim=1, eps=1e-8)
    return cosine[_valid_normal(target)]


def normal_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - cos(predicted, true normal), averaged over known pixels."""
    return (1 - _cosines(output, target)).mean()


def normal_errors(output: torch.Tensor, target: torch.Tensor) -> tuple[float, float, list[float]]:
    """(mean angle, median angle, share within each of ANGLE_THRESHOLDS), angles in degrees."""
    angles = torch.rad2deg(torch.acos(_cosines(output, target).clamp(-1, 1)))
    within = [float((angles < threshold).float().mean()) for threshold in ANGLE_THRESHOLDS]
    return float(angles.mean()), float(angles.median()), within


FAILURE_THRESHOLD = 0.10  # a face whose normalized landmark error exceeds this counts as a failure


def landmark_errors(output: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """(mean error normalized by the inter-ocular distance, failure rate at FAILURE_THRESHOLD).

    Rows are (x1..x5, y1..y5) in MTFL's order: left eye, right eye, nose, mouth
    left, mouth right; a face's error is its mean point distance divided by
    the distance between its true eyes.
    """
    predicted, truth = output.reshape(-1, 2, 5), target.reshape(-1, 2, 5)
    distances = (predicted - truth).pow(2).sum(dim=1).sqrt().mean(dim=1)  # [N]
    inter_ocular = (truth[:, :, 0] - truth[:, :, 1]).pow(2).sum(dim=1).sqrt().clamp(min=1e-8)
    normalized = distances / inter_ocular
    return float(normalized.mean()), float((normalized > FAILURE_THRESHOLD).float().mean())
