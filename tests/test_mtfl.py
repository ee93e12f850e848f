"""MTFL in its published layout, on a tiny fixture the test writes with the layout's quirks."""

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from study.cli import main
from workers.config import TrialConfig
from workers.training import train
from workers.workloads import build_workload
from workers.workloads.dense import landmark_errors
from workers.workloads.mtfl import parse_line


def write_mtfl(root, train=6, test=3):
    """JPEGs under two sub-folders; listing lines with backslash paths, leading spaces and CRLF endings."""
    rng = np.random.default_rng(0)
    for folder in ("lfw_5590", "net_7876"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for listing, count in (("training.txt", train), ("testing.txt", test)):
        lines = []
        for i in range(count):
            folder = "lfw_5590" if i % 2 else "net_7876"
            name = f"{listing[:4]}_{i}.jpg"
            width, height = 80 + 10 * i, 60
            Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(root / folder / name)
            xs = [0.3 * width, 0.7 * width, 0.5 * width, 0.35 * width, 0.65 * width]
            ys = [0.4 * height, 0.4 * height, 0.55 * height, 0.75 * height, 0.75 * height]
            attributes = [1 + i % 2, 2, 1, 1 + i % 5]
            lines.append(f" {folder}\\{name} " + " ".join(f"{v:.2f}" for v in xs + ys) + " " + " ".join(map(str, attributes)))
        (root / listing).write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return root


def test_the_published_layout_loads_with_its_quirks(tmp_path):
    workload = build_workload("mtfl", {"data_dir": str(write_mtfl(tmp_path))}, seed=0)
    assert (len(workload.train), len(workload.validation), len(workload.test)) == (5, 1, 3)
    assert workload.train.inputs.shape == (5, 1, 40, 40)
    assert workload.task_names == ("landmarks", "gender", "smiling", "glasses", "pose")
    # landmarks in [0, 1] of the image side: the left eye sits at 30 % across, 40 % down in every fixture face
    landmarks = workload.test.targets[0]
    assert torch.allclose(landmarks[:, 0], torch.full((3,), 0.3), atol=1e-3)
    assert torch.allclose(landmarks[:, 5], torch.full((3,), 0.4), atol=1e-3)
    assert workload.test.targets[4].tolist() == [0, 1, 2]  # pose 1..5 coded from 0


def test_a_line_is_parsed_as_published():
    path, points, codes = parse_line("  lfw_5590\\Aaron_0001.jpg 1 2 3 4 5 6 7 8 9 10 2 1 1 5\r", "line 1")
    assert path == "lfw_5590/Aaron_0001.jpg" and points == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] and codes == [1, 0, 0, 4]


@pytest.mark.parametrize("method", ["gradnorm", "equal"])
def test_training_end_to_end_on_the_fixture(tmp_path, method):
    result = train(TrialConfig(workload="mtfl", workload_options={"data_dir": str(write_mtfl(tmp_path))}, method=method,
                               steps=6, batch_size=2, log_every=3))
    assert result.ok and len(result.task_names) == 5
    metrics = {(m.task, m.metric) for m in result.test_metrics}
    assert {("landmarks", "nme"), ("landmarks", "failure_rate"), ("glasses", "accuracy"), ("glasses", "majority_rate")} <= metrics


def test_landmark_errors_by_hand():
    # eyes 10 apart; every predicted point off by 1 (error 0.1) in face 0, by 2 (0.2) in face 1
    truth = torch.tensor([[0.0, 10, 5, 2, 8, 0, 0, 5, 9, 9]] * 2)
    predicted = truth.clone()
    predicted[0, :5] += 1
    predicted[1, 5:] += 2
    error, failures = landmark_errors(predicted, truth)
    assert error == pytest.approx(0.15) and failures == pytest.approx(0.5)  # only 0.2 exceeds 10 %


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: (root / "testing.txt").unlink(), "missing file"),
        (lambda root: (root / "training.txt").write_text("lfw_5590\\x.jpg 1 2 3\n"), "expected 15 fields, got 4"),
        (lambda root: (root / "training.txt").write_text("lfw_5590\\nope.jpg " + "1 " * 10 + "1 1 1 1\n"), "no image"),
        (lambda root: (root / "training.txt").write_text("..\\..\\etc\\passwd " + "1 " * 10 + "1 1 1 1\n"), "leaves the data folder"),
        (lambda root: (root / "training.txt").write_text("lfw_5590\\trai_1.jpg " + "1 " * 10 + "1 1 1 9\n"), "pose must be 1..5"),
    ],
    ids=["missing-listing", "short-line", "missing-image", "path-escape", "bad-attribute"],
)
def test_a_bad_data_directory_is_one_line_and_exit_2(capsys, tmp_path, damage, message):
    root = write_mtfl(tmp_path / "mtfl")
    damage(root)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"study": "faces", "kind": "methods", "workload": "mtfl",
                                    "workload_options": {"data_dir": str(root)},
                                    "training": {"steps": 2, "batch_size": 2}, "methods": {"methods": ["equal"]}}))
    assert main(["plan", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "workload_options.data_dir: " in err and message in err and err.count("\n") == 1
