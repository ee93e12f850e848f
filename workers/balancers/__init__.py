"""Loss-weighting methods with a torch.optim-like interface."""

from workers.balancers.base import Balancer
from workers.balancers.gradnorm import GradNorm
from workers.balancers.static import EqualWeights, SingleTask, StaticWeights
from workers.balancers.uncertainty import UncertaintyWeighting

__all__ = ["Balancer", "EqualWeights", "GradNorm", "SingleTask", "StaticWeights", "UncertaintyWeighting"]
