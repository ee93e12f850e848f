"""Loss-weighting methods with a torch.optim-like interface."""

from workers.balancers.base import Balancer
from workers.balancers.dwa import DynamicWeightAverage
from workers.balancers.famo import FAMO
from workers.balancers.gradnorm import GradNorm
from workers.balancers.rlw import RandomLossWeighting
from workers.balancers.static import EqualWeights, InverseInitialLoss, SingleTask, StaticWeights
from workers.balancers.uncertainty import UncertaintyWeighting

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
]
