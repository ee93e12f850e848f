"""A user workload, as a user would write one: `tests.user_workload:build`."""

import torch

from workers.model import fully_connected_net
from workers.workloads.base import REGRESSION, Split, Task, Workload


def build(options):
    width = options.get("width", 4)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=generator)
    split = Split(x, (x.sum(dim=1, keepdim=True), 10 * x[:, :1]))
    return Workload(
        name="user",
        tasks=(Task("a", REGRESSION), Task("b", REGRESSION)),
        train=split,
        test=split,
        model=fully_connected_net(2, width, 2, [1, 1]),
    )


def not_a_workload(options):
    """A factory that returns the wrong type (refused with one line)."""
    return {"tasks": 2}


class RunawayTask(Task):
    """A task whose loss, -exp(exp(4 mean output)), a run that trains on it drives to -inf."""

    def loss(self, output, target):
        return -torch.exp(torch.exp(4 * output.mean()))


def runaway(options):
    """Task `a` is an ordinary regression; task `b` runs away in any run that weights it."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=generator)
    split = Split(x, (x.sum(dim=1, keepdim=True), torch.zeros(200, 1)))
    return Workload(
        name="runaway",
        tasks=(Task("a", REGRESSION), RunawayTask("b", REGRESSION)),
        train=split,
        test=split,
        model=fully_connected_net(2, 8, 2, [1, 1]),
    )
