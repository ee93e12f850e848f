"""Packed runs train as the independent one-run loop would: every packable method, equal to 1e-5
over 500 steps (`train(..., use_probe=False)` is that loop, workers.training.train_alone; plain
`train` of a packable config is itself a pack of one: tests/test_pack_invariance.py).

In float64: in float32 two mathematically equal runs drift apart through rounding
(different matrix kernels, then GradNorm's sign() and Adam amplify it; 1e-3 here
after 500 steps), whereas float64 shows whether the computation is the same.
"""

import pytest

from workers.config import TrialConfig
from workers.model import PackFacts
from workers.packing import pack_group as packing_group
from workers.packed import train_pack
from workers.packing import pack_sizes
from workers.training import train

TOY = {"tasks": 2, "train_size": 1000, "test_size": 200}
STEPS = 500


def toy(**fields):
    return TrialConfig(workload="toy", workload_options=TOY, steps=STEPS, log_every=100, **fields)


def assert_same(packed, alone):
    assert packed.status == alone.status and packed.steps_completed == alone.steps_completed
    for name in ("final_test_losses", "final_weights", "time_averaged_weights", "initial_losses"):
        assert getattr(packed, name) == pytest.approx(getattr(alone, name), rel=1e-5), name
    assert packed.primary_metric == pytest.approx(alone.primary_metric, rel=1e-5)
    assert [p.step for p in packed.trace] == [p.step for p in alone.trace]
    for mine, theirs in zip(packed.trace, alone.trace):
        assert mine.test_losses == pytest.approx(theirs.test_losses, rel=1e-5)
        assert mine.weights == pytest.approx(theirs.weights, rel=1e-5)
        assert (mine.grad_norms is None) == (theirs.grad_norms is None)
        if mine.grad_norms is not None:  # the pack's ||grad_W L_i||, read off its one backward pass
            assert mine.grad_norms == pytest.approx(theirs.grad_norms, rel=1e-5)
    assert [(m.metric, m.task) for m in packed.test_metrics] == [(m.metric, m.task) for m in alone.test_metrics]


FIXED_PACK = [
    toy(method="equal"),
    toy(method="static", weights=(0.3, 1.7)),
    toy(method="gradnorm-static", weights=(1.9, 0.1), weights_from="somekey"),
    toy(method="single-task", task=1),
]
GRADNORM_PACK = [toy(method="gradnorm", alpha=alpha) for alpha in (0.0, 0.12, 1.5)]
# weights set from each run's own losses (DWA's window of 100 steps turns over 5 times), beside a fixed one
LOSS_DRIVEN_PACK = [toy(method="dwa"), toy(method="rlw"), toy(method="famo"), toy(method="famo", balancer_lr=0.1),
                    toy(method="inverse-initial-loss"), toy(method="equal"), toy(method="uncertainty"),
                    toy(method="uncertainty", balancer_lr=0.05)]


@pytest.mark.parametrize("configs", [FIXED_PACK, GRADNORM_PACK, LOSS_DRIVEN_PACK],
                         ids=["fixed-weights", "gradnorm", "loss-driven"])
def test_each_packed_run_equals_the_run_alone(float64, configs):
    packed = train_pack(configs)
    assert len(packed) == len(configs)
    for config, result in zip(configs, packed):
        assert_same(result, train(config, use_probe=False))
    if configs[0].method == "gradnorm":  # the α really differ: the weights went different ways
        assert len({round(r.final_weights[0], 6) for r in packed}) == 3
    if configs[0].method == "dwa":  # every balancer moved its weights, each its own way
        assert len({round(r.final_weights[0], 6) for r in packed[:5]}) == 5
        inverse = packed[4]  # w ∝ 1/L_i(0) of its own first batch, summing to T
        expected = [2 / x / sum(1 / v for v in inverse.initial_losses) for x in inverse.initial_losses]
        assert inverse.final_weights == pytest.approx(expected, rel=1e-6)
        assert all(r.final_weights != (1.0, 1.0) for r in packed[:4])
        # uncertainty: each run's w = exp(-s) learned at its own rate, the larger rate further from 1
        slow, fast = packed[6], packed[7]
        assert abs(fast.final_weights[1] - 1) > abs(slow.final_weights[1] - 1) > 0


def test_a_run_that_diverges_fails_alone_and_the_pack_goes_on(float64):
    configs = [TrialConfig(workload="tests.user_workload:runaway", method="single-task", task=task, steps=300, lr=0.05,
                           log_every=50) for task in (0, 1)]
    survivor, runaway = train_pack(configs)
    alone = [train(c, use_probe=False) for c in configs]
    assert runaway.status == "diverged" and runaway.diverged_step == alone[1].diverged_step
    assert 0 < runaway.diverged_step < 300  # it trained a while, then the pack went on without it
    assert "task losses became non-finite" in runaway.failure_reason and "b=-inf" in runaway.failure_reason
    assert_same(survivor, alone[0])  # unharmed by its neighbour's divergence
    assert survivor.steps_completed == 300


def test_pack_groups_split_what_cannot_share_a_process():
    pack_group = lambda config: packing_group(config, PackFacts(True, True))  # noqa: E731 (a toy model's facts)
    assert pack_group(toy(method="equal")) == pack_group(toy(method="static", weights=(1.0, 3.0)))
    assert pack_group(toy(method="gradnorm", alpha=0.5)) == pack_group(toy(method="gradnorm", alpha=2.0))
    assert pack_group(toy(method="gradnorm")) != pack_group(toy(method="equal"))  # weights learned vs fixed
    assert pack_group(toy(method="equal")) != pack_group(toy(method="equal", seed=1))  # another init and batches
    assert pack_group(toy(method="uncertainty")) == pack_group(toy(method="uncertainty", balancer_lr=0.1)) \
        == pack_group(toy(method="dwa"))  # its weights follow from its own losses, like DWA's
    assert pack_group(toy(method="famo")) == pack_group(toy(method="famo", balancer_lr=0.1)) == pack_group(toy(method="dwa"))
    assert pack_group(toy(method="rlw")) == pack_group(toy(method="equal"))
    assert pack_group(toy(method="gradnorm")) != pack_group(toy(method="gradnorm", balancer_lr=0.1))  # one Adam on [K, T]
    assert pack_group(toy(method="gradnorm", shared_params=("body.0.weight",))) is None  # needs the linear layer W
    with pytest.raises(ValueError, match="do not form one pack"):
        train_pack([toy(method="equal"), toy(method="gradnorm")])


def test_pack_sizes_are_as_even_as_possible():
    assert pack_sizes(7, 3) == [3, 2, 2]
    assert pack_sizes(100, 64) == [50, 50]
    assert pack_sizes(4, 4) == [4] and pack_sizes(1, 8) == [1] and pack_sizes(0, 3) == []


def test_the_lenet_of_multimnist_packs_too(float64):
    options = {"train_size": 300, "test_size": 100, "validation_size": 100, "third_task": "sum"}
    configs = [TrialConfig(workload="multimnist", workload_options=options, method="static", weights=weights, steps=60,
                           log_every=20) for weights in ((1.0, 1.0, 1.0), (1.0, 1.0, 0.01))]
    for result, config in zip(train_pack(configs), configs):
        assert_same(result, train(config, use_probe=False))
        assert len(result.final_validation_losses) == 3


def test_the_driver_packs_only_what_can_share_a_process():
    import dataclasses

    from study.driver import make_packs
    from study.plan import check_workload, plan_study
    from study.spec import parse_spec

    spec = parse_spec({"study": "p", "kind": "random-static", "workload": "toy",
                       "workload_options": {"train_size": 400, "test_size": 50, "validation_size": 50},
                       "training": {"steps": 20, "log_every": 10}, "random_static": {"runs": 6, "gradnorm_static": False}})
    shape = check_workload(spec)
    planned = plan_study(spec, shape)
    sizes = sorted(len(pack) for pack in make_packs(spec, shape, planned, slots=2))
    # the GradNorm run alone; 6 static runs and the inverse-initial-loss one in a pack per slot
    assert sizes == [1, 3, 4]
    with_batch_norm = dataclasses.replace(shape, packs_fixed_weights=False, packs_gradnorm=False)  # e.g. nyuv2
    assert sorted(len(p) for p in make_packs(spec, with_batch_norm, planned, slots=2)) == [1] * 8
    one = dataclasses.replace(spec, resources=dataclasses.replace(spec.resources, pack=1))
    assert sorted(len(p) for p in make_packs(one, shape, planned, slots=2)) == [1] * 8
