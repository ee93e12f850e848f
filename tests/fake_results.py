"""TrialResults with hand-picked numbers, for database and report tests (no training)."""

from __future__ import annotations

from records import Status, TaskMetric, TracePoint, TrialResult


def fake_result(
    final_test_losses=(0.5, 20.0),
    initial_losses=(1.0, 100.0),
    time_averaged_weights=(1.5, 0.5),
    task_names=("a", "b"),
    steps=(0, 10, 20),
    status=Status.OK,
    moving_weights=False,
) -> TrialResult:
    """Trace: train loss step + i + 1, test loss step + i + 2, G_i = 0.1 (i + 1); weights
    constant at `time_averaged_weights`, or (moving_weights) drifting by +-step/100."""
    count = len(task_names)
    trace = tuple(
        TracePoint(
            step=step,
            train_losses=tuple(float(step + i + 1) for i in range(count)),
            test_losses=tuple(float(step + i + 2) for i in range(count)),
            weights=tuple(
                w + (step / 100 * (-1) ** i if moving_weights else 0.0) for i, w in enumerate(time_averaged_weights)
            ),
            grad_norms=tuple(0.1 * (i + 1) for i in range(count)) if step else None,
        )
        for step in steps
    )
    ok = status == Status.OK
    return TrialResult(
        status=status,
        task_names=tuple(task_names),
        primary_metric=sum(f / i for f, i in zip(final_test_losses, initial_losses)) if ok else float("nan"),
        initial_losses=tuple(initial_losses),
        final_test_losses=tuple(final_test_losses) if ok else (),
        test_metrics=tuple(TaskMetric(name, "mse", loss, False) for name, loss in zip(task_names, final_test_losses))
        if ok
        else (),
        final_weights=tuple(time_averaged_weights),
        time_averaged_weights=tuple(time_averaged_weights),
        steps_completed=steps[-1],
        wall_time_s=1.25,
        trace=trace,
        diverged_step=None if ok else steps[-1],
        failure_reason=None if ok else "task losses became non-finite: a=nan",
    )


def diverged_result() -> TrialResult:
    return fake_result(status=Status.DIVERGED)
