"""One contract, every balancer: positivity, sum to T, state round-trip, the network's gradient."""

import copy
import math

import pytest
import torch
from torch import nn

from workers.balancers import (
    FAMO,
    DynamicWeightAverage,
    EqualWeights,
    GradNorm,
    InverseInitialLoss,
    RandomLossWeighting,
    SingleTask,
    StaticWeights,
    UncertaintyWeighting,
)
from workers.balancers.dwa import dwa_weights
from workers.balancers.famo import famo_logit_gradient, famo_weights
from workers.balancers.uncertainty import uncertainty_gradient
from workers.model import MultiTaskNet
from workers.probe import LinearLayerProbe

TASKS = 3


def tiny_net() -> MultiTaskNet:
    torch.manual_seed(0)
    return MultiTaskNet(nn.Sequential(nn.Linear(4, 6), nn.ReLU()), nn.Linear(6, 5), nn.ReLU(), [nn.Linear(5, 1) for _ in range(TASKS)])


# name -> (factory(model), whether sum_i w_i = T holds)
BALANCERS = {
    "equal": (lambda m: EqualWeights(TASKS), True),
    "static": (lambda m: StaticWeights(TASKS, [6.0, 3.0, 1.0]), True),
    "gradnorm-static": (lambda m: StaticWeights(TASKS, [0.4, 2.1, 0.5]), True),  # a GradNorm run's E_t[w]
    "single-task": (lambda m: SingleTask(TASKS, 1), False),
    "uncertainty": (lambda m: UncertaintyWeighting(TASKS), False),
    "gradnorm": (lambda m: GradNorm(TASKS, [m.shared_layer.weight], alpha=0.5), True),
    "gradnorm-theoretical": (
        lambda m: GradNorm(TASKS, [m.shared_layer.weight], alpha=1.5, initial_loss="theoretical", theoretical_initial_losses=[1.0, 50.0, 0.1]),
        True,
    ),
    "gradnorm-log": (lambda m: GradNorm(TASKS, [m.shared_layer.weight], alpha=0.5, weight_update="log"), True),
    "gradnorm-stuck": (lambda m: GradNorm(TASKS, [m.shared_layer.weight], alpha=1.5, stuck_window=2), True),
    "dwa": (lambda m: DynamicWeightAverage(TASKS, window=2), True),
    "rlw": (lambda m: RandomLossWeighting(TASKS, seed=3), True),
    "famo": (lambda m: FAMO(TASKS), True),
    "inverse-initial-loss": (lambda m: InverseInitialLoss(TASKS), True),
}


def losses_at(model: MultiTaskNet, step: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(step)
    x = torch.randn(8, 4, generator=generator)
    targets = torch.randn(8, TASKS, generator=generator) * torch.tensor([1.0, 7.0, 0.3])
    return torch.stack([(o[:, 0] - targets[:, i]).pow(2).mean() for i, o in enumerate(model(x))])


def run_steps(model, balancer, steps, start=0, probe=None):
    weights_used = []
    for step in range(start, start + steps):
        losses = losses_at(model, step)
        weights_used.append(balancer.weights.clone())
        model.zero_grad()
        balancer.combine(losses).backward(retain_graph=balancer.needs_task_grad_norms and probe is None)
        balancer.step(losses, probe.task_grad_norms(balancer.weights) if probe else None)
    return weights_used


@pytest.fixture(params=list(BALANCERS))
def case(request):
    factory, sums_to_t = BALANCERS[request.param]
    model = tiny_net()
    return model, factory(model), sums_to_t, factory


def test_weights_positive_and_sum_to_task_count(case):
    model, balancer, sums_to_t, _ = case
    for weights in run_steps(model, balancer, 25) + [balancer.weights]:
        assert bool((weights >= 0).all()) and bool(torch.isfinite(weights).all())
        if sums_to_t:
            assert float(weights.sum()) == pytest.approx(TASKS, rel=1e-5)
            assert bool((weights > 0).all())


def test_time_averaged_weights_are_the_mean_of_the_weights_used(case):
    model, balancer, _, _ = case
    used = run_steps(model, balancer, 10)
    assert torch.allclose(balancer.time_averaged_weights, torch.stack(used).double().mean(dim=0), atol=1e-6)


def test_state_round_trip_continues_identically(case):
    model, balancer, _, factory = case
    run_steps(model, balancer, 6)
    saved_state = copy.deepcopy(balancer.state_dict())
    saved_model = copy.deepcopy(model)
    run_steps(model, balancer, 6, start=6)

    restored = factory(saved_model)
    restored.load_state_dict(saved_state)
    run_steps(saved_model, restored, 6, start=6)
    assert torch.equal(restored.weights, balancer.weights)
    assert torch.equal(restored.time_averaged_weights, balancer.time_averaged_weights)


def test_network_gradient_is_the_weighted_loss_gradient(case):
    """param.grad == grad sum_i w_i L_i for every network parameter, nothing else added."""
    model, balancer, _, _ = case
    run_steps(model, balancer, 3)  # get away from the initial weights
    losses = losses_at(model, 99)
    weights = balancer.weights.clone()
    params = list(model.parameters())
    expected = torch.autograd.grad((weights * losses).sum(), params, retain_graph=True, allow_unused=True)
    model.zero_grad()
    balancer.combine(losses).backward(retain_graph=True)
    balancer.step(losses)
    for param, grad in zip(params, expected):
        if grad is None:  # a head the balancer gives weight 0 (single-task)
            assert param.grad is None or bool((param.grad == 0).all())
        else:
            assert torch.allclose(param.grad, grad, atol=1e-6)


def test_gradnorm_probe_and_autograd_paths_agree():
    model_a = tiny_net()
    model_b = copy.deepcopy(model_a)
    a = GradNorm(TASKS, [model_a.shared_layer.weight], alpha=0.5)
    b = GradNorm(TASKS, [model_b.shared_layer.weight], alpha=0.5)
    run_steps(model_a, a, 20)
    run_steps(model_b, b, 20, probe=LinearLayerProbe(model_b))
    assert torch.allclose(a.weights, b.weights, atol=1e-5)
    assert torch.allclose(a.last_grad_norms, b.last_grad_norms, rtol=1e-4)


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: GradNorm(2, [torch.zeros(1, requires_grad=True)], alpha=-0.1), "alpha"),
        (lambda: GradNorm(2, [], alpha=0.1), "shared_params"),
        (lambda: GradNorm(2, [torch.zeros(1, requires_grad=True)], initial_loss="last"), "initial_loss"),
        (lambda: GradNorm(2, [torch.zeros(1, requires_grad=True)], initial_loss="theoretical"), "initial_loss"),
        (lambda: GradNorm(2, [torch.zeros(1, requires_grad=True)], initial_loss=[1.0]), "initial_loss"),
        (lambda: GradNorm(2, [torch.zeros(1, requires_grad=True)], lr=0), "lr"),
        (lambda: StaticWeights(2, [1.0, 2.0, 3.0]), "weights"),
        (lambda: StaticWeights(2, [1.0, 0.0]), "weights"),
        (lambda: StaticWeights(2, [1.0, -2.0]), "weights"),
        (lambda: StaticWeights(2, [1.0, float("nan")]), "weights"),
        (lambda: SingleTask(2, 2), "task"),
        (lambda: UncertaintyWeighting(2, lr=-1.0), "lr"),
        (lambda: EqualWeights(0), "num_tasks"),
        (lambda: DynamicWeightAverage(2, window=0), "window"),
        (lambda: DynamicWeightAverage(2, temperature=0.0), "temperature"),
        (lambda: FAMO(2, lr=0.0), "lr"),
        (lambda: GradNorm(2, [torch.zeros(1, requires_grad=True)], stuck_window=0), "stuck_window"),
        (lambda: GradNorm(2, [torch.zeros(1, requires_grad=True)], weight_update="exp"), "weight_update"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=f"^{argument}"):
        make()


def test_static_weights_are_renormalized_to_sum_to_task_count():
    assert StaticWeights(2, [3.0, 1.0]).weights.tolist() == pytest.approx([1.5, 0.5])


def test_uncertainty_gradient_by_hand_and_as_autograd_computes_it():
    # s = (0, log 2): w = (1, 0.5); L = (3, 0.5): 1 - w L = (1 - 3, 1 - 0.25)
    weights, losses = torch.tensor([1.0, 0.5]), torch.tensor([3.0, 0.5])
    assert uncertainty_gradient(weights, losses).tolist() == [-2.0, 0.75]
    log_variances = torch.tensor([0.3, -1.7], requires_grad=True)
    losses = torch.tensor([0.37, 11.9])
    (torch.exp(-log_variances) * losses + log_variances).sum().backward()
    assert torch.equal(uncertainty_gradient(torch.exp(-log_variances.detach()), losses), log_variances.grad)


def test_uncertainty_weighting_learns_lower_weight_for_the_noisier_task():
    balancer = UncertaintyWeighting(2)
    for _ in range(1000):
        losses = torch.tensor([0.5, 20.0])  # d/ds (e^-s L + s) = 0 at s = log L
        balancer.step(losses)
    assert float(balancer.weights[0]) > 1.0 > float(balancer.weights[1])
    assert balancer.log_variances.detach().tolist() == pytest.approx([math.log(0.5), math.log(20.0)], abs=0.05)


def test_dwa_weights_by_hand():
    # r = (0.5, 1.0): T softmax(r / 2) = 2 (e^0.25, e^0.5) / (e^0.25 + e^0.5)
    weights = dwa_weights(torch.tensor([1.0, 4.0]), torch.tensor([2.0, 4.0]))
    low, high = math.exp(0.25), math.exp(0.5)
    assert weights.tolist() == pytest.approx([2 * low / (low + high), 2 * high / (low + high)])


def test_dwa_keeps_equal_weights_for_two_windows_then_favours_the_task_that_stalls():
    balancer = DynamicWeightAverage(2, window=2)
    for losses in ([4.0, 4.0], [4.0, 4.0], [2.0, 4.0]):
        balancer.step(torch.tensor(losses))
        assert balancer.weights.tolist() == [1.0, 1.0]  # one window done, then mid-window
    balancer.step(torch.tensor([2.0, 4.0]))  # second window: means (2, 4) after (4, 4): r = (0.5, 1)
    assert balancer.weights.tolist() == pytest.approx(dwa_weights(torch.tensor([2.0, 4.0]), torch.tensor([4.0, 4.0])).tolist())
    assert float(balancer.weights[1]) > 1.0 > float(balancer.weights[0])


def test_rlw_draws_fresh_softmax_normal_weights_each_step_reproducibly():
    a, b = RandomLossWeighting(3, seed=5), RandomLossWeighting(3, seed=5)
    generator = torch.Generator().manual_seed(5)
    for _ in range(4):
        assert torch.allclose(a.weights, 3 * torch.softmax(torch.randn(3, generator=generator), dim=-1))
        a.step(torch.ones(3))
        b.step(torch.ones(3))
    assert torch.equal(a.weights, b.weights)
    assert not torch.equal(a.weights, RandomLossWeighting(3, seed=6).weights)


def test_famo_weights_and_logit_gradient_by_hand():
    # z = softmax(0, 0) = (1/2, 1/2); L = (1, 4): z / L = (1/2, 1/8), lambda = (0.8, 0.2), w = 2 lambda
    assert famo_weights(torch.zeros(2), torch.tensor([1.0, 4.0])).tolist() == pytest.approx([1.6, 0.4])
    # delta = log(previous / now) = (log 2, 0); z . delta = log(2) / 2; gradient = z (delta - z . delta) = (+log2/4, -log2/4)
    gradient = famo_logit_gradient(torch.zeros(2), torch.tensor([2.0, 4.0]), torch.tensor([1.0, 4.0]))
    assert gradient.tolist() == pytest.approx([math.log(2) / 4, -math.log(2) / 4])


def test_famo_takes_weight_from_the_task_whose_loss_falls_fastest():
    balancer = FAMO(2)
    losses = torch.tensor([1.0, 1.0])
    for _ in range(200):
        balancer.step(losses)
        losses = losses * torch.tensor([0.97, 1.0])  # task 0 keeps improving, task 1 stalls
    assert float(balancer.logits.detach()[0]) < 0 < float(balancer.logits.detach()[1])


def test_inverse_initial_loss_weights_by_hand():
    from workers.balancers.static import inverse_initial_loss_weights

    # L(0) = (2.31, 2.31, 100): 1/L = (0.4329, 0.4329, 0.01), sum 0.8758; times T=3 / sum
    weights = inverse_initial_loss_weights(torch.tensor([2.31, 2.31, 100.0]))
    expected = [3 * (1 / 2.31) / (2 / 2.31 + 0.01)] * 2 + [3 * 0.01 / (2 / 2.31 + 0.01)]
    assert weights.tolist() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx([1.48287, 1.48287, 0.034254], rel=1e-4)  # the (1.48, 1.48, 0.035)
    balancer = InverseInitialLoss(3)
    assert balancer.weights.tolist() == [1.0, 1.0, 1.0]  # the first step, which measures L(0)
    balancer.step(torch.tensor([2.31, 2.31, 100.0]))
    balancer.step(torch.tensor([0.5, 0.7, 3.0]))  # later losses change nothing
    assert balancer.weights.tolist() == pytest.approx(expected, rel=1e-6)
    assert balancer.time_averaged_weights.tolist() == pytest.approx([(1 + e) / 2 for e in expected], rel=1e-6)


def test_every_registered_method_has_its_builder_and_a_contract_case():
    import importlib

    from records.methods import REGISTRY

    for method in REGISTRY.values():
        assert method.name in importlib.import_module(method.module).BUILDERS, method.name
        assert method.name in BALANCERS, f"{method.name} is not in the contract suite"
    modules = {method.module for method in REGISTRY.values()}
    built = {name for module in modules for name in importlib.import_module(module).BUILDERS}
    assert built == set(REGISTRY)  # no builder without its registry entry


def test_a_method_added_by_its_module_and_one_registry_entry_trains_and_packs(monkeypatch):
    """The registry is the only place outside the method's module that must know of it."""
    from records import methods
    from workers.config import TrialConfig
    from workers.packed import train_pack
    from workers.training import train

    monkeypatch.setitem(methods.REGISTRY, "first-half", methods.Method("first-half", "tests.half_balancer", "test"))
    toy = dict(workload="toy", workload_options={"tasks": 4}, steps=40, log_every=20)
    alone = train(TrialConfig(method="first-half", **toy))
    assert alone.status == "ok"
    assert alone.final_weights == pytest.approx([1.5, 1.5, 0.5, 0.5])  # (3, 3, 1, 1) scaled to sum to T = 4
    equal, packed = train_pack([TrialConfig(method="equal", **toy), TrialConfig(method="first-half", **toy)])
    assert packed.final_weights == alone.final_weights and equal.final_weights == (1.0,) * 4
    assert packed.trace[-1].train_losses == alone.trace[-1].train_losses  # the same run, packed or alone


def pack_step_inputs(step: int, runs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Task losses and gradient norms [runs, TASKS] as a pack of small networks would give them."""
    generator = torch.Generator().manual_seed(1000 + step)
    losses = torch.rand(runs, TASKS, generator=generator) * torch.tensor([1.0, 7.0, 0.3]) + 0.05
    return losses, torch.rand(runs, TASKS, generator=generator) + 0.1


PACKS = {  # name -> the pack's configs (toy with three tasks)
    "gradnorm rows": [dict(method="gradnorm", alpha=alpha) for alpha in (0.0, 0.5, 1.5)],
    "loss-driven and fixed rows": [dict(method="dwa"), dict(method="rlw"), dict(method="famo"),
                                   dict(method="static", weights=(2.0, 0.5, 0.5)), dict(method="equal")],
}


@pytest.mark.parametrize("pack", list(PACKS))
def test_a_packs_state_round_trip_continues_identically_even_after_a_run_is_dropped(pack):
    """The pack's rows under the same contract as a lone balancer: saved after 6 steps, restored into
    a new pack, the next 6 steps give the same weights and E_t[w], a dropped run included."""
    from workers.config import TrialConfig
    from workers.packed import PackedBalancer
    from workers.workloads import build_workload

    configs = [TrialConfig(workload="toy", workload_options={"tasks": TASKS, "train_size": 50, "test_size": 10},
                           **fields) for fields in PACKS[pack]]
    workload = build_workload("toy", configs[0].workload_options, seed=0)
    runs = len(configs)
    alive = torch.ones(runs, dtype=torch.bool)

    def steps(balancer: PackedBalancer, start: int) -> None:
        for step in range(start, start + 6):
            balancer.step(*pack_step_inputs(step, runs), alive)

    balancer = PackedBalancer.for_configs(configs, workload)
    steps(balancer, 0)
    alive[1] = False
    balancer.drop(1)
    saved = copy.deepcopy(balancer.state_dict())
    steps(balancer, 6)

    restored = PackedBalancer.for_configs(configs, workload)
    restored.load_state_dict(saved)
    steps(restored, 6)
    assert torch.equal(restored.weights, balancer.weights)
    assert torch.equal(restored.time_averaged_weights, balancer.time_averaged_weights)
    assert not torch.equal(balancer.weights, PackedBalancer.for_configs(configs, workload).weights)  # they moved


def test_a_packs_state_is_refused_by_a_pack_of_other_runs():
    from workers.config import TrialConfig
    from workers.packed import PackedBalancer
    from workers.workloads import build_workload

    options = {"tasks": TASKS, "train_size": 50, "test_size": 10}
    workload = build_workload("toy", options, seed=0)
    gradnorm = PackedBalancer.for_configs([TrialConfig(workload="toy", workload_options=options, method="gradnorm")] * 2,
                                          workload)
    fixed = PackedBalancer.for_configs([TrialConfig(workload="toy", workload_options=options, method="equal")] * 2,
                                       workload)
    with pytest.raises(ValueError, match=r"^load_state_dict: the state is for a pack of \(2, 3\) weights \(GradNorm rows\)"):
        fixed.load_state_dict(gradnorm.state_dict())
