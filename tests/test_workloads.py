"""One contract over every built-in workload, plus the choices each one fixes."""

import pytest
import torch

from workers.config import TrialConfig
from workers.workloads import build_workload, check_trial, task_names
from workers.workloads.base import CLASSIFICATION, REGRESSION

# Small option sets so that the contract runs fast.
WORKLOADS = {
    "toy": {"tasks": 3, "train_size": 300, "test_size": 50},
    "sinusoid": {"train_size": 300, "test_size": 50},
    "digits": {},
}


@pytest.fixture(params=list(WORKLOADS))
def named(request):
    return request.param, WORKLOADS[request.param]


def test_outputs_match_targets_and_losses_are_finite(named):
    name, options = named
    workload = build_workload(name, options, seed=0)
    assert workload.task_names == task_names(name, options)
    outputs = workload.model(workload.train.inputs[:10])
    losses = workload.task_losses(outputs, [t[:10] for t in workload.train.targets])
    assert losses.shape == (len(workload.tasks),)
    assert bool(torch.isfinite(losses).all()) and bool((losses > 0).all())
    metrics = workload.test_metrics(workload.model(workload.test.inputs))
    assert {m.task for m in metrics} == set(workload.task_names)
    assert all(value > 0 for value in workload.theoretical_initial_losses)


def test_same_seed_same_init_and_data_other_seed_other_init_same_data(named):
    name, options = named
    a, b, c = (build_workload(name, options, seed=s) for s in (4, 4, 5))
    for pa, pb, pc in zip(a.model.parameters(), b.model.parameters(), c.model.parameters()):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.model.parameters(), c.model.parameters()))
    assert torch.equal(a.train.inputs, c.train.inputs) and torch.equal(a.test.inputs, c.test.inputs)
    for ta, tc in zip(a.train.targets, c.train.targets):
        assert torch.equal(ta, tc)


def test_building_a_workload_leaves_the_global_rng_alone(named):
    name, options = named
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_workload(name, options, seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_toy_follows_the_paper_definition():
    workload = build_workload("toy", {"tasks": 2, "train_size": 2000, "test_size": 10}, seed=0)
    assert workload.train.inputs.shape == (2000, 250)
    assert [t.shape for t in workload.train.targets] == [(2000, 100), (2000, 100)]
    assert all(task.kind == REGRESSION for task in workload.tasks)
    # |f_i| <= sigma_i with sigma = (1, 100); tanh of a wide argument is mostly saturated
    low, high = (t.abs() for t in workload.train.targets)
    assert float(low.max()) <= 1.0 and float(high.max()) <= 100.0
    assert float(high.mean()) > 90.0
    # trunk: 4 linear layers of 100 units (the last one the shared layer), affine heads
    linears = [m for m in workload.model.body if isinstance(m, torch.nn.Linear)] + [workload.model.shared_layer]
    assert [(m.in_features, m.out_features) for m in linears] == [(250, 100)] + [(100, 100)] * 3
    assert [tuple(h.weight.shape) for h in workload.model.heads] == [(100, 100), (100, 100)]


def test_toy_ten_tasks_draw_sigmas_from_the_problem_seed():
    a = build_workload("toy", {"tasks": 10, "train_size": 200, "test_size": 10}, seed=0)
    b = build_workload("toy", {"tasks": 10, "train_size": 200, "test_size": 10, "problem_seed": 1}, seed=0)
    scales_a = [float(t.abs().max()) for t in a.train.targets]
    scales_b = [float(t.abs().max()) for t in b.train.targets]
    assert max(scales_a) / min(scales_a) > 5  # a wide spread of loss scales
    assert scales_a != scales_b


def test_sinusoid_targets_have_the_asked_correlation():
    for p in (-0.5, 0.0, 0.8):
        workload = build_workload("sinusoid", {"correlation": p, "noise": 0.0, "train_size": 20000}, seed=0)
        a, b = (t.flatten() for t in workload.train.targets)
        assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) == pytest.approx(p, abs=0.03)


def test_digits_mixes_classification_and_regression_with_far_apart_loss_scales():
    workload = build_workload("digits", {}, seed=0)
    kinds = [task.kind for task in workload.tasks]
    assert kinds.count(CLASSIFICATION) == 2 and kinds.count(REGRESSION) == 2
    # test 20 % (359), validation 20 % of the rest (288), train the remaining 1,150
    assert (len(workload.train), len(workload.validation), len(workload.test)) == (1150, 288, 359)
    initial = workload.theoretical_initial_losses
    assert initial[0] == pytest.approx(2.302585, rel=1e-5)  # log 10
    assert initial[1] == pytest.approx(0.693147, rel=1e-5)  # log 2
    assert max(initial) / min(initial) > 1e4


@pytest.mark.parametrize(
    "workload, options, field",
    [
        ("toy", {"tasks": 0}, "workload_options.tasks"),
        ("toy", {"taks": 2}, "workload_options.taks"),
        ("toy", {"tasks": 2, "sigmas": [1.0]}, "workload_options.sigmas"),
        ("sinusoid", {"correlation": 2}, "workload_options.correlation"),
        ("digits", {"noise": -1}, "workload_options.noise"),
        ("mnist", {}, "workload"),
        ("nosuchmodule.x:build", {}, "workload"),
    ],
)
def test_bad_workload_options_name_the_field(workload, options, field):
    with pytest.raises(ValueError, match=f"^{field}"):
        task_names(workload, options)


def test_check_trial_catches_weights_and_task_that_do_not_fit():
    with pytest.raises(ValueError, match="^weights"):
        check_trial(TrialConfig(method="static", weights=(1.0, 2.0, 3.0)))
    with pytest.raises(ValueError, match="^task"):
        check_trial(TrialConfig(method="single-task", task=2))
    assert check_trial(TrialConfig(workload="digits")) == ("digit", "parity", "ink", "denoise")


def test_user_workload_factory_by_module_path():
    workload = build_workload("tests.user_workload:build", {"width": 3}, seed=0)
    assert workload.task_names == ("a", "b")
    assert workload.model.shared_layer.out_features == 3


def rows(split):
    return {tuple(row) for row in split.inputs.tolist()}


@pytest.mark.parametrize("name, options", [("toy", {"train_size": 300, "test_size": 50, "validation_size": 40}),
                                           ("sinusoid", {"train_size": 300, "test_size": 50, "validation_size": 40}),
                                           ("digits", {})])
def test_every_builtin_workload_has_disjoint_train_validation_and_test_splits(name, options):
    workload = build_workload(name, options, seed=0)
    train, validation, test = rows(workload.train), rows(workload.validation), rows(workload.test)
    assert validation and not (train & validation) and not (train & test) and not (validation & test)


def test_adding_the_validation_split_left_toy_train_and_test_as_they_were():
    # validation is drawn after the test set from the same generator: the earlier data is unchanged
    with_validation = build_workload("toy", {"train_size": 300, "test_size": 50, "validation_size": 40}, seed=0)
    other_size = build_workload("toy", {"train_size": 300, "test_size": 50, "validation_size": 7}, seed=0)
    assert torch.equal(with_validation.train.inputs, other_size.train.inputs)
    assert torch.equal(with_validation.test.targets[1], other_size.test.targets[1])


def test_digits_standardized_targets_are_z_scores_of_the_training_split():
    raw = build_workload("digits", {}, seed=0)
    standard = build_workload("digits", {"standardize_targets": True}, seed=0)
    ink = standard.train.targets[2]
    assert float(ink.mean()) == pytest.approx(0.0, abs=1e-4) and float(ink.std()) == pytest.approx(1.0, rel=1e-4)
    mean, std = raw.train.targets[2].mean(), raw.train.targets[2].std()
    assert torch.allclose(standard.test.targets[2], (raw.test.targets[2] - mean) / std)  # the train split's statistics
    assert torch.equal(standard.train.targets[0], raw.train.targets[0])  # classification labels untouched


def test_toy_input_scale_takes_the_tanh_out_of_saturation():
    def saturated_share(scale):
        workload = build_workload("toy", {"train_size": 400, "test_size": 10, "validation_size": 10, "input_scale": scale}, seed=0)
        # targets are sigma_i tanh(.), sigma = (1, 100): |y| / sigma > 0.99 means the tanh is saturated
        return float((workload.train.targets[0].abs() > 0.99).float().mean())

    assert saturated_share(1.0) > 0.9  # the paper's inputs read literally
    assert saturated_share(1 / (250 * 13.5) ** 0.5) < 0.1  # tanh argument of std about 1


@pytest.mark.parametrize("name, options", [
    ("toy", {}),
    ("toy", {"tasks": 10, "train_size": 300, "test_size": 40, "validation_size": 30}),
    ("sinusoid", {"train_size": 123}),
    ("digits", {"standardize_targets": True}),
    ("multimnist", {"third_task": "sum", "train_size": 200, "test_size": 50, "validation_size": 50}),
])
def test_plan_facts_read_from_options_equal_the_built_workloads(name, options):
    """What `gns plan` checks without torch (workers.workload_options) is what the built workload has."""
    from workers.workload_options import plan_facts
    from workers.workloads import inspect_workload

    facts, shape = plan_facts(name, options), inspect_workload(name, options, seed=0)
    assert (facts.task_names, facts.train_size, facts.has_validation) == (shape.task_names, shape.train_size,
                                                                         shape.has_validation)


def test_plan_facts_refuse_bad_options_as_the_build_does_and_leave_data_folders_to_it():
    from workers.workload_options import plan_facts

    with pytest.raises(ValueError, match=r"^workload_options\.tasks: must be an integer from 1 to"):
        plan_facts("toy", {"tasks": 0})
    with pytest.raises(ValueError, match=r"^workload_options\.colour: unknown option for workload 'digits'"):
        plan_facts("digits", {"colour": 1})
    assert plan_facts("nyuv2", {}) is None and plan_facts("tests.user_workload:build", {}) is None
