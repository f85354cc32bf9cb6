"""A model of the user's own, as the README's "Plug in your own model" describes: an importable nn.Module."""

import torch
from torch import nn


class TinyScore(nn.Module):
    """``y = w . x + b`` under another name than catbrain's models."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, 1
        self.layer = nn.Linear(in_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x).squeeze(-1)
