"""A run's recorded values do not depend on its pack: the same numbers alone (a pack of one, through
`train`), in a pack of 4 and in a pack of 12 with other partners, in float32, on every packable
workload of ours. Alone, a run is computed beside a shadow copy (workers.packed.PackedNet.forward)."""

import numpy as np
import pytest
import torch

from workers.config import TrialConfig
from workers.packed import train_pack
from workers.training import train

WORKLOADS = {
    "toy": ({"tasks": 2, "train_size": 600, "test_size": 100, "validation_size": 100}, 2),
    "digits": ({"standardize_targets": True}, 4),
    "multimnist": ({"third_task": "sum", "train_size": 400, "validation_size": 100, "test_size": 100}, 3),
}
TOLERANCE = 1e-6


def numbers(result):
    """Every value a run records, flattened: final metrics and losses, weights, the whole trace."""
    values = [result.primary_metric, result.validation_metric, *result.final_test_losses,
              *result.final_validation_losses, *result.final_weights, *result.time_averaged_weights,
              *(m.value for m in result.test_metrics)]
    for point in result.trace:
        values += [*point.train_losses, *point.test_losses, *point.validation_losses, *point.weights,
                   *(point.grad_norms or ())]
    return np.array(values, dtype=float)


def assert_invariant(alone, *packed):
    expected = numbers(alone)
    for result in packed:
        assert result.selected_step == alone.selected_step and result.steps_completed == alone.steps_completed
        got = numbers(result)
        assert got.shape == expected.shape
        assert np.all(np.abs(got - expected) <= TOLERANCE * np.abs(expected)), np.max(np.abs(got / expected - 1))


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_a_static_run_records_the_same_numbers_alone_and_in_packs_of_4_and_12(workload):
    options, tasks = WORKLOADS[workload]
    rng = np.random.default_rng(7)

    def run(**fields):
        return TrialConfig(workload=workload, workload_options=options, steps=60, log_every=20, **fields)

    target = run(method="static", weights=tuple(rng.uniform(0.2, 2.0, tasks)))
    partners = [run(method="static", weights=tuple(rng.uniform(0.2, 2.0, tasks))) for _ in range(11)]
    partners[2] = run(method="equal")
    partners[5] = run(method="inverse-initial-loss")
    alone = train(target)
    in_four = train_pack([partners[0], target, partners[1], partners[2]])[1]
    in_twelve = train_pack(partners[3:] + [target])[-1]
    assert_invariant(alone, in_four, in_twelve)


@pytest.mark.parametrize("workload", ["digits", "multimnist"])
def test_gradnorm_and_best_validation_selection_are_pack_invariant_too(workload):
    options, _ = WORKLOADS[workload]

    def run(alpha):
        return TrialConfig(workload=workload, workload_options=options, method="gradnorm", alpha=alpha, steps=60,
                           log_every=10, select="best_validation", patience=2)

    alone = train(run(1.0))
    in_four = train_pack([run(0.0), run(0.5), run(1.0), run(3.0)])[2]
    assert alone.selected_step is not None
    assert_invariant(alone, in_four)


def test_what_never_packs_keeps_the_one_run_loop():
    from workers.model import PackFacts
    from workers.packing import can_pack
    from workers.workloads import build_workload

    toy_model = build_workload("toy", WORKLOADS["toy"][0], seed=0).model
    why_alone = lambda config, model: can_pack(config, PackFacts.of(model))  # noqa: E731
    toy = dict(workload="toy", workload_options=WORKLOADS["toy"][0])
    assert why_alone(TrialConfig(method="equal", **toy), toy_model) is None
    assert why_alone(TrialConfig(method="gradnorm", **toy), toy_model) is None
    assert why_alone(TrialConfig(method="uncertainty", balancer_lr=0.05, **toy), toy_model) is None
    assert "with shared_params set" in why_alone(
        TrialConfig(method="gradnorm", shared_params=("body.0.weight",), **toy), toy_model)
    user = TrialConfig(workload="tests.user_workload:build", method="equal")
    assert "user workload" in why_alone(user, toy_model)
    assert can_pack(user, PackFacts.of(toy_model), vouched=True) is None  # train_pack's caller chose to pack it
    toy_model.register_buffer("seen", torch.zeros(1))  # as batch norm's running statistics would
    assert "buffers" in why_alone(TrialConfig(method="equal", **toy), toy_model)


# A valid value other than the default for each method-specific field.
OTHER_VALUES = {"alpha": 2.5, "weights": (1.0, 2.0), "weights_from": "0123456789abcdef", "task": 1,
                "initial_loss": "theoretical", "balancer_lr": 0.1, "shared_params": ("body.0.weight",),
                "weight_update": "log", "stuck_window": 50}


def test_the_gate_refuses_every_option_the_packed_engine_was_not_told_of():
    """Each field of a packing method is per-run, shared, or must be at its default to pack:
    derived from the registry, so a new option is refused until the engine declares it."""
    from records.methods import METHOD_FIELDS, REGISTRY
    from workers.model import PackFacts
    from workers.packing import can_pack

    assert set(OTHER_VALUES) == set(METHOD_FIELDS)
    facts = PackFacts(packs_fixed_weights=True, packs_gradnorm=True)
    refused = []
    for method in REGISTRY.values():
        if method.packing is None:
            continue
        needed = {name: OTHER_VALUES[name] for name in method.needs}
        if method.name == "gradnorm-static":
            needed["weights"] = OTHER_VALUES["weights"]
        for name in method.fields:
            config = TrialConfig(method=method.name, **{**needed, name: OTHER_VALUES[name]})
            reason = can_pack(config, facts)
            if name in method.per_run + method.shared:
                assert reason is None, (method.name, name, reason)
            else:
                assert reason == f"method {method.name!r} with {name} set trains one run per process"
                refused.append((method.name, name))
    assert refused == [("gradnorm", "initial_loss"), ("gradnorm", "shared_params"), ("gradnorm", "weight_update"),
                       ("gradnorm", "stuck_window")]
