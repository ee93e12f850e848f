"""NYUv2 in the preprocessed numpy layout, on a tiny fixture the test writes; dense metrics by hand."""

import math

import numpy as np
import pytest
import torch
import yaml

from study.cli import main
from workers.config import TrialConfig
from workers.training import train
from workers.workloads import build_workload
from workers.workloads.dense import depth_errors, normal_errors, segmentation_scores

H, W = 8, 12


def write_nyuv2(root, train=5, val=2):
    """The layout MTL libraries use: {train,val}/{image,label,depth,normal}/{i}.npy, H x W (x C)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        for kind in ("image", "label", "depth", "normal"):
            (root / split / kind).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            np.save(root / split / "image" / f"{i}.npy", rng.random((H, W, 3)).astype(np.float32))
            np.save(root / split / "label" / f"{i}.npy", rng.integers(-1, 13, (H, W)).astype(np.float32))
            np.save(root / split / "depth" / f"{i}.npy", (rng.random((H, W, 1)) * 5).astype(np.float32))
            normal = rng.normal(size=(H, W, 3))
            np.save(root / split / "normal" / f"{i}.npy", (normal / np.linalg.norm(normal, axis=2, keepdims=True)).astype(np.float32))
    return root


def test_the_layout_loads_into_splits_and_a_validation_split_is_held_out(tmp_path):
    workload = build_workload("nyuv2", {"data_dir": str(write_nyuv2(tmp_path)), "width": 4}, seed=0)
    assert (len(workload.train), len(workload.validation), len(workload.test)) == (4, 1, 2)
    assert workload.train.inputs.shape == (4, 3, H, W)
    label, depth, normal = workload.test.targets
    assert label.shape == (2, H, W) and depth.shape == (2, 1, H, W) and normal.shape == (2, 3, H, W)
    assert workload.task_names == ("segmentation", "depth", "normal")
    assert workload.theoretical_initial_losses[0] == pytest.approx(math.log(13))


@pytest.mark.parametrize("method, extra", [("gradnorm", {"alpha": 1.5}), ("equal", {})])
def test_training_end_to_end_on_the_fixture(tmp_path, method, extra):
    options = {"data_dir": str(write_nyuv2(tmp_path)), "width": 4}
    result = train(TrialConfig(workload="nyuv2", workload_options=options, method=method, steps=6, batch_size=2,
                               log_every=3, **extra))
    assert result.ok and len(result.final_validation_losses) == 3
    names = {(m.task, m.metric) for m in result.test_metrics}
    assert {("segmentation", "miou"), ("depth", "rel_err"), ("normal", "within_11.25")} <= names
    if method == "gradnorm":
        assert sum(result.final_weights) == pytest.approx(3.0, rel=1e-5) and result.trace[-1].grad_norms is not None


def test_segmentation_scores_by_hand():
    # 2 x 2 image, 3 classes; truth [[0, 1], [1, -1]] (one unlabelled), prediction [[0, 1], [0, 2]]
    truth = torch.tensor([[[0, 1], [1, -1]]])
    predicted = torch.tensor([[0, 1], [0, 2]])
    logits = torch.nn.functional.one_hot(predicted, 3).permute(2, 0, 1)[None].float()
    miou, accuracy = segmentation_scores(logits, truth, classes=3)
    # labelled pixels: (0 vs 0), (1 vs 1), (0 vs 1): accuracy 2/3; IoU class 0 = 1/2, class 1 = 1/2; class 2 absent
    assert accuracy == pytest.approx(2 / 3) and miou == pytest.approx(0.5)


def test_depth_errors_by_hand():
    truth = torch.tensor([[[[2.0, 4.0], [0.0, 1.0]]]])  # one unknown pixel (0)
    predicted = torch.tensor([[[[3.0, 4.0], [9.0, 0.5]]]])
    absolute, relative = depth_errors(predicted, truth)
    assert absolute == pytest.approx((1 + 0 + 0.5) / 3) and relative == pytest.approx((0.5 + 0 + 0.5) / 3)


def test_normal_errors_by_hand():
    truth = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 3)  # last unknown
    predicted = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [5.0, 5.0, 5.0]]).T.reshape(1, 3, 1, 3)
    mean, median, within = normal_errors(predicted, truth)
    # angles 0 and 45 degrees: 0 is within 11.25, 22.5 and 30; 45 within none
    assert mean == pytest.approx(22.5, abs=1e-4) and within == pytest.approx([0.5, 0.5, 0.5])
    assert median == pytest.approx(0.0, abs=1e-4)  # torch's median of an even count is the lower middle value


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: None, "no folder at"),
        (lambda root: (root / "train" / "depth" / "3.npy").unlink(), "missing file at"),
        (lambda root: np.save(root / "train" / "normal" / "0.npy", np.zeros((H, W, 2), np.float32)), "expected H x W x 3"),
        (lambda root: np.save(root / "val" / "label" / "1.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True),
         "unreadable"),
    ],
    ids=["no-dir", "missing-file", "wrong-shape", "pickled-object"],
)
def test_a_bad_data_directory_is_one_line_and_exit_2(capsys, tmp_path, damage, message):
    root = tmp_path / "nyu"
    if message != "no folder at":
        write_nyuv2(root)
    damage(root)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"study": "nyu", "kind": "methods", "workload": "nyuv2",
                                    "workload_options": {"data_dir": str(root), "width": 4},
                                    "training": {"steps": 2, "batch_size": 2}, "methods": {"methods": ["equal"]}}))
    for argv in (["plan", str(spec)], ["train", "--workload", "nyuv2", "--option", f"data_dir={root}", "--steps", "2"]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and "workload_options.data_dir: " in err and message in err and err.count("\n") == 1
