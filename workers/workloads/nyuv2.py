"""NYUv2 (the paper's main data set) in the preprocessed numpy layout that MTL libraries use.

    DATA_DIR/train/image/0.npy    float, H x W x 3 (RGB)
    DATA_DIR/train/label/0.npy    13-class segmentation, H x W, -1 unlabelled
    DATA_DIR/train/depth/0.npy    depth, H x W x 1, 0 unknown
    DATA_DIR/train/normal/0.npy   surface normals, H x W x 3, 0 unknown
    DATA_DIR/val/...              the same, the test set (as the libraries use it)

one file per index 0..N-1. Tasks: segmentation (pixelwise CE; mIoU, pixel
accuracy), depth (L1; absolute and relative error), normals (1 - cos; mean and
median angle, share within 11.25 / 22.5 / 30 degrees). Our validation split is
`validation_fraction` of the training images, held out by `problem_seed`.

Files are read with numpy's pickle-free loader: a data directory is untrusted
input. The network is a small SegNet-style encoder-decoder: two conv blocks
with pooling, a shared 3x3 convolution (GradNorm's W, `shared_layer.weight`),
and per task a decoder that upsamples back to the input size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from workers.model import MultiTaskNet
from workers.workload_options import check_option, is_int, parse_options
from workers.workloads.base import (
    DEPTH,
    NORMAL,
    SEGMENTATION,
    Split,
    Task,
    Workload,
    hold_out,
    zero_output_losses,
)

CLASSES = 13
KINDS = ("image", "label", "depth", "normal")
CHANNELS = {"image": 3, "depth": 1, "normal": 3}


@dataclass(frozen=True)
class NYUv2Options:
    data_dir: str = ""  # required: the folder holding train/ and val/
    width: int = 16  # channels of the first encoder block (the second has twice as many)
    validation_fraction: float = 0.1
    problem_seed: int = 0

    def __post_init__(self) -> None:
        check_option(isinstance(self.data_dir, str) and bool(self.data_dir), "data_dir",
                     "name the folder with the preprocessed NYUv2 (train/ and val/, see docs/workloads.md)")
        check_option(is_int(self.width) and 1 <= self.width <= 512, "width", f"must be an integer in [1, 512], got {self.width!r}")
        check_option(isinstance(self.validation_fraction, (int, float)) and 0 < self.validation_fraction < 1,
                     "validation_fraction", f"must be a number in (0, 1), got {self.validation_fraction!r}")
        check_option(is_int(self.problem_seed) and self.problem_seed >= 0, "problem_seed", "must be an integer >= 0")

    def task_names(self) -> tuple[str, ...]:
        return ("segmentation", "depth", "normal")


def _bad(path: Path, message: str) -> ValueError:
    return ValueError(f"workload_options.data_dir: {message} at {str(path)!r} (the preprocessed NYUv2 layout: "
                      "train/ and val/, each with image/ label/ depth/ normal/ holding 0.npy, 1.npy, ...)")


def load_split(folder: Path) -> Split:
    """One split of the layout above, checked file by file."""
    images = folder / "image"
    if not images.is_dir():
        raise _bad(images, "no folder")
    count = len(list(images.glob("*.npy")))
    if count == 0:
        raise _bad(images, "no .npy files")
    arrays: dict[str, list[np.ndarray]] = {kind: [] for kind in KINDS}
    for index in range(count):
        for kind in KINDS:
            path = folder / kind / f"{index}.npy"
            if not path.is_file():
                raise _bad(path, "missing file")
            try:
                array = np.load(path, allow_pickle=False)
            except (ValueError, OSError) as error:
                raise _bad(path, f"unreadable ({error})") from None
            arrays[kind].append(_checked(path, kind, array, arrays["image"][0].shape[:2] if arrays["image"] else None))
    image = torch.from_numpy(np.stack(arrays["image"])).float().permute(0, 3, 1, 2)
    label = torch.from_numpy(np.stack(arrays["label"])).long()
    depth = torch.from_numpy(np.stack(arrays["depth"])).float().permute(0, 3, 1, 2)
    normal = torch.from_numpy(np.stack(arrays["normal"])).float().permute(0, 3, 1, 2)
    return Split(image.to(torch.get_default_dtype()), (label, depth.to(torch.get_default_dtype()),
                                                       normal.to(torch.get_default_dtype())))


def _checked(path: Path, kind: str, array: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if array.dtype.kind not in "fiu":
        raise _bad(path, f"{array.dtype} data, expected numbers")
    if kind == "label":
        array = array.reshape(array.shape[:2]) if array.ndim == 3 and array.shape[2] == 1 else array
        if array.ndim != 2 or array.min() < -1 or array.max() >= CLASSES:
            raise _bad(path, f"expected an H x W label map of -1..{CLASSES - 1}, got shape {array.shape}")
    else:
        if array.ndim == 2 and kind == "depth":
            array = array[:, :, None]
        if array.ndim != 3 or array.shape[2] != CHANNELS[kind]:
            raise _bad(path, f"expected H x W x {CHANNELS[kind]}, got shape {array.shape}")
    if size is not None and array.shape[:2] != size:
        raise _bad(path, f"size {array.shape[:2]} differs from the first image's {size}")
    return array


def segnet(width: int) -> MultiTaskNet:
    def block(inputs: int, outputs: int) -> list[nn.Module]:
        return [nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU(), nn.MaxPool2d(2)]

    def decoder(outputs: int) -> nn.Module:
        return nn.Sequential(nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False),
                             nn.Conv2d(2 * width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, outputs, 1))

    return MultiTaskNet(
        body=nn.Sequential(*block(3, width), *block(width, 2 * width)),
        shared_layer=nn.Conv2d(2 * width, 2 * width, 3, padding=1),
        after_shared=nn.ReLU(),
        heads=[decoder(CLASSES), decoder(1), decoder(3)],
    )


OPTIONS = NYUv2Options  # what build's options parse into (workers/catalog.py)


def build(options: Mapping[str, Any]) -> Workload:
    opts = parse_options(NYUv2Options, "nyuv2", options)
    root = Path(opts.data_dir)
    if not root.is_dir():
        raise _bad(root, "no folder")
    train_all, test = load_split(root / "train"), load_split(root / "val")
    if train_all.inputs.shape[2] % 4 or train_all.inputs.shape[3] % 4:
        raise _bad(root, f"image sides must be multiples of 4, got {tuple(train_all.inputs.shape[2:])}")
    try:
        train, validation = hold_out(train_all, opts.validation_fraction, opts.problem_seed)
    except ValueError as error:
        raise _bad(str(root / "train"), str(error)) from None
    tasks = (Task("segmentation", SEGMENTATION, classes=CLASSES), Task("depth", DEPTH), Task("normal", NORMAL))
    return Workload("nyuv2", tasks, train, test, segnet(opts.width),
                    theoretical_initial_losses=zero_output_losses(tasks, train), validation=validation)
