"""Plain ``nn.Module`` models: they know tensors and nothing about training."""

from catbrain.models.linear import Linear
from catbrain.models.mlp import MLP
from catbrain.models.thresholded import ThresholdedLinear

__all__ = ["Linear", "MLP", "ThresholdedLinear"]
