"""GradNorm checked against numbers computed by hand and against the double-backward formulation."""

import copy
import math

import pytest
import torch
from torch import nn

from workers.balancers import GradNorm
from workers.balancers.gradnorm import (
    renormalize_active,
    stalled_tasks,
    log_space_gradient,
    gradnorm_loss,
    gradnorm_targets,
    gradnorm_weight_gradient,
    grad_norms_at,
    loss_ratios,
    renormalize,
)
from workers.model import MultiTaskNet
from workers.probe import LinearLayerProbe

SQRT5 = math.sqrt(5.0)


def hand_net() -> MultiTaskNet:
    """h = W x with W = (0.5, -1); y1 = 2 h, y2 = -1 h. No biases."""
    shared = nn.Linear(2, 1, bias=False)
    heads = [nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)]
    with torch.no_grad():
        shared.weight.copy_(torch.tensor([[0.5, -1.0]]))
        heads[0].weight.fill_(2.0)
        heads[1].weight.fill_(-1.0)
    return MultiTaskNet(nn.Identity(), shared, nn.Identity(), heads)


def hand_losses(model: MultiTaskNet) -> torch.Tensor:
    # x = (1, 2): h = 0.5 - 2 = -1.5; y1 = -3, y2 = 1.5; targets 1 and 0.5
    # L1 = (-3 - 1)^2 = 16, L2 = (1.5 - 0.5)^2 = 1
    y1, y2 = model(torch.tensor([[1.0, 2.0]]))
    return torch.stack([(y1 - 1.0).pow(2).sum(), (y2 - 0.5).pow(2).sum()])


def test_hand_example_losses_and_gradient_norms():
    model = hand_net()
    losses = hand_losses(model)
    assert losses.tolist() == [16.0, 1.0]
    # grad_W L1 = 2 (y1 - t1) * 2 * x = -16 (1, 2): norm 16 sqrt(5)
    # grad_W L2 = 2 (y2 - t2) * -1 * x = -2 (1, 2): norm 2 sqrt(5)
    norms = grad_norms_at(losses, [model.shared_layer.weight])
    assert norms.tolist() == pytest.approx([16 * SQRT5, 2 * SQRT5], rel=1e-6)


def test_probe_reads_the_same_norms_off_one_backward_pass():
    model = hand_net()
    probe = LinearLayerProbe(model)
    weights = torch.tensor([0.5, 1.5])
    losses = hand_losses(model)
    (weights * losses).sum().backward()
    assert probe.task_grad_norms(weights).tolist() == pytest.approx([16 * SQRT5, 2 * SQRT5], rel=1e-6)


def test_hand_example_ratios_targets_and_weight_gradient():
    losses = torch.tensor([16.0, 1.0])
    initial = torch.tensor([32.0, 1.0])
    # L~ = (0.5, 1); mean 0.75; r = (2/3, 4/3)
    ratios = loss_ratios(losses, initial)
    assert ratios.tolist() == pytest.approx([2 / 3, 4 / 3])
    norms = torch.tensor([16 * SQRT5, 2 * SQRT5])
    weights = torch.ones(2)
    # alpha = 1: G = (16, 2) sqrt5, mean 9 sqrt5, targets (6, 12) sqrt5
    gradient, G, targets = gradnorm_weight_gradient(weights, norms, ratios, alpha=1.0)
    assert G.tolist() == pytest.approx([16 * SQRT5, 2 * SQRT5])
    assert targets.tolist() == pytest.approx([6 * SQRT5, 12 * SQRT5])
    # sign(G - target) * ||grad_W L_i||: (+1) 16 sqrt5 and (-1) 2 sqrt5
    assert gradient.tolist() == pytest.approx([16 * SQRT5, -2 * SQRT5])
    # L_grad = |16 - 6| sqrt5 + |2 - 12| sqrt5 = 20 sqrt5
    assert float(gradnorm_loss(G, targets)) == pytest.approx(20 * SQRT5)
    # alpha = 0.5: targets 9 sqrt5 * sqrt(2/3) and 9 sqrt5 * sqrt(4/3)
    half = gradnorm_targets(G, ratios, alpha=0.5)
    assert half.tolist() == pytest.approx([9 * SQRT5 * math.sqrt(2 / 3), 9 * SQRT5 * math.sqrt(4 / 3)])
    # alpha = 0 asks for equal gradient norms
    assert gradnorm_targets(G, ratios, alpha=0.0).tolist() == pytest.approx([9 * SQRT5, 9 * SQRT5])


def test_hand_example_one_balancer_step():
    model = hand_net()
    balancer = GradNorm(2, [model.shared_layer.weight], alpha=1.0, initial_loss=[32.0, 1.0])
    balancer.step(hand_losses(model))
    # Adam's first step moves each weight by lr * sign(gradient): (1 - 0.025, 1 + 0.025),
    # which already sums to T = 2.
    assert balancer.weights.tolist() == pytest.approx([0.975, 1.025], abs=1e-6)
    assert balancer.last_grad_norms.tolist() == pytest.approx([16 * SQRT5, 2 * SQRT5], rel=1e-6)


def test_log_space_gradient_is_the_chain_rule_through_exp():
    # w = exp(theta): dL/dtheta_i = w_i dL/dw_i
    gradient = log_space_gradient(torch.tensor([16 * SQRT5, -2 * SQRT5]), torch.tensor([0.5, 1.5]))
    assert gradient.tolist() == pytest.approx([8 * SQRT5, -3 * SQRT5])


def test_hand_example_one_log_space_step():
    model = hand_net()
    balancer = GradNorm(2, [model.shared_layer.weight], alpha=1.0, initial_loss=[32.0, 1.0], weight_update="log")
    balancer.step(hand_losses(model))
    # Adam moves log w by -/+ lr: w = (e^-0.025, e^0.025), then scaled to sum to 2.
    low, high = math.exp(-0.025), math.exp(0.025)
    expected = [2 * low / (low + high), 2 * high / (low + high)]
    assert balancer.weights.tolist() == pytest.approx(expected, abs=1e-6)


def test_a_small_weight_moves_by_a_ratio_in_log_space_and_hits_the_floor_additively():
    model = hand_net()
    moved = {}
    for update in ("additive", "log"):
        # L~ = (1, 0.001): task 1 trains far faster, so at alpha = 2 its target is tiny and w_1 goes down.
        balancer = GradNorm(2, [model.shared_layer.weight], alpha=2.0, initial_loss=[16.0, 1000.0], weight_update=update)
        state = balancer.state_dict()
        state["weights"] = torch.tensor([1.99, 0.01])
        balancer.load_state_dict(state)
        balancer.step(hand_losses(model))
        moved[update] = balancer.weights.tolist()
    # additive: 0.01 - 0.025 < 0 is clamped to the floor 1e-6, then scaled with 1.99 + 0.025 to sum to 2
    assert moved["additive"][1] == pytest.approx(2e-6 / (2.015 + 1e-6), rel=1e-3)
    # log: w_1 = 0.01 e^-0.025 and w_0 = 1.99 e^0.025 before scaling to sum to 2
    high, low = 1.99 * math.exp(0.025), 0.01 * math.exp(-0.025)
    assert moved["log"] == pytest.approx([2 * high / (low + high), 2 * low / (low + high)], rel=1e-5)


def test_renormalize_keeps_weights_positive_and_summing_to_task_count():
    assert renormalize(torch.tensor([3.0, 1.0])).tolist() == pytest.approx([1.5, 0.5])
    clamped = renormalize(torch.tensor([-0.2, 2.0, 1.0]))
    assert float(clamped.sum()) == pytest.approx(3.0)
    assert float(clamped.min()) > 0


def test_slowest_training_task_gains_weight():
    """alpha > 0: the task whose loss ratio L_i(t)/L_i(0) falls slowest is pushed up.

    Equal gradient norms, task 0 at 90 % of its initial loss, task 1 at 50 %.
    (A public GradNorm library once shipped this sign inverted.)
    """
    balancer = GradNorm(2, [torch.zeros(1, requires_grad=True)], alpha=0.5, initial_loss=[1.0, 1.0])
    for _ in range(5):
        balancer.step(torch.tensor([0.9, 0.5]), task_grad_norms=torch.tensor([1.0, 1.0]))
    w = balancer.weights
    assert float(w[0]) > 1.0 > float(w[1])
    assert float(w.sum()) == pytest.approx(2.0)


def random_net(seed: int, tasks: int = 3) -> MultiTaskNet:
    torch.manual_seed(seed)
    return MultiTaskNet(
        body=nn.Sequential(nn.Linear(5, 8), nn.Tanh()),
        shared_layer=nn.Linear(8, 6),
        after_shared=nn.ReLU(),
        heads=[nn.Linear(6, 1) for _ in range(tasks)],
    )


def batch_losses(model: MultiTaskNet, step: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(100 + step)
    x = torch.randn(16, 5, generator=generator)
    scales = torch.tensor([1.0, 10.0, 0.1])
    targets = torch.randn(16, 3, generator=generator) * scales
    outputs = model(x)
    return torch.stack([(o[:, 0] - targets[:, i]).pow(2).mean() for i, o in enumerate(outputs)])


def naive_gradnorm(model: MultiTaskNet, steps: int, alpha: float):
    """The textbook formulation: G_i by double backward, L_grad.backward() into w only."""
    W = model.shared_layer.weight
    w = torch.ones(3, requires_grad=True)
    w_optimizer = torch.optim.Adam([w], lr=0.025)
    net_optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    initial = None
    history = []
    for step in range(steps):
        losses = batch_losses(model, step)
        if initial is None:
            initial = losses.detach()
        G = torch.stack(
            [torch.autograd.grad(w[i] * losses[i], W, retain_graph=True, create_graph=True)[0].norm() for i in range(3)]
        )
        relative = losses.detach() / initial
        r = relative / relative.mean()
        target = (G.mean() * r.pow(alpha)).detach()
        l_grad = (G - target).abs().sum()
        w_grad = torch.autograd.grad(l_grad, w, retain_graph=True)[0]
        net_optimizer.zero_grad()
        (w.detach() * losses).sum().backward()
        w.grad = w_grad
        w_optimizer.step()
        with torch.no_grad():
            w.copy_(w * 3 / w.sum())
        net_optimizer.step()
        history.append(w.detach().clone())
    return torch.stack(history)


def ours(model: MultiTaskNet, steps: int, alpha: float, use_probe: bool):
    balancer = GradNorm(3, [model.shared_layer.weight], alpha=alpha)
    probe = LinearLayerProbe(model) if use_probe else None
    net_optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for step in range(steps):
        losses = batch_losses(model, step)
        net_optimizer.zero_grad()
        balancer.combine(losses).backward(retain_graph=probe is None)
        norms = probe.task_grad_norms(balancer.weights) if probe else None
        balancer.step(losses, norms)
        net_optimizer.step()
        history.append(balancer.weights.clone())
    return torch.stack(history)


@pytest.mark.parametrize("use_probe", [False, True], ids=["autograd", "probe"])
@pytest.mark.parametrize("alpha", [0.0, 0.12, 1.5])
def test_matches_double_backward_reference_for_several_steps(use_probe, alpha):
    torch.set_default_dtype(torch.float64)
    try:
        reference_model = random_net(seed=3)
        our_model = copy.deepcopy(reference_model)
        expected = naive_gradnorm(reference_model, steps=12, alpha=alpha)
        got = ours(our_model, steps=12, alpha=alpha, use_probe=use_probe)
        assert torch.allclose(got, expected, atol=1e-6, rtol=0)
        for ours_p, ref_p in zip(our_model.parameters(), reference_model.parameters()):
            assert torch.allclose(ours_p, ref_p, atol=1e-6, rtol=0)
        assert not torch.allclose(expected[-1], torch.ones(3))  # the weights really moved
    finally:
        torch.set_default_dtype(torch.float32)


def test_lgrad_never_reaches_the_network_parameters():
    """W.grad after a GradNorm step is exactly grad_W sum_i w_i L_i.

    The textbook mistake, L_grad.backward() without restricting it to w, adds
    d L_grad / dW to W.grad; here we show that term is non-zero, and absent.
    """
    model = random_net(seed=5)
    W = model.shared_layer.weight
    balancer = GradNorm(3, [W], alpha=1.0)
    balancer.step(batch_losses(model, 0))  # move w away from 1 first
    losses = batch_losses(model, 1)
    weights = balancer.weights.clone()
    expected = torch.autograd.grad((weights * losses).sum(), W, retain_graph=True)[0]
    G = torch.stack(
        [torch.autograd.grad(weights[i] * losses[i], W, retain_graph=True, create_graph=True)[0].norm() for i in range(3)]
    )
    relative = losses.detach() / balancer.initial_losses
    target = (G.mean() * (relative / relative.mean()).pow(1.0)).detach()
    leak = torch.autograd.grad((G - target).abs().sum(), W, retain_graph=True)[0]
    assert float(leak.abs().max()) > 1e-4

    model.zero_grad()
    balancer.combine(losses).backward(retain_graph=True)
    balancer.step(losses)
    assert torch.allclose(W.grad, expected, atol=1e-7)


def test_a_task_stalls_when_its_mean_ratio_barely_falls_while_its_weight_rises():
    earlier, last = torch.tensor([0.8, 1.0, 1.0, 0.5]), torch.tensor([0.6, 0.995, 0.995, 0.5])
    earlier_weights, weights = torch.tensor([1.0, 1.0, 1.2, 1.0]), torch.tensor([0.9, 1.1, 1.1, 1.2])
    # task 0 fell 25 %; task 1 fell 0.5 % with its weight up: stuck; task 2 fell 0.5 % but its weight went down;
    # task 3 did not fall at all and its weight rose: stuck
    assert stalled_tasks(earlier, last, earlier_weights, weights).tolist() == [False, True, False, True]


def test_renormalize_active_resets_stuck_tasks_to_one_and_the_rest_share_what_is_left():
    # T = 3, task 1 stuck: it gets 1, tasks 0 and 2 share 2 in the ratio 3 : 1
    weights = renormalize_active(torch.tensor([1.5, 2.0, 0.5]), torch.tensor([False, True, False]))
    assert weights.tolist() == pytest.approx([1.5, 1.0, 0.5])
    assert renormalize_active(torch.tensor([0.3, 0.1]), torch.tensor([False, False])).tolist() == pytest.approx([1.5, 0.5])


def test_gradnorm_takes_a_task_that_cannot_learn_out_of_its_update():
    model = hand_net()
    balancer = GradNorm(2, [model.shared_layer.weight], alpha=1.0, initial_loss=[1.0, 1.0], stuck_window=5)
    norms = torch.tensor([1.0, 1.0])
    for step in range(30):  # task 0 keeps learning, task 1's loss never moves: GradNorm raises w_1
        balancer.step(torch.tensor([0.9 ** (step + 1), 1.0]), norms)
        if step == 8:
            assert not balancer.stuck.any() and float(balancer.weights[1]) > 1.0  # one window to compare with first
    assert balancer.stuck.tolist() == [False, True]
    assert balancer.stuck_at_step == [None, 10]  # the end of the second window
    assert balancer.weights.tolist() == pytest.approx([1.0, 1.0])  # w_1 reset to 1, task 0 holds the rest of T = 2
    without = GradNorm(2, [model.shared_layer.weight], alpha=1.0, initial_loss=[1.0, 1.0])
    for step in range(30):
        without.step(torch.tensor([0.9 ** (step + 1), 1.0]), norms)
    assert float(without.weights[1]) > 1.5 and not without.stuck.any()  # left alone, the stuck task takes the weight
