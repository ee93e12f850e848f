"""A run continued from its saved state (workers.run_state, train_pack's `resume`) records what an
uninterrupted run of the longer budget records: bit for bit in the same pack, within the packing
tolerance in another; its state survives a trip through bytes; a state that cannot be resumed is refused."""

import numpy as np
import pytest
import torch

from tests.test_pack_invariance import TOLERANCE, numbers
from workers.config import TrialConfig
from workers.packed import Checkpoints, train_pack
from workers.run_state import RunState

DIGITS = {"standardize_targets": True}


def digits(steps: int, **fields) -> TrialConfig:
    return TrialConfig(workload="digits", workload_options=DIGITS, steps=steps, log_every=10, **fields)


def saved(configs: list[TrialConfig]) -> tuple[list, list[RunState]]:
    """Train a pack, keeping each run's state (through bytes, as the database would hold it)."""
    states: dict[int, RunState] = {}
    results = train_pack(configs, on_state=lambda run, state: states.__setitem__(run, RunState.from_bytes(state.to_bytes())))
    return results, [states[run] for run in range(len(configs))]


def same_record(continued, uninterrupted) -> None:
    """Every recorded value, the selected step and the steps trained equal, bit for bit."""
    assert (continued.status, continued.selected_step, continued.steps_completed) == (
        uninterrupted.status, uninterrupted.selected_step, uninterrupted.steps_completed)
    assert numbers(continued).tobytes() == numbers(uninterrupted).tobytes()
    assert continued.trace == uninterrupted.trace


def test_static_and_loss_driven_runs_continue_bit_for_bit_with_selection_and_patience():
    """A static run and a DWA run beside it, read at their best validation step, patience 2: 60 steps
    saved and 60 more resumed are the 120-step runs."""
    fields = [dict(method="static", weights=(0.4, 2.0, 1.1, 0.5)), dict(method="dwa")]
    select = dict(select="best_validation", patience=2)
    short, states = saved([digits(60, **f, **select) for f in fields])
    assert [s.step for s in states] == [60, 60] and states[0].trace == short[0].trace
    uninterrupted = train_pack([digits(120, **f, **select) for f in fields])
    continued = train_pack([digits(120, **f, **select) for f in fields], resume=states)
    for run in range(2):
        same_record(continued[run], uninterrupted[run])


def test_gradnorm_rows_continue_bit_for_bit():
    """GradNorm's weights, their Adam moments and L_i(0) per row come back with the network's."""
    alphas = (0.5, 1.5)
    _, states = saved([digits(40, method="gradnorm", alpha=a) for a in alphas])
    uninterrupted = train_pack([digits(80, method="gradnorm", alpha=a) for a in alphas])
    continued = train_pack([digits(80, method="gradnorm", alpha=a) for a in alphas], resume=states)
    for run in range(2):
        same_record(continued[run], uninterrupted[run])
        assert continued[run].time_averaged_weights == uninterrupted[run].time_averaged_weights


def test_a_run_continues_alone_as_it_would_have_in_its_pack():
    """Promoted alone (a pack of one, beside its shadow), it records what its 120-step pack records."""
    partners = [digits(60, method="static", weights=w) for w in ((1, 1, 1, 1), (3.0, 0.4, 0.3, 0.3))]
    _, states = saved(partners)
    uninterrupted = train_pack([digits(120, method="static", weights=(3.0, 0.4, 0.3, 0.3)), digits(120, method="equal")])
    (alone,) = train_pack([digits(120, method="static", weights=(3.0, 0.4, 0.3, 0.3))], resume=[states[1]])
    expected, got = numbers(uninterrupted[0]), numbers(alone)
    assert got.shape == expected.shape and np.all(np.abs(got - expected) <= TOLERANCE * np.abs(expected))


def test_a_state_that_cannot_be_resumed_is_refused():
    import io

    _, (state,) = saved([digits(30, method="equal")])
    with pytest.raises(ValueError, match="step 30 is not a logged step"):
        train_pack([TrialConfig(workload="digits", workload_options=DIGITS, steps=95, log_every=20, method="equal")],
                   resume=[state])
    with pytest.raises(ValueError, match="before the budget 30"):
        train_pack([digits(30, method="equal")], resume=[state])
    with pytest.raises(ValueError, match="another select setting"):
        train_pack([digits(60, method="equal", select="best_validation")], resume=[state])
    with pytest.raises(ValueError, match="cannot be read"):
        RunState.from_bytes(b"not a state")
    foreign = io.BytesIO()
    torch.save({"format": 0, "state": {}}, foreign)
    with pytest.raises(ValueError, match="not of format"):
        RunState.from_bytes(foreign.getvalue())


def test_a_run_whose_patience_runs_out_at_the_saved_step_stops_there_when_continued():
    """Its shorter budget ended at that step without asking (a last step never stops early); the longer run asks."""
    config = dict(method="static", weights=(2.5, 0.5, 0.5, 0.5), select="best_validation", patience=1)
    (uninterrupted,) = train_pack([digits(300, **config)])
    stopped = uninterrupted.steps_completed
    assert stopped < 300  # patience 1 ends this run early: the case under test
    _, states = saved([digits(stopped, **config)])
    (continued,) = train_pack([digits(300, **config)], resume=states)
    same_record(continued, uninterrupted)
    # saved after it stopped: it stays stopped, read at the same best step
    _, later = saved([digits(stopped + 20, **config)])
    assert later[0].stopped_at == stopped
    (continued,) = train_pack([digits(300, **config)], resume=later)
    same_record(continued, uninterrupted)


def test_checkpoints_restore_a_stopped_pack_bit_for_bit_counting_the_time_and_steps_before():
    """A pack hands every run's state at logged steps before its budget (here at every one); restored
    from the step-50 checkpoint, each run records what the uninterrupted 120-step pack records, and
    its result counts its whole training: no resumed step, the wall time before the stop included."""
    fields = [dict(method="static", weights=(0.4, 2.0, 1.1, 0.5)), dict(method="dwa")]
    select = dict(select="best_validation", patience=3)
    configs = [digits(120, **f, **select) for f in fields]
    handed: list[tuple[int, RunState]] = []
    uninterrupted = train_pack(configs, checkpoints=Checkpoints(
        0.0, lambda run, state: handed.append((run, RunState.from_bytes(state.to_bytes())))))
    steps = sorted({state.step for _, state in handed})
    assert steps == list(range(10, steps[-1] + 1, 10)) and 50 <= steps[-1] < 120  # patience may end it early
    at_50 = [state for _, state in sorted((run, state) for run, state in handed if state.step == 50)]
    assert [len(state.trace) for state in at_50] == [6, 6]  # steps 0, 10, ..., 50
    restored = train_pack(configs, resume=at_50, restore=True)
    for run in range(2):
        same_record(restored[run], uninterrupted[run])
        assert restored[run].resumed_step is None
        assert restored[run].wall_time_s >= at_50[run].seconds > 0


def test_a_restored_promoted_run_keeps_the_step_its_promotion_began_at():
    """A halving promotion continued from step 40 and checkpointed later still says it began at 40."""
    _, states = saved([digits(40, method="equal")])
    handed: dict[int, RunState] = {}
    continued = train_pack([digits(100, method="equal")], resume=states,
                           checkpoints=Checkpoints(0.0, lambda run, state: handed.setdefault(state.step, state)))
    assert continued[0].resumed_step == 40 and handed[70].resumed_step == 40
    (restored,) = train_pack([digits(100, method="equal")], resume=[handed[70]], restore=True)
    same_record(restored, continued[0])
    assert restored.resumed_step == 40


def test_a_state_saved_before_resumed_step_existed_still_reads():
    import dataclasses
    import io

    _, (state,) = saved([digits(20, method="equal")])
    data = {f.name: getattr(state, f.name) for f in dataclasses.fields(state) if f.name != "resumed_step"}
    data["trace"] = [dataclasses.asdict(point) for point in state.trace]
    buffer = io.BytesIO()
    torch.save({"format": 1, "state": data}, buffer)
    old = RunState.from_bytes(buffer.getvalue())
    assert old.resumed_step is None and old.step == 20 and old.trace == state.trace
    assert all(torch.equal(old.params[name], state.params[name]) for name in state.params)


@pytest.mark.parametrize("method", ["inverse-initial-loss", "dwa"])
def test_a_loss_driven_run_stopped_before_its_checkpoint_resumes_stopped(method):
    """A run with its own balancer whose patience ran out before the state was saved: the state still
    says which balancer it had (the pack drops a stopped run from its updates, not from its kind), so
    a checkpoint taken after it stopped restores, and the run records what it would have uninterrupted."""
    config = dict(method=method, select="best_validation", patience=1)
    partner = dict(method="static", weights=(0.4, 2.0, 1.1, 0.5), select="best_validation", patience=1)
    uninterrupted = train_pack([digits(300, **config), digits(300, **partner)])
    stopped = uninterrupted[0].steps_completed
    assert stopped < 300  # the case under test: it stops early
    _, later = saved([digits(stopped + 20, **config), digits(stopped + 20, **partner)])
    assert later[0].stopped_at == stopped and later[0].balancer["own"] is not None
    continued = train_pack([digits(300, **config), digits(300, **partner)], resume=later)
    for run in range(2):
        same_record(continued[run], uninterrupted[run])
    # a checkpoint saved by the code before 14c367b, which left a stopped run's own balancer out, restores too
    later[0].balancer["own"] = None
    continued = train_pack([digits(300, **config), digits(300, **partner)], resume=later)
    same_record(continued[0], uninterrupted[0])
