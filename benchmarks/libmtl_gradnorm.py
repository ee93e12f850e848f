"""Our GradNorm step vs LibMTL's, side by side, on toy T=2, toy T=10 and the digits network.

LibMTL 1.1.5 is installed from the package registry into this benchmark's own
folder (`pip install --no-deps --target`; numpy and scipy come from this
environment), so its pinned torch never replaces ours. Three stand-ins make it
run here, and nothing else of it is changed:
- it imports `torchvision.models.utils.load_state_dict_from_url`, which no
  current torchvision has (and torchvision is not installed): a stand-in module
  maps it to `torch.hub.load_state_dict_from_url` (never called here);
- its Trainer assumes CUDA, so its GradNorm weighting class is driven directly,
  by a small class giving it what its Trainer would (`task_num`, `device`,
  `rep_grad=False`, `epoch=1`, `get_share_params`, `train_loss_buffer` holding
  the first batch's losses as L_i(0));
- on torch >= 2 its gradient bookkeeping needs the shared parameters' grads
  zeroed with `set_to_none=False`, as its Trainer does.

What it computes differently: LibMTL normalizes gradients over *all* shared
parameters (the whole trunk, not the last shared layer), takes them with one
backward pass per task, and parameterizes the weights as T·softmax(s); ours
reads every task's gradient at the last shared layer off the one ordinary
backward pass and updates w directly (Adam, renormalized to sum to T).

    python -m benchmarks.libmtl_gradnorm [--steps 300] [--repeats 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

from workers.balancers import GradNorm
from workers.probe import LinearLayerProbe
from workers.threads import set_threads
from workers.workloads import build_workload

LIBMTL = "libmtl==1.1.5"
TARGET = Path.home() / ".cache" / "gradnorm-study" / "libmtl-1.1.5"
NETWORKS = {
    "toy T=2": ("toy", {"tasks": 2, "train_size": 2000, "test_size": 10, "validation_size": 10}),
    "toy T=10": ("toy", {"tasks": 10, "train_size": 2000, "test_size": 10, "validation_size": 10}),
    "digits (4 tasks)": ("digits", {}),
}
ALPHA = 1.5
BATCH = 100


def import_libmtl_gradnorm():
    if not (TARGET / "LibMTL").is_dir():
        print(f"installing {LIBMTL} into {TARGET} (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(TARGET), LIBMTL],
                       check=True)
    utils = types.ModuleType("torchvision.models.utils")
    utils.load_state_dict_from_url = torch.hub.load_state_dict_from_url
    models = types.ModuleType("torchvision.models")
    models.utils = utils
    torchvision = types.ModuleType("torchvision")
    torchvision.models = models
    sys.modules.update({"torchvision": torchvision, "torchvision.models": models, "torchvision.models.utils": utils})
    sys.path.insert(0, str(TARGET))
    from LibMTL.weighting import GradNorm as LibMTLGradNorm

    return LibMTLGradNorm


def make_libmtl_balancer(base, shared: list[torch.nn.Parameter], task_num: int, device: str, first_losses: torch.Tensor):
    class Driven(base):
        """What LibMTL's Trainer would give its weighting class."""

        def __init__(self) -> None:
            super().__init__()
            self.task_num, self.device, self.rep_grad, self.epoch = task_num, device, False, 1
            self.train_loss_buffer = first_losses.detach().cpu().numpy()[:, None]
            self.init_param()

        def get_share_params(self):
            return shared

        def zero_grad_share_params(self):
            for p in shared:
                if p.grad is not None:
                    p.grad.zero_()

    return Driven()


def time_steps(step, steps: int) -> float:
    for _ in range(5):  # warm-up
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps * 1e3


def ours(network: str, steps: int, device: str) -> float:
    workload = build_workload(*NETWORKS[network], seed=0).to(device)
    balancer = GradNorm(len(workload.tasks), [workload.model.shared_layer.weight], alpha=ALPHA)
    probe = LinearLayerProbe(workload.model)
    optimizer = torch.optim.Adam(workload.model.parameters(), lr=1e-3)
    batch = workload.train.take(torch.arange(BATCH, device=device))

    def step():
        losses = workload.task_losses(workload.model(batch.inputs), batch.targets)
        optimizer.zero_grad(set_to_none=True)
        balancer.combine(losses).backward()
        balancer.step(losses, probe.task_grad_norms(balancer.weights))
        optimizer.step()

    return time_steps(step, steps)


def theirs(base, network: str, steps: int, device: str) -> float:
    workload = build_workload(*NETWORKS[network], seed=0).to(device)
    model = workload.model
    shared = [p for name, p in model.named_parameters() if not name.startswith("heads.")]
    batch = workload.train.take(torch.arange(BATCH, device=device))
    first = workload.task_losses(model(batch.inputs), batch.targets)
    weighting = make_libmtl_balancer(base, shared, len(workload.tasks), device, first)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    weight_optimizer = torch.optim.Adam(weighting.parameters(), lr=0.025)

    def step():
        losses = workload.task_losses(model(batch.inputs), batch.targets)
        optimizer.zero_grad(set_to_none=False)
        weight_optimizer.zero_grad(set_to_none=False)
        weighting.backward(losses, alpha=ALPHA)
        optimizer.step()
        weight_optimizer.step()

    return time_steps(step, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    set_threads(1)
    base = import_libmtl_gradnorm()
    print(f"GradNorm step, ms (median of {args.repeats} alternating runs of {args.steps} steps), batch {BATCH}, "
          f"1 thread, {args.device}, torch {torch.__version__}, {LIBMTL}")
    for network in NETWORKS:
        mine, other = [], []
        for _ in range(args.repeats):
            mine.append(ours(network, args.steps, args.device))
            other.append(theirs(base, network, args.steps, args.device))
        a, b = statistics.median(mine), statistics.median(other)
        print(f"  {network:<18} ours {a:7.3f}   LibMTL {b:7.3f}   LibMTL/ours x{b / a:.2f}")


if __name__ == "__main__":
    main()
