"""Many small models trained at once: stacked weights (a leading job axis) and optimizers with per-job settings."""

from catbrain.stacked.models import Stacked
from catbrain.stacked.optim import StackedOptimizer

__all__ = ["Stacked", "StackedOptimizer"]
