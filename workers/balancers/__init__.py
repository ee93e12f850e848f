"""Loss-weighting methods with a torch.optim-like interface, built from a trial config by name.

Which methods exist, and what each takes, is the registry in records/methods.py;
the balancer of a method is BUILDERS[name] of the module its entry names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from records.methods import REGISTRY
from workers.balancers.base import Balancer
from workers.balancers.dwa import DynamicWeightAverage
from workers.balancers.famo import FAMO
from workers.balancers.gradnorm import GradNorm
from workers.balancers.rlw import RandomLossWeighting
from workers.balancers.static import EqualWeights, InverseInitialLoss, SingleTask, StaticWeights
from workers.balancers.uncertainty import UncertaintyWeighting

if TYPE_CHECKING:
    from workers.config import TrialConfig
    from workers.workloads.base import Workload


def build_balancer(config: "TrialConfig", workload: "Workload") -> Balancer:
    """The balancer `config.method` trains with, for `workload`'s tasks."""
    builders = importlib.import_module(REGISTRY[config.method].module).BUILDERS  # TrialConfig checked the name
    return builders[config.method](config, workload)


__all__ = [
    "FAMO",
    "Balancer",
    "DynamicWeightAverage",
    "EqualWeights",
    "GradNorm",
    "InverseInitialLoss",
    "RandomLossWeighting",
    "SingleTask",
    "StaticWeights",
    "UncertaintyWeighting",
    "build_balancer",
]
