"""MTFL (Zhang et al. 2014, the paper's face data set) in its published layout.

    DATA_DIR/training.txt, DATA_DIR/testing.txt, one face per line:
        PATH x1 x2 x3 x4 x5 y1 y2 y3 y4 y5 gender smiling glasses pose
    PATH is relative to DATA_DIR (sub-folders such as lfw_5590/ and net_7876/);
    the landmarks are the left eye, right eye, nose, left and right mouth corner
    in pixels; gender, smiling and glasses are coded 1/2, pose 1..5.

As published, paths use backslashes and may carry leading spaces, and the files
may have CRLF line endings: all are accepted. Images are read with Pillow
(`mtfl` extra), turned to grey and resized to 40x40; landmarks are scaled with
them and expressed in [0, 1] of the image side. Validation: `validation_fraction`
of training.txt, held out by `problem_seed`.

Tasks: landmarks (MSE; error normalized by the inter-ocular distance, failure
rate at 10 %), gender, smiling, glasses, pose (CE; accuracy beside the
majority-class rate, since the paper's supplement reports glasses and pose
sticking at the majority class). Network: the paper's 40x40 one (after
Zhang et al.'s TCDCN): conv 5x5 (16), pool, conv 3x3 (48), pool, conv 3x3 (64),
pool, conv 2x2 (64), a shared Linear(->100) as W, ReLU, one linear head per task.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from workers.model import MultiTaskNet
from workers.workload_options import check_option, is_int, parse_options
from workers.workloads.base import (
    ATTRIBUTE,
    LANDMARKS,
    Split,
    Task,
    Workload,
    hold_out,
    zero_output_losses,
)

SIDE = 40
ATTRIBUTES = (("gender", 2), ("smiling", 2), ("glasses", 2), ("pose", 5))
FIELDS = 1 + 10 + len(ATTRIBUTES)


@dataclass(frozen=True)
class MTFLOptions:
    data_dir: str = ""  # required: the folder holding training.txt, testing.txt and the images
    validation_fraction: float = 0.1
    problem_seed: int = 0

    def __post_init__(self) -> None:
        check_option(isinstance(self.data_dir, str) and bool(self.data_dir), "data_dir",
                     "name the MTFL folder (training.txt, testing.txt and the image folders)")
        check_option(isinstance(self.validation_fraction, (int, float)) and 0 < self.validation_fraction < 1,
                     "validation_fraction", f"must be a number in (0, 1), got {self.validation_fraction!r}")
        check_option(is_int(self.problem_seed) and self.problem_seed >= 0, "problem_seed", "must be an integer >= 0")

    def task_names(self) -> tuple[str, ...]:
        return ("landmarks",) + tuple(name for name, _ in ATTRIBUTES)


def _bad(where: str, message: str) -> ValueError:
    return ValueError(f"workload_options.data_dir: {message} ({where}; MTFL layout: training.txt and testing.txt "
                      "with lines 'PATH x1..x5 y1..y5 gender smiling glasses pose', images under DATA_DIR)")


def parse_line(line: str, where: str) -> tuple[str, list[float], list[int]]:
    """(relative image path with '/', 10 landmark coordinates, 4 attributes coded from 0)."""
    parts = line.strip().split()
    if len(parts) != FIELDS:
        raise _bad(where, f"expected {FIELDS} fields, got {len(parts)}")
    try:
        landmarks = [float(v) for v in parts[1:11]]
        attributes = [int(float(v)) - 1 for v in parts[11:]]
    except ValueError:
        raise _bad(where, "landmarks and attributes must be numbers") from None
    for (name, classes), value in zip(ATTRIBUTES, attributes):
        if not 0 <= value < classes:
            raise _bad(where, f"{name} must be 1..{classes}, got {value + 1}")
    return parts[0].replace("\\", "/"), landmarks, attributes


def load_list(root: Path, name: str) -> Split:
    from PIL import Image, UnidentifiedImageError  # the `mtfl` extra

    listing = root / name
    if not listing.is_file():
        raise _bad(str(listing), "missing file")
    images, landmarks, attributes = [], [], []
    lines = [line for line in listing.read_text(errors="replace").splitlines() if line.strip()]
    if not lines:
        raise _bad(str(listing), "no faces listed")
    for number, line in enumerate(lines, start=1):
        where = f"{name} line {number}"
        path, points, codes = parse_line(line, where)
        image_path = (root / path).resolve()
        if not image_path.is_relative_to(root.resolve()):
            raise _bad(where, f"image path {path!r} leaves the data folder")
        try:
            with Image.open(image_path) as image:
                width, height = image.size
                grey = np.asarray(image.convert("L").resize((SIDE, SIDE), Image.BILINEAR), dtype=np.float32) / 255.0
        except FileNotFoundError:
            raise _bad(where, f"no image {path!r}") from None
        except (UnidentifiedImageError, OSError) as error:
            raise _bad(where, f"cannot read image {path!r} ({type(error).__name__})") from None
        images.append(grey)
        landmarks.append([x / width for x in points[:5]] + [y / height for y in points[5:]])
        attributes.append(codes)
    dtype = torch.get_default_dtype()
    inputs = torch.from_numpy(np.stack(images))[:, None].to(dtype)
    codes = torch.tensor(attributes, dtype=torch.long)
    targets = (torch.tensor(landmarks, dtype=dtype),) + tuple(codes[:, i] for i in range(len(ATTRIBUTES)))
    return Split(inputs, targets)


def face_net() -> MultiTaskNet:
    body = nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),  # 36 -> 18
        nn.Conv2d(16, 48, 3), nn.ReLU(), nn.MaxPool2d(2),  # 16 -> 8
        nn.Conv2d(48, 64, 3), nn.ReLU(), nn.MaxPool2d(2),  # 6 -> 3
        nn.Conv2d(64, 64, 2), nn.ReLU(),  # 2
        nn.Flatten(),
    )
    return MultiTaskNet(body=body, shared_layer=nn.Linear(64 * 2 * 2, 100), after_shared=nn.ReLU(),
                        heads=[nn.Linear(100, 10)] + [nn.Linear(100, classes) for _, classes in ATTRIBUTES])


OPTIONS = MTFLOptions  # what build's options parse into (workers/catalog.py)


def build(options: Mapping[str, Any]) -> Workload:
    opts = parse_options(MTFLOptions, "mtfl", options)
    root = Path(opts.data_dir)
    if not root.is_dir():
        raise _bad(str(root), "no folder")
    if importlib.util.find_spec("PIL") is None:
        raise ValueError("workload: 'mtfl' needs Pillow to read its images: pip install 'gradnorm-study[mtfl]'")
    train_all, test = load_list(root, "training.txt"), load_list(root, "testing.txt")
    try:
        train, validation = hold_out(train_all, opts.validation_fraction, opts.problem_seed)
    except ValueError as error:
        raise _bad("training.txt", str(error)) from None
    tasks = (Task("landmarks", LANDMARKS),) + tuple(Task(name, ATTRIBUTE) for name, _ in ATTRIBUTES)
    return Workload("mtfl", tasks, train, test, face_net(),
                    theoretical_initial_losses=zero_output_losses(tasks, train), validation=validation)
