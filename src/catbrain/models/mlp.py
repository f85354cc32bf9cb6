"""A multi-layer perceptron: the first model past linear, for worlds a line cannot describe."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "silu": nn.SiLU}


class MLP(nn.Module):
    """``in_features -> hidden[0] -> ... -> hidden[-1] -> out_features`` with an activation between layers.

    Like :class:`~catbrain.models.Linear`, a single output is squeezed to shape ``(batch,)``.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (32, 32),
        out_features: int = 1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"MLP activation={activation!r} is not one of {sorted(ACTIVATIONS)}")
        sizes = [in_features, *hidden, out_features]
        if any(int(size) < 1 for size in sizes):
            raise ValueError(f"MLP layer sizes must be >= 1, got {sizes}")
        self.in_features = in_features
        self.out_features = out_features
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
            layers += [nn.Linear(n_in, n_out), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(sizes[-2], sizes[-1]))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)
        return y.squeeze(-1) if self.out_features == 1 else y
