"""Packed training: K runs of one workload, seed and budget in one process, vectorized over runs.

A Figure-4 study is many copies of one small network that differ only in how
they weight the task losses. The runs of a pack share the workload (data, and
the initialization: the same seed), the minibatch order and the budget; each
has its own weights (equal, static, GradNorm-Static, single-task), its own
balancer whose weights follow from its task losses alone (DWA, RLW, FAMO: one
balancer object per run, stepped on its row of losses), or its own GradNorm
α. The K networks' parameters are stacked ([K, ...]) and each layer runs once
for all K (torch.func.functional_call under vmap). Adam is
elementwise, so one Adam over the stacked parameters is K independent Adams,
and each run trains as it would alone (tests/test_packed.py checks it to 1e-5).

GradNorm's ||grad_W L_i|| per run comes, as in workers/probe.py, from each
task's gradient at W's output (one partial backward through the heads per
task) and one batched product with W's input; its closed-form weight gradient
and renormalization work on [K, T] at once.

A run whose losses or weights stop being finite is recorded DIVERGED at that
step; its slot is zeroed and masked out while the rest of the pack goes on. A
run whose patience ran out (`select: best_validation`) leaves the same way,
recorded OK and read at its best validation step, whose parameters the pack
keeps aside per run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch.func import functional_call, stack_module_state, vmap

from records import TracePoint, TrialResult
from records.methods import REGISTRY
from workers.balancers import Balancer, build_balancer
from workers.balancers.gradnorm import gradnorm_weight_gradient, loss_ratios, renormalize
from workers.config import TrialConfig
from workers.convolution import conv_per_run
from workers.model import PackFacts
from workers.packing import can_pack, pack_group
from workers.probe import squared_weight_grad_norms
from workers.run_state import RunState, resume_problem
from workers.selection import BestValidation, scored_tasks, validation_scores
from workers.training import (
    FinalEvaluation,
    batches,
    check_trained_workload,
    describe,
    final_evaluation,
    floats,
    trial_result,
)
from workers.workloads import build_workload
from workers.workloads.base import Split, Workload

# Parameter-free modules that act on each element alone: applied to [K, N, ...] as they are.
ELEMENTWISE = (torch.nn.ReLU, torch.nn.Tanh, torch.nn.Sigmoid, torch.nn.GELU, torch.nn.LeakyReLU, torch.nn.Identity)
# How many runs' test-set outputs are computed at once (bounds memory at evaluation).
EVAL_CHUNK = 16


@dataclass
class PackedNet:
    """K stacked copies of a MultiTaskNet, run layer by layer so W's input and output are at hand."""

    model: torch.nn.Module
    params: dict[str, torch.Tensor]

    @classmethod
    def stack(cls, model: torch.nn.Module, count: int) -> "PackedNet":
        params, _ = stack_module_state([model] * count)
        return cls(model, {name: p.detach().clone().requires_grad_(True) for name, p in params.items()})

    def _part(self, prefix: str) -> dict[str, torch.Tensor]:
        return {name[len(prefix):]: p for name, p in self.params.items() if name.startswith(prefix)}

    def forward(self, x: torch.Tensor, branches: list[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(W's input [K, N, in], W's output [K, N, out], each task's output [K, N, ...]).

        With `branches` (a list, filled here), each head runs on its own view of W's output, kept in
        `branches` with its gradient retained: after the backward pass of sum_i w_i L_i, view i's
        .grad is w_i dL_i/dy, read off that one pass (workers/probe.py does the same for one run).

        One run alone is computed as two (a copy beside it, dropped): torch's kernels for a batch of
        one run differ from those for two or more (a matrix-vector product for a one-output head, a
        plain instead of a grouped convolution), and a run's numbers must not depend on its pack.
        Training never stacks fewer than two runs (train_pack adds a shadow); evaluation may.
        """
        count = next(iter(self.params.values())).shape[0]
        if count == 1:
            if torch.is_grad_enabled():
                raise ValueError("PackedNet: a single run trains beside a shadow copy (train_pack), not alone")
            padded = PackedNet(self.model, {name: p.expand(2, *p.shape[1:]) for name, p in self.params.items()})
            body, shared, outputs = padded.forward(x)
            return body[:1], shared[:1], [o[:1] for o in outputs]
        model = self.model
        body = self.run(model.body, "body.", x, batched=False)
        shared = self.run(model.shared_layer, "shared_layer.", body, batched=True)
        if branches is None:
            trunk = self.run(model.after_shared, "after_shared.", shared, batched=True)
            outputs = [self.run(head, f"heads.{i}.", trunk, batched=True) for i, head in enumerate(model.heads)]
            return body, shared, outputs
        outputs = []
        for i, head in enumerate(model.heads):  # after_shared is stateless (MultiTaskNet): once per head
            view = shared.view_as(shared)
            view.retain_grad()
            branches.append(view)
            outputs.append(self.run(head, f"heads.{i}.", self.run(model.after_shared, "after_shared.", view, batched=True),
                                    batched=True))
        return body, shared, outputs

    def run(self, module: torch.nn.Module, prefix: str, inputs: torch.Tensor, batched: bool) -> torch.Tensor:
        """`module` of every run on `inputs` ([K, N, ...] if `batched`, else one [N, ...] for all): [K, N, ...].

        Sequences, linear layers and elementwise activations run as batched tensor ops over the
        stacked parameters (one batched matrix product per linear layer); convolutions run once per
        run (workers/convolution.py); any other module goes through vmap. All give each run the
        numbers it gets in any pack of two or more.
        """
        out = self._run(module, prefix, inputs, batched)
        return torch.stack(out) if isinstance(out, list) else out

    def _run(self, module: torch.nn.Module, prefix: str, inputs: torch.Tensor | list[torch.Tensor],
             batched: bool) -> torch.Tensor | list[torch.Tensor]:
        """As run; a convolution's output stays a list of each run's tensor, and the parameter-free layers
        after it act on each run's alone, until a layer that needs the stack (saves K-sized copies)."""
        count = next(iter(self.params.values())).shape[0]
        params = self._part(prefix)
        if isinstance(module, torch.nn.Conv2d) and module.padding_mode == "zeros":
            per_run = inputs if isinstance(inputs, list) else inputs.unbind(0) if batched else inputs
            return conv_per_run(module, params, per_run, count)
        if isinstance(inputs, list) and not isinstance(module, torch.nn.Sequential):
            if not params:  # parameter-free (activation, pooling, flattening): on each run's own tensor
                return [module(run_inputs) for run_inputs in inputs]
            inputs = torch.stack(inputs)
        if isinstance(module, torch.nn.Sequential):
            for index, child in enumerate(module):
                inputs = self._run(child, f"{prefix}{index}.", inputs, batched)
                batched = True
            return inputs if batched else inputs.expand(count, *inputs.shape)
        if isinstance(module, torch.nn.Linear):
            flat = inputs.reshape(count, -1, inputs.shape[-1]) if batched else inputs.reshape(1, -1, inputs.shape[-1])
            flat = flat.expand(count, *flat.shape[1:])
            weight = params["weight"].transpose(1, 2)
            out = torch.baddbmm(params["bias"][:, None, :], flat, weight) if "bias" in params else torch.bmm(flat, weight)
            leading = inputs.shape[1:-1] if batched else inputs.shape[:-1]
            return out.reshape(count, *leading, out.shape[-1])
        if isinstance(module, ELEMENTWISE):
            out = module(inputs)
            return out if batched else out.expand(count, *out.shape)
        if not params:  # another parameter-free part (pooling, flattening) acts on each sample alone:
            if not batched:  # the same for every run
                out = module(inputs)
                return out.expand(count, *out.shape)
            out = module(inputs.flatten(0, 1))  # the K runs' samples as one batch
            return out.unflatten(0, inputs.shape[:2])
        call = lambda p, i: functional_call(module, p, (i,))  # noqa: E731
        return vmap(call, in_dims=(0, 0 if batched else None))(params, inputs)

    def zero_run(self, run: int) -> None:
        with torch.no_grad():
            for p in self.params.values():
                p[run] = 0


def per_run_losses(workload: Workload, outputs: list[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
    """[K, T]: every run's task losses on the same targets."""
    return vmap(lambda outs: workload.task_losses(outs, targets))(outputs)


def train_pack(
    configs: Sequence[TrialConfig],
    on_log: Callable[[int, TracePoint], None] | None = None,
    device: str = "cpu",
    workload: Workload | None = None,
    started: float | None = None,
    resume: Sequence[RunState] | None = None,
    on_state: Callable[[int, RunState], None] | None = None,
    restore: bool = False,
    checkpoints: "Checkpoints | None" = None,
) -> list[TrialResult]:
    """Train `configs` (one pack_group) together; one TrialResult per config, in order.

    `workload`: the first config's, already built on `device` (a run alone passes its own).
    `resume`: one RunState per config, all at one logged step before the budget: each run goes on
    from there as if it had never stopped. A promoted run continues a shorter one (its result counts
    the new part only: wall time, and steps from `resumed_step`); with `restore` each state is the
    run's own checkpoint, and its result counts the time and steps before it too.
    `on_state(run, state)`: each run that did not diverge, at the end of its budget (or its patience).
    `checkpoints`: where the runs' states go at logged steps before the budget, every few minutes.
    """
    started = time.perf_counter() if started is None else started
    first = configs[0]
    if workload is None:
        workload = build_workload(first.workload, first.workload_options, seed=first.seed).to(device)
        check_trained_workload(first, workload)
    facts = PackFacts.of(workload.model)
    groups = {pack_group(c, facts, vouched=True) for c in configs}  # the caller chose to pack these
    if len(groups) != 1 or None in groups:
        reason = next((why for why in (can_pack(c, facts, vouched=True) for c in configs) if why),
                      "they differ in workload, seed, budget or an option a pack shares")
        raise ValueError(f"packing: these configs do not form one pack: {reason}")
    real = len(configs)  # a run alone trains beside a shadow copy of itself (PackedNet.forward says why)
    configs = list(configs) * 2 if real == 1 else list(configs)
    count = len(configs)
    num_tasks = len(workload.tasks)
    net = PackedNet.stack(workload.model, count)
    optimizer = torch.optim.Adam(list(net.params.values()), lr=first.lr, foreach=True)  # one fused update for all K
    balancer = PackedBalancer.for_configs(configs, workload)
    generator = torch.Generator().manual_seed(first.seed)
    batch_indices = (i.to(device) for i in batches(len(workload.train), first.batch_size, generator))

    alive = torch.ones(count, dtype=torch.bool, device=device)  # still training
    buried = [False] * count
    failures: dict[int, tuple[int, str]] = {}
    stopped_at: dict[int, int] = {}  # run -> the step its patience ran out
    selection = BestValidation(count, first.patience) if first.select == "best_validation" else None
    scored = scored_tasks(configs, num_tasks)  # a single-task run is chosen on its own task
    best_params = {name: p.detach().clone() for name, p in net.params.items()} if selection is not None else None
    traces: list[list[TracePoint]] = [[] for _ in range(count)]
    train_sums = torch.zeros(count, num_tasks, dtype=torch.float64)
    steps_since_log = 0
    initial_losses: torch.Tensor | None = None
    start = 0
    seconds_before = [0.0] * count  # worker time a run's states carry from before this call
    resumed_step: list[int | None] = [None] * count  # what its result says its own training began at
    if resume is not None:
        states = list(resume) * 2 if real == 1 else list(resume)
        start, initial_losses = restore_pack(states, first, net, optimizer, balancer, selection, best_params, traces)
        for _ in range(start):  # the minibatch order goes on where it stopped
            next(batch_indices)
        initial_losses = initial_losses.to(device)
        seconds_before = [state.seconds for state in states]
        resumed_step = [state.resumed_step if restore else start for state in states]

    def hand_states(callback: Callable[[int, RunState], None], step: int) -> None:
        """Each run's state at `step` to `callback`, but a diverged run's (it has nothing to go on from)."""
        share = (time.perf_counter() - started) / real
        for run in range(real):
            if run not in failures:
                callback(run, capture_run(run, step, net, optimizer, balancer, selection, best_params, initial_losses,
                                          traces[run], seconds_before[run] + share, stopped_at.get(run),
                                          resumed_step[run]))

    def fail(runs: torch.Tensor, step: int, what: str, values: torch.Tensor) -> None:
        for run in runs.nonzero().flatten().tolist():
            failures[run] = (step, f"{what} became non-finite: {describe(workload, values[run])}")
            alive[run] = False
            balancer.drop(run)

    def stop(runs: torch.Tensor, step: int) -> None:
        """Runs whose patience ran out: out of training, read later at their best step."""
        for run in runs.nonzero().flatten().tolist():
            stopped_at[run] = step
            alive[run] = False
            balancer.drop(run)
        bury_dead()

    def bury_dead() -> None:
        """Zero the slots of runs that died or stopped (after the step: the graph still needs their values)."""
        for run in list(failures) + list(stopped_at):
            if not buried[run]:
                net.zero_run(run)
                for state in optimizer.state.values():
                    for value in state.values():
                        if torch.is_tensor(value) and value.dim() > 0:
                            value[run] = 0
                buried[run] = True

    def log(step: int, train_losses: torch.Tensor) -> torch.Tensor:
        test_losses = evaluate_pack(net, workload, workload.test)
        validation_losses = None if workload.validation is None else evaluate_pack(net, workload, workload.validation)
        for run in alive.nonzero().flatten().tolist():
            point = TracePoint(step=step, train_losses=floats(train_losses[run]), test_losses=floats(test_losses[run]),
                               weights=floats(balancer.weights[run]),
                               grad_norms=None if balancer.last_grad_norms is None else floats(balancer.last_grad_norms[run]),
                               validation_losses=None if validation_losses is None else floats(validation_losses[run]))
            traces[run].append(point)
            if on_log is not None and run < real:
                on_log(run, point)
        if selection is not None:
            scores = validation_scores(validation_losses, initial_losses, scored)
            improved = selection.update(step, scores, alive).to(device)
            with torch.no_grad():
                for name, p in net.params.items():
                    best_params[name][improved] = p[improved]
        return test_losses

    if resume is not None:
        for run, state in enumerate(states):
            if state.stopped_at is not None:  # its patience ran out before the step it was saved at
                stop(torch.arange(count, device=device) == run, state.stopped_at)
        if selection is not None:  # the check its shorter budget's last step skipped
            stop(alive & selection.exhausted().to(device), start)

    for step in range(start, first.steps):
        batch = workload.train.take(next(batch_indices))
        branches: list[torch.Tensor] | None = [] if balancer.needs_task_grad_norms else None
        layer_input, _, outputs = net.forward(batch.inputs, branches)
        losses = per_run_losses(workload, outputs, batch.targets)
        broken = alive & ~torch.isfinite(losses).all(dim=1)
        if broken.any():
            fail(broken, step, "task losses", losses.detach())
        if not alive.any():
            break
        losses = torch.where(alive[:, None], losses, torch.zeros_like(losses))  # a dead run adds nothing
        if initial_losses is None:
            initial_losses = losses.detach().clone()
            log(0, initial_losses.to("cpu", torch.float64))
        weights = torch.where(alive[:, None], balancer.weights.to(device), torch.zeros_like(losses))
        for p in net.params.values():
            p.grad = None
        (weights * losses).sum().backward()
        task_grad_norms = None
        if branches is not None:
            divisor = torch.where(alive[:, None], weights, torch.ones_like(weights))  # a dead run's w is 0
            task_grad_norms = linear_layer_norms(branches, layer_input, divisor)
        balancer.step(losses.detach(), task_grad_norms, alive)
        broken = alive & ~torch.isfinite(balancer.weights.to(device)).all(dim=1)
        if broken.any():
            fail(broken, step, "loss weights", balancer.weights)
        if not alive.all():  # a dead run's slot stays zero (its gradient may be NaN)
            for p in net.params.values():
                p.grad[~alive] = 0
        optimizer.step()
        bury_dead()
        train_sums += losses.detach().to("cpu", torch.float64)
        steps_since_log += 1
        done = step + 1
        if done % first.log_every == 0 or done == first.steps:
            test_losses = log(done, train_sums / steps_since_log)
            train_sums.zero_()
            steps_since_log = 0
            broken = alive & ~torch.isfinite(test_losses.to(device)).all(dim=1)
            if broken.any():
                fail(broken, done, "test losses", test_losses)
                bury_dead()
            if selection is not None and done < first.steps:
                stop(alive & selection.exhausted().to(device), done)
            if checkpoints is not None and done < first.steps and alive.any() and checkpoints.due():
                hand_states(checkpoints.on_state, done)

    finished = torch.tensor([run < real and run not in failures for run in range(count)], device=device)
    finals = final_evaluations(PackedNet(net.model, best_params) if selection is not None else net, workload, finished)
    share = (time.perf_counter() - started) / real  # each run's share of the pack's wall time (a shadow's is its run's)
    if on_state is not None:
        hand_states(on_state, first.steps)
    return [
        trial_result(workload.task_names,
                     None if initial_losses is None else initial_losses[run].cpu(),
                     finals.get(run),
                     balancer.weights[run], balancer.time_averaged_weights[run], traces[run],
                     steps_completed=failures[run][0] if run in failures else stopped_at.get(run, first.steps),
                     wall_time_s=share + (seconds_before[run] if restore else 0.0), failure=failures.get(run),
                     selected_step=None if selection is None else selection.best_step[run],
                     resumed_step=resumed_step[run])
        for run in range(real)
    ]


def restore_pack(
    states: list[RunState], first: TrialConfig, net: PackedNet, optimizer: torch.optim.Adam, balancer: "PackedBalancer",
    selection: BestValidation | None, best_params: dict[str, torch.Tensor] | None, traces: list[list[TracePoint]],
) -> tuple[int, torch.Tensor]:
    """Load one RunState per run into a fresh pack; (the step they stopped at, the pack's L_i(0))."""
    steps = {state.step for state in states}
    if len(steps) != 1:
        raise ValueError(f"resume: a pack resumes from one step, these states are at {sorted(steps)}")
    (start,) = steps
    problem = resume_problem(start, first.steps, first.log_every)
    if problem:
        raise ValueError(f"resume: {problem}")
    if any(set(state.params) != set(net.params) for state in states):
        raise ValueError("resume: a state holds the parameters of another model")
    if (selection is None) != (states[0].best_score is None):
        raise ValueError("resume: the states were saved with another select setting")
    with torch.no_grad():
        for name, stacked in net.params.items():
            stacked.copy_(torch.stack([state.params[name] for state in states]))
    # Adam's state as its first step would have made it, with the saved moments (one step count for all,
    # kept where Adam keeps it: on the CPU unless fused or capturable)
    for name, stacked in net.params.items():
        optimizer.state[stacked] = {
            "step": states[0].adam_step.clone(),
            "exp_avg": torch.stack([state.moments[name]["exp_avg"] for state in states]).to(stacked.device),
            "exp_avg_sq": torch.stack([state.moments[name]["exp_avg_sq"] for state in states]).to(stacked.device),
        }
    balancer.load_rows([state.balancer for state in states], [state.stopped_at is not None for state in states])
    for run, state in enumerate(states):
        traces[run].extend(state.trace)
    if selection is not None:
        selection.best_score = torch.tensor([state.best_score for state in states], dtype=torch.float64)
        selection.best_step = [state.best_step for state in states]
        selection.since_best = torch.tensor([state.since_best for state in states], dtype=torch.int64)
        with torch.no_grad():
            for name, best in best_params.items():
                best.copy_(torch.stack([state.best_params[name] for state in states]))
    return start, torch.stack([state.initial_losses for state in states])


def capture_run(
    run: int, step: int, net: PackedNet, optimizer: torch.optim.Adam, balancer: "PackedBalancer",
    selection: BestValidation | None, best_params: dict[str, torch.Tensor] | None, initial_losses: torch.Tensor,
    trace: list[TracePoint], seconds: float, stopped_at: int | None, resumed_step: int | None,
) -> RunState:
    """Run `run`'s RunState at a logged step of the pack's loop (workers.run_state)."""
    moments = {name: {key: optimizer.state[stacked][key][run].detach().cpu().clone() for key in ("exp_avg", "exp_avg_sq")}
               for name, stacked in net.params.items()}
    adam_step = optimizer.state[next(iter(net.params.values()))]["step"].detach().cpu().clone()
    return RunState(
        step=step,
        params={name: p[run].detach().cpu().clone() for name, p in net.params.items()},
        moments=moments,
        adam_step=adam_step,
        balancer=balancer.row_state(run),
        initial_losses=initial_losses[run].detach().cpu().clone(),
        trace=tuple(trace),
        seconds=seconds,
        stopped_at=stopped_at,
        best_score=None if selection is None else float(selection.best_score[run]),
        best_step=None if selection is None else selection.best_step[run],
        since_best=0 if selection is None else int(selection.since_best[run]),
        best_params=None if best_params is None else {name: p[run].detach().cpu().clone() for name, p in best_params.items()},
        resumed_step=resumed_step,
    )


@dataclass
class Checkpoints:
    """Where a pack hands its runs' states mid-budget, and how often: at the first logged step at least
    `every_seconds` after the last hand-over (or the start)."""

    every_seconds: float
    on_state: Callable[[int, RunState], None]
    last: float = field(default_factory=time.perf_counter)

    def due(self) -> bool:
        now = time.perf_counter()
        if now - self.last < self.every_seconds:
            return False
        self.last = now
        return True


def linear_layer_norms(branches: list[torch.Tensor], layer_input: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """||grad_W L_i|| per run and task [K, T] at a linear shared layer W (y = x W^T + b), after the
    backward pass: branch i's gradient is delta_ki = d(w_ki L_ki)/dy_k; grad_W (w_ki L_ki) = delta_ki^T x_k;
    divided by w_ki (GradNorm keeps w > 0)."""
    inputs = layer_input.detach().reshape(layer_input.shape[0], -1, layer_input.shape[-1])  # [K, N, in]
    grads = [torch.zeros_like(b) if b.grad is None else b.grad for b in branches]  # a head outside the loss: 0
    deltas = torch.stack(grads, dim=1).reshape(inputs.shape[0], len(grads), inputs.shape[1], -1)  # [K, T, N, out]
    return squared_weight_grad_norms(deltas, inputs).sqrt() / weights.to(deltas.device)


def evaluate_pack(net: PackedNet, workload: Workload, split: Split) -> torch.Tensor:
    """Losses [K, T] on `split`, on the CPU, computed EVAL_CHUNK runs at a time."""
    losses = []
    with torch.no_grad():
        count = next(iter(net.params.values())).shape[0]
        for start in range(0, count, EVAL_CHUNK):
            chunk = PackedNet(net.model, {n: p[start:start + EVAL_CHUNK] for n, p in net.params.items()})
            outputs = chunk.forward(split.inputs)[2]
            losses.append(per_run_losses(workload, outputs, split.targets).cpu())
    return torch.cat(losses)


def final_evaluations(net: PackedNet, workload: Workload, finished: torch.Tensor) -> dict[int, FinalEvaluation]:
    """Test (and validation) losses and metrics of the runs that did not diverge, one run at a time."""
    finals: dict[int, FinalEvaluation] = {}
    with torch.no_grad():
        for run in finished.nonzero().flatten().tolist():
            single = PackedNet(net.model, {n: p[run:run + 1] for n, p in net.params.items()})

            def on(split: Split) -> tuple[torch.Tensor, list]:
                outputs = [o[0] for o in single.forward(split.inputs)[2]]
                return workload.task_losses(outputs, split.targets).cpu(), workload.test_metrics(outputs, split)

            finals[run] = final_evaluation(workload, on)
    return finals


class PackedBalancer:
    """The loss weights of K runs [K, T]: fixed rows, rows each run's own loss-driven balancer
    sets, or GradNorm rows with their own α."""

    def __init__(
        self, weights: torch.Tensor, alphas: torch.Tensor | None, lr: float | None, own: dict[int, Balancer] | None = None
    ) -> None:
        self._own = dict(own or {})  # run -> its balancer (DWA, RLW, FAMO), stepped on its own losses
        self._weights = weights.clone().requires_grad_(alphas is not None)
        self.alphas = alphas  # [K, 1], GradNorm packs only
        self.needs_task_grad_norms = alphas is not None
        self._optimizer = torch.optim.Adam([self._weights], lr=lr) if alphas is not None else None
        self.initial_losses: torch.Tensor | None = None
        self.last_grad_norms: torch.Tensor | None = None
        self._weight_sum = torch.zeros(weights.shape, dtype=torch.float64)
        self._steps = torch.zeros(weights.shape[0], 1, dtype=torch.float64)  # steps each run has taken

    @classmethod
    def for_configs(cls, configs: Sequence[TrialConfig], workload: Workload) -> "PackedBalancer":
        num_tasks = len(workload.tasks)
        if REGISTRY[configs[0].method].packing == "gradnorm":
            alphas = torch.tensor([[float(c.alpha)] for c in configs])
            return cls(torch.ones(len(configs), num_tasks), alphas, configs[0].balancer_lr)
        balancers = [build_balancer(c, workload) for c in configs]
        own = {run: balancer for run, balancer in enumerate(balancers) if not balancer.fixed}
        return cls(torch.stack([balancer.weights for balancer in balancers]), None, None, own)

    @property
    def weights(self) -> torch.Tensor:
        return self._weights.detach()

    @property
    def time_averaged_weights(self) -> torch.Tensor:
        """E_t[w] of each run over the steps it took (its current weights before any)."""
        return torch.where(self._steps > 0, self._weight_sum / self._steps.clamp(min=1), self.weights.to(torch.float64))

    def step(self, task_losses: torch.Tensor, task_grad_norms: torch.Tensor | None, alive: torch.Tensor) -> None:
        """As Balancer.step, for the runs still alive (weights and their update on the CPU)."""
        alive = alive.cpu()
        self._weight_sum += torch.where(alive[:, None], self.weights.to(torch.float64), 0.0)
        self._steps += alive[:, None].to(torch.float64)
        if self._own:
            task_losses = task_losses.cpu()
            for run, balancer in self._own.items():
                if alive[run]:
                    balancer.step(task_losses[run])
                    self._weights[run] = balancer.weights
        if self._optimizer is None:
            return
        task_losses, task_grad_norms = task_losses.cpu(), task_grad_norms.detach().cpu()
        if self.initial_losses is None:
            self.initial_losses = task_losses.clone()
        ratios = loss_ratios(task_losses, self.initial_losses)
        gradient, self.last_grad_norms, _ = gradnorm_weight_gradient(self.weights, task_grad_norms, ratios, self.alphas)
        self._weights.grad = torch.where(alive[:, None], gradient, torch.zeros_like(gradient))
        self._optimizer.step()
        with torch.no_grad():
            self._weights.copy_(torch.where(alive[:, None], renormalize(self._weights), self._weights))

    def state_dict(self) -> dict[str, Any]:
        """Everything the next step reads: each row's weights, E_t[w] sums and step counts, GradNorm's
        Adam state and L(0), and each loss-driven run's own balancer (a dropped run's too)."""
        return {
            "weights": self.weights.clone(),
            "weight_sum": self._weight_sum.clone(),
            "steps": self._steps.clone(),
            "initial_losses": None if self.initial_losses is None else self.initial_losses.clone(),
            "optimizer": None if self._optimizer is None else self._optimizer.state_dict(),
            "own": {run: balancer.state_dict() for run, balancer in self._own.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state_dict of a pack of the same runs (checked: its shape and kind of rows)."""
        weights = torch.as_tensor(state["weights"])
        if weights.shape != self._weights.shape or (state["optimizer"] is None) != (self._optimizer is None):
            raise ValueError(f"load_state_dict: the state is for a pack of {tuple(weights.shape)} weights "
                             f"({'GradNorm' if state['optimizer'] is not None else 'fixed or loss-driven'} rows), "
                             f"this pack has {tuple(self._weights.shape)}")
        if not set(state["own"]) <= set(self._own):
            raise ValueError("load_state_dict: the state has loss-driven runs this pack does not")
        with torch.no_grad():
            self._weights.copy_(weights)
        self._weight_sum = torch.as_tensor(state["weight_sum"], dtype=torch.float64).clone()
        self._steps = torch.as_tensor(state["steps"], dtype=torch.float64).clone()
        self.initial_losses = None if state["initial_losses"] is None else torch.as_tensor(state["initial_losses"]).clone()
        if self._optimizer is not None:
            self._optimizer.load_state_dict(state["optimizer"])
        for run in set(self._own) - set(state["own"]):  # saved while drop still removed a dropped run's balancer
            self._own.pop(run)
        for run, balancer_state in state["own"].items():
            self._own[run].load_state_dict(balancer_state)

    def row_state(self, run: int) -> dict[str, Any]:
        """One run's part of the state (workers.run_state.RunState.balancer): its row of every tensor,
        its own balancer's state, and GradNorm's Adam moments for its row (Adam's step is the pack's)."""
        state: dict[str, Any] = {"weights": self.weights[run].clone(), "weight_sum": self._weight_sum[run].clone(),
                                 "steps": self._steps[run].clone(), "own": None, "initial_losses": None, "adam": None}
        if run in self._own:
            state["own"] = self._own[run].state_dict()
        if self._optimizer is not None:
            state["initial_losses"] = None if self.initial_losses is None else self.initial_losses[run].clone()
            adam = self._optimizer.state.get(self._weights, {})
            if adam:
                state["adam"] = {"step": adam["step"].clone(), "exp_avg": adam["exp_avg"][run].clone(),
                                 "exp_avg_sq": adam["exp_avg_sq"][run].clone()}
        return state

    def load_rows(self, states: Sequence[dict[str, Any]], stopped: Sequence[bool]) -> None:
        """Every run's row from its `row_state` (one per run, in order), as a pack resumed at one step.
        `stopped`: runs out of training when saved; saved before 14c367b, their rows lack their own balancer."""
        if not len(states) == len(stopped) == self._weights.shape[0]:
            raise ValueError(f"load_rows: {len(states)} row states ({len(stopped)} stopped flags) for a pack of "
                             f"{self._weights.shape[0]}")
        for run, state in enumerate(states):
            if state["own"] is None and run in self._own and stopped[run]:
                self._own.pop(run)  # it stays out of every update, as a dropped run did then
        if any((state["own"] is None) != (run not in self._own) for run, state in enumerate(states)):
            raise ValueError("load_rows: a row state is of another kind of balancer than its run's")
        with torch.no_grad():
            self._weights.copy_(torch.stack([torch.as_tensor(state["weights"]) for state in states]))
        self._weight_sum = torch.stack([torch.as_tensor(s["weight_sum"], dtype=torch.float64) for s in states])
        self._steps = torch.stack([torch.as_tensor(s["steps"], dtype=torch.float64) for s in states])
        for run, balancer in self._own.items():
            balancer.load_state_dict(states[run]["own"])
        if self._optimizer is None:
            return
        if any(state["initial_losses"] is not None for state in states):
            self.initial_losses = torch.stack([torch.as_tensor(state["initial_losses"]) for state in states])
        rows = [state["adam"] for state in states]
        if all(row is None for row in rows):
            return
        steps = {None if row is None else float(row["step"]) for row in rows}
        if len(steps) != 1:
            raise ValueError(f"load_rows: GradNorm rows resumed at different Adam steps ({len(steps)} of them)")
        self._optimizer.state[self._weights] = {
            "step": torch.as_tensor(rows[0]["step"]).clone(),
            "exp_avg": torch.stack([torch.as_tensor(row["exp_avg"]) for row in rows]),
            "exp_avg_sq": torch.stack([torch.as_tensor(row["exp_avg_sq"]) for row in rows]),
        }

    def drop(self, run: int) -> None:
        """A diverged or stopped run: its weights stay as they were (its result reports them), out of every
        update. Its own balancer stays (step skips runs not alive), so its row state still says which kind
        it is and a checkpoint taken after it stopped restores into a pack of the same configs."""
        if self._optimizer is not None:
            for state in self._optimizer.state.values():  # zero moments: Adam moves the row no more
                for value in state.values():
                    if torch.is_tensor(value) and value.dim() > 0:
                        value[run] = 0
        if self.initial_losses is not None:
            self.initial_losses[run] = 1.0
