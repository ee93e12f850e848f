"""Train one trial config and return its numbers.

Read top to bottom: build the workload and the balancer, then the loop, which
evaluates on the test (and validation) set every `log_every` steps, stops
early, as 'diverged', when a loss or a weight stops being finite, and, with
`select: best_validation`, keeps the state of its best validation step (and
stops when `patience` log points bring no better one).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch

from workers.balancers import Balancer, build_balancer
from workers.config import TrialConfig
from workers.model import PackFacts
from workers.packing import can_pack
from workers.probe import LinearLayerProbe
from workers.selection import BestValidation, scored_tasks, validation_scores
from records import Status, TracePoint, TrialResult
from workers.workloads import build_workload
from workers.workloads.base import Split, Workload

if TYPE_CHECKING:
    from workers.packed import Checkpoints

FAST_PROBE_PARAMS = {"shared_layer.weight", "shared_layer.bias"}


def check_trained_workload(config: TrialConfig, workload: Workload) -> None:
    """What a config asks of its built workload: a batch that fits, a validation split to select on."""
    if config.batch_size > len(workload.train):
        raise ValueError(f"batch_size: {config.batch_size} exceeds the {len(workload.train)} training samples")
    if config.select == "best_validation" and workload.validation is None:
        raise ValueError(f"select: best_validation needs a validation split, and workload {workload.name} has none")


def attach_probe(config: TrialConfig, workload: Workload) -> LinearLayerProbe | None:
    """The fast per-task gradient path, where the shared parameters allow it."""
    names = set(config.shared_params or ())
    if "shared_layer.weight" not in names or not names <= FAST_PROBE_PARAMS:
        return None
    if not isinstance(workload.model.shared_layer, torch.nn.Linear):
        return None
    return LinearLayerProbe(workload.model, include_bias="shared_layer.bias" in names)


def batches(num_samples: int, batch_size: int, generator: torch.Generator):
    """Endless minibatch indices: a fresh permutation every epoch, seeded."""
    while True:
        order = torch.randperm(num_samples, generator=generator)
        for start in range(0, num_samples - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def evaluate(workload: Workload, split: Split | None = None) -> tuple[torch.Tensor, list]:
    """Task losses and metrics on `split` (the test set unless told otherwise)."""
    split = split or workload.test
    workload.model.eval()
    with torch.no_grad():
        outputs = workload.model(split.inputs)
        losses = workload.task_losses(outputs, split.targets)
        metrics = workload.test_metrics(outputs, split)
    workload.model.train()
    return losses, metrics


@dataclass(frozen=True)
class FinalEvaluation:
    """A finished run's numbers on the test split and, where the workload has one, the validation split."""

    test_losses: torch.Tensor
    test_metrics: list
    validation_losses: torch.Tensor | None = None
    validation_metrics: tuple = ()


def final_evaluation(
    workload: Workload, on: Callable[[Split], tuple[torch.Tensor, list]] | None = None
) -> FinalEvaluation:
    """The test numbers, and the validation ones where the workload has that split.

    `on(split)` gives (losses, metrics) on a split: the workload's own model by
    default; a pack passes one of its stacked runs.
    """
    on = on or (lambda split: evaluate(workload, split))
    test_losses, test_metrics = on(workload.test)
    if workload.validation is None:
        return FinalEvaluation(test_losses, test_metrics)
    validation_losses, validation_metrics = on(workload.validation)
    return FinalEvaluation(test_losses, test_metrics, validation_losses, tuple(validation_metrics))


class TraceRecorder:
    """Averages training losses between log points and keeps one TracePoint per log."""

    def __init__(self, num_tasks: int, on_log: Callable[[TracePoint], None] | None) -> None:
        self.points: list[TracePoint] = []
        self.on_log = on_log
        self._train_loss_sum = torch.zeros(num_tasks, dtype=torch.float64)
        self._steps_since_log = 0

    def add_step(self, task_losses: torch.Tensor) -> None:
        self._train_loss_sum += task_losses.detach().to("cpu", torch.float64)
        self._steps_since_log += 1

    def log(self, step: int, first_losses: torch.Tensor, test_losses: torch.Tensor, balancer: Balancer,
            validation_losses: torch.Tensor | None = None) -> None:
        """A point at `step`; at step 0 the train loss is the first batch's."""
        if self._steps_since_log:
            train_losses = self._train_loss_sum / self._steps_since_log
        else:
            train_losses = first_losses
        grad_norms = balancer.last_grad_norms
        point = TracePoint(
            step=step,
            train_losses=floats(train_losses),
            test_losses=floats(test_losses),
            weights=floats(balancer.weights),
            grad_norms=None if grad_norms is None else floats(grad_norms),
            validation_losses=None if validation_losses is None else floats(validation_losses),
        )
        self.points.append(point)
        if self.on_log is not None:
            self.on_log(point)
        self._train_loss_sum.zero_()
        self._steps_since_log = 0


def train(
    config: TrialConfig,
    on_log: Callable[[TracePoint], None] | None = None,
    use_probe: bool = True,
    device: str = "cpu",
    checkpoints: "Checkpoints | None" = None,
) -> TrialResult:
    """Train `config` to its step budget (or until it diverges) on `device`.

    A run that could share a pack trains as a pack of one (workers/packed.py), so that its values
    are the ones it would get in any pack; the rest (workers.packed.can_pack: GradNorm at other
    shared parameters or with its own options, models with buffers, user workloads) train here
    alone, and never pack. `use_probe=False` trains alone on the general per-task gradient path
    (for tests). `checkpoints`: where a packable run's state goes every few minutes (a run that
    trains alone keeps none).
    """
    from workers.packed import train_pack  # the packed engine builds on this module

    started = time.perf_counter()
    workload = build_workload(config.workload, config.workload_options, seed=config.seed).to(device)
    check_trained_workload(config, workload)
    if use_probe and can_pack(config, PackFacts.of(workload.model)) is None:
        log = None if on_log is None else (lambda run, point: on_log(point))
        return train_pack([config], on_log=log, device=device, workload=workload, started=started,
                          checkpoints=checkpoints)[0]
    return train_alone(config, workload, on_log, use_probe, started)


def train_alone(
    config: TrialConfig,
    workload: Workload,
    on_log: Callable[[TracePoint], None] | None,
    use_probe: bool,
    started: float,
) -> TrialResult:
    """The loop for one run of any method, on its workload's own model."""
    device = next(workload.model.parameters()).device
    balancer = build_balancer(config, workload)
    probe = attach_probe(config, workload) if use_probe and balancer.needs_task_grad_norms else None
    # The general GradNorm path reads per-task gradients off the graph after backward.
    keep_graph = balancer.needs_task_grad_norms and probe is None
    optimizer = torch.optim.Adam(workload.model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    batch_indices = (i.to(device) for i in batches(len(workload.train), config.batch_size, generator))

    trace = TraceRecorder(len(workload.tasks), on_log)
    selection = BestValidation(1, config.patience) if config.select == "best_validation" else None
    scored = scored_tasks([config], len(workload.tasks))
    best_state: dict[str, torch.Tensor] | None = None
    initial_losses: torch.Tensor | None = None
    failure: tuple[int, str] | None = None
    stopped_at: int | None = None  # patience ran out at this step

    def log(step: int) -> torch.Tensor:
        """Evaluate, trace, and keep the state if it is the best validation step so far; the test losses."""
        nonlocal best_state
        test_losses = evaluate(workload)[0]
        validation_losses = None if workload.validation is None else evaluate(workload, workload.validation)[0]
        trace.log(step, initial_losses, test_losses, balancer, validation_losses)
        if selection is not None:
            scores = validation_scores(validation_losses[None], initial_losses, scored)
            if selection.update(step, scores, torch.ones(1, dtype=torch.bool))[0]:
                best_state = copy.deepcopy(workload.model.state_dict())
        return test_losses

    for step in range(config.steps):
        batch = workload.train.take(next(batch_indices))
        task_losses = workload.task_losses(workload.model(batch.inputs), batch.targets)
        if not bool(torch.isfinite(task_losses).all()):
            failure = (step, f"task losses became non-finite: {describe(workload, task_losses)}")
            break
        if initial_losses is None:
            initial_losses = task_losses.detach().clone()
            log(0)
        loss = balancer.combine(task_losses)
        optimizer.zero_grad(set_to_none=True)
        loss.backward(retain_graph=keep_graph)
        task_grad_norms = probe.task_grad_norms(balancer.weights) if probe is not None else None
        balancer.step(task_losses, task_grad_norms)
        if not bool(torch.isfinite(balancer.weights).all()):
            failure = (step, f"loss weights became non-finite: {describe(workload, balancer.weights)}")
            break
        optimizer.step()
        trace.add_step(task_losses)
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            test_losses = log(done)
            if not bool(torch.isfinite(test_losses).all()):
                failure = (done, f"test losses became non-finite: {describe(workload, test_losses)}")
                break
            if selection is not None and done < config.steps and selection.exhausted()[0]:
                stopped_at = done
                break

    final = None
    if failure is None:
        if best_state is not None:
            workload.model.load_state_dict(best_state)
        final = final_evaluation(workload)
    return trial_result(workload.task_names, initial_losses, final,
                        balancer.weights, balancer.time_averaged_weights, trace.points,
                        steps_completed=failure[0] if failure else stopped_at or config.steps,
                        wall_time_s=time.perf_counter() - started, failure=failure,
                        stuck_at_step=tuple(getattr(balancer, "stuck_at_step", ())) if config.stuck_window else (),
                        selected_step=None if selection is None else selection.best_step[0])


def trial_result(
    task_names: tuple[str, ...],
    initial_losses: torch.Tensor | None,
    final: FinalEvaluation | None,
    final_weights: torch.Tensor,
    time_averaged_weights: torch.Tensor,
    trace: list[TracePoint],
    steps_completed: int,
    wall_time_s: float,
    failure: tuple[int, str] | None,
    stuck_at_step: tuple[int | None, ...] = (),
    selected_step: int | None = None,
    resumed_step: int | None = None,
) -> TrialResult:
    """The one place a TrialResult is built (a run alone or in a pack): OK with its metrics,
    or DIVERGED at a step with a reason."""
    ok = failure is None
    validation = final is not None and final.validation_losses is not None
    return TrialResult(
        status=Status.OK if ok else Status.DIVERGED,
        task_names=task_names,
        # Task-normalized test loss: sum_i L_i^test / L_i(0), L_i(0) the first batch's loss.
        primary_metric=task_normalized(final.test_losses, initial_losses) if ok else math.nan,
        initial_losses=floats(initial_losses) if initial_losses is not None else (),
        final_test_losses=floats(final.test_losses) if ok else (),
        test_metrics=tuple(final.test_metrics) if ok else (),
        validation_metric=task_normalized(final.validation_losses, initial_losses) if ok and validation else math.nan,
        final_validation_losses=floats(final.validation_losses) if ok and validation else (),
        validation_metrics=final.validation_metrics if ok else (),
        final_weights=floats(final_weights),
        time_averaged_weights=floats(time_averaged_weights),
        steps_completed=steps_completed,
        wall_time_s=wall_time_s,
        trace=tuple(trace),
        diverged_step=None if ok else failure[0],
        failure_reason=None if ok else failure[1],
        stuck_at_step=stuck_at_step,
        selected_step=selected_step if ok else None,
        resumed_step=None if resumed_step is None else min(resumed_step, steps_completed),
    )


def task_normalized(losses: torch.Tensor, initial_losses: torch.Tensor) -> float:
    """sum_i L_i / L_i(0): the primary metric, on whichever split `losses` come from."""
    return float((losses.cpu() / initial_losses.cpu()).sum())


def floats(values: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(v) for v in values.detach().flatten())


def describe(workload: Workload, values: torch.Tensor) -> str:
    return ", ".join(f"{name}={float(v):.4g}" for name, v in zip(workload.task_names, values.detach()))
