"""One training run: results, traces, divergence, determinism, config validation."""

import json
import math

import pytest

from records import canonical_hash

from study.cli import main
from workers.config import TrialConfig
from records import TrialResult
from workers.training import train

SMALL_TOY = {"tasks": 2, "train_size": 1000, "test_size": 200}


def toy(method="equal", **fields) -> TrialConfig:
    fields.setdefault("steps", 60)
    fields.setdefault("log_every", 20)
    return TrialConfig(workload="toy", workload_options=SMALL_TOY, method=method, **fields)


def test_result_has_traces_at_every_log_interval_and_a_consistent_primary_metric():
    result = train(toy("gradnorm", steps=50))
    assert result.ok and result.steps_completed == 50
    assert [p.step for p in result.trace] == [0, 20, 40, 50]
    assert result.trace[0].train_losses == result.initial_losses
    assert all(p.grad_norms is not None and len(p.grad_norms) == 2 for p in result.trace[1:])
    expected = sum(t / i for t, i in zip(result.final_test_losses, result.initial_losses))
    assert result.primary_metric == pytest.approx(expected)
    assert result.trace[-1].test_losses == pytest.approx(result.final_test_losses)
    assert sum(result.final_weights) == pytest.approx(2.0, rel=1e-5)


def test_same_seed_is_reproducible_and_methods_start_from_the_same_point():
    a, b = train(toy()), train(toy())
    assert a.final_test_losses == b.final_test_losses
    c = train(toy("gradnorm"))
    assert c.initial_losses == a.initial_losses  # same init, same first batch
    assert c.final_test_losses != a.final_test_losses


@pytest.mark.parametrize("method", ["dwa", "rlw", "famo"])
def test_each_cheap_baseline_trains_end_to_end_and_moves_its_weights(method):
    result = train(toy(method, steps=240, log_every=40))
    assert result.ok and result.steps_completed == 240
    weights = [point.weights for point in result.trace]
    assert len(set(weights)) > 1  # the weights change during the run
    assert sum(result.time_averaged_weights) == pytest.approx(2.0, rel=1e-4)
    assert train(toy(method, steps=240, log_every=40)).final_test_losses == result.final_test_losses  # reproducible


def test_static_weights_time_average_is_the_normalized_weights():
    result = train(toy("static", weights=(3.0, 1.0)))
    assert result.time_averaged_weights == pytest.approx((1.5, 0.5))
    assert all(p.grad_norms is None for p in result.trace)


def test_probe_and_autograd_paths_train_the_same_run():
    fast = train(toy("gradnorm", steps=40), use_probe=True)
    slow = train(toy("gradnorm", steps=40), use_probe=False)
    assert fast.final_weights == pytest.approx(slow.final_weights, abs=1e-4)
    assert fast.primary_metric == pytest.approx(slow.primary_metric, rel=1e-4)


def test_gradnorm_on_the_bias_too_uses_a_different_norm():
    weight_only = train(toy("gradnorm", steps=20))
    with_bias = train(toy("gradnorm", steps=20, shared_params=("shared_layer.weight", "shared_layer.bias")))
    assert with_bias.trace[-1].grad_norms[0] > weight_only.trace[-1].grad_norms[0]


def test_divergence_is_reported_with_its_step_and_reason():
    result = train(TrialConfig(workload="sinusoid", workload_options={"train_size": 500}, method="equal", steps=50, lr=1e8))
    assert result.status == "diverged" and not result.ok
    assert result.diverged_step is not None and result.diverged_step < 50
    assert "non-finite" in result.failure_reason
    assert math.isnan(result.primary_metric)


def test_result_round_trips_through_json():
    result = train(toy("uncertainty", steps=20))
    again = TrialResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result


def test_digits_gradnorm_lifts_the_small_loss_tasks():
    """Equal weights let `ink` (loss ~1e5) drown the classifiers; GradNorm gives them weight."""
    config = TrialConfig(workload="digits", method="gradnorm", alpha=0.5, steps=300, log_every=100)
    weights = train(config).time_averaged_weights
    assert weights[0] > weights[2] and weights[1] > weights[2]


@pytest.mark.parametrize(
    "fields, name",
    [
        ({"method": "gradnorm", "alpha": -0.5}, "alpha"),
        ({"method": "equal", "alpha": 0.5}, "alpha"),
        ({"method": "static"}, "weights"),
        ({"method": "static", "weights": (1.0, 0.0)}, "weights"),
        ({"method": "gradnorm-static"}, "weights"),
        ({"method": "sgd"}, "method"),
        ({"steps": 0}, "steps"),
        ({"lr": -1.0}, "lr"),
        ({"seed": 1.5}, "seed"),
        ({"method": "gradnorm", "initial_loss": "last"}, "initial_loss"),
        ({"method": "gradnorm", "shared_params": ()}, "shared_params"),
        ({"method": "single-task"}, "task"),
    ],
)
def test_bad_trial_configs_name_the_field(fields, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        TrialConfig(**fields)


def test_key_is_stable_and_depends_on_every_training_field():
    assert toy().key() == toy().key()
    assert len(toy().key()) == 16
    assert toy().key() != toy(seed=1).key()
    assert toy().key() != toy(steps=61).key()
    assert TrialConfig.from_dict(toy("gradnorm").to_dict()) == toy("gradnorm")


def test_a_field_added_later_leaves_the_keys_of_earlier_configs_unchanged():
    before = toy("gradnorm").to_dict()
    for name in ("weight_update", "stuck_window", "select", "patience"):  # what a config looked like before them
        del before[name]
    assert toy("gradnorm").key() == canonical_hash(before)[:16]
    assert toy("gradnorm", weight_update="additive").key() == toy("gradnorm").key()
    assert toy("gradnorm", select="last").key() == toy("gradnorm").key()
    assert toy("gradnorm", select="best_validation").key() != toy("gradnorm").key()
    assert toy("gradnorm", weight_update="log").key() != toy("gradnorm").key()
    with pytest.raises(ValueError, match="^weight_update: does not apply"):
        toy("equal", weight_update="log")
    with pytest.raises(ValueError, match="^weight_update: unknown update"):
        toy("gradnorm", weight_update="exp")


def test_cli_train_prints_a_summary(capsys):
    code = main(["train", "--method", "gradnorm", "--steps", "40", "--log-every", "20", "--option", "train_size=500"])
    out = capsys.readouterr()
    assert code == 0
    assert "task-normalized test loss" in out.out and "task1" in out.out
    assert "step     20" in out.err


def test_cli_train_json(capsys):
    code = main(["train", "--method", "static", "--weights", "1,3", "--steps", "20", "--option", "train_size=500", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["result"]["time_averaged_weights"] == pytest.approx([0.5, 1.5])
    assert data["key"] == TrialConfig.from_dict(data["config"]).key()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--alpha", "-1"], "alpha: must be a number >= 0"),
        (["--method", "static", "--weights", "1,2,3"], "weights: expected 2 values"),
        (["--option", "tasks=0"], "workload_options.tasks"),
        (["--workload", "nope"], "workload: unknown workload 'nope'"),
        (["--option", "oops"], "--option: expected KEY=VALUE"),
        (["--steps", "0"], "steps: must be an integer >= 1"),
        (["--batch-size", "5000", "--option", "train_size=500"], "batch_size: 5000 exceeds"),
        (["--weights", "a,b"], "--weights"),
    ],
)
def test_cli_train_bad_input_exits_2_with_one_line(capsys, argv, message):
    code = main(["train", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1
