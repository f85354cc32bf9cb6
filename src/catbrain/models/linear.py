"""The linear model ``y = W x + b``: a regressor with one output, a classifier with one logit per class."""

from __future__ import annotations

import torch
from torch import nn


class Linear(nn.Module):
    """``y = W x + b``.

    With ``out_features=1`` the output is squeezed to shape ``(batch,)`` so it can be compared
    with a vector of targets directly; otherwise it is ``(batch, out_features)`` logits.
    """

    def __init__(self, in_features: int, out_features: int = 1) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"Linear needs in_features >= 1 and out_features >= 1, "
                f"got in_features={in_features}, out_features={out_features}"
            )
        self.in_features = in_features
        self.out_features = out_features
        self.layer = nn.Linear(in_features, out_features)

    @property
    def weight(self) -> torch.Tensor:
        return self.layer.weight

    @property
    def bias(self) -> torch.Tensor:
        return self.layer.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer(x)
        return y.squeeze(-1) if self.out_features == 1 else y
