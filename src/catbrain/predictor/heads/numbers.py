"""Heads whose answer is a number: the target itself, or several of its quantiles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from catbrain.predictor.heads.base import Head


class NumberHead(Head):
    """A number in the target's units: tomorrow's temperature, the lion's leap."""

    kind = "regression"
    target = "number"

    def check_model(self, model: nn.Module) -> None:
        if getattr(model, "out_features", 1) != 1:
            raise ValueError(f"a regression model has one output, got model.out_features={model.out_features}")

    def outputs(self) -> dict[str, str]:
        return {"prediction": "the predicted target, in its own units, float32 (batch,)"}

    def forward(self, output: torch.Tensor, model: nn.Module) -> tuple[torch.Tensor, ...]:
        return (output[:, 0] if output.dim() == 2 else output,)

    def answers(self, outputs: tuple[torch.Tensor, ...], model: nn.Module) -> list[dict[str, Any]]:
        return [{"prediction": value} for value in outputs[0].tolist()]


class QuantileHead(Head):
    """Several quantiles of the target, never crossing: the model's outputs, sorted.

    Sorting is the monotone rearrangement (Chernozhukov et al., 2010): it never increases the
    pinball loss, so it costs nothing and makes "10% below, 90% below" always read in order.
    The prediction is the median, so the quantiles must include 0.5.
    """

    kind = "quantile"
    target = "number"

    def __init__(self, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> None:
        super().__init__()
        levels = [float(q) for q in quantiles]
        if not levels or not all(0 < q < 1 for q in levels) or sorted(set(levels)) != levels:
            raise ValueError(f"task.quantiles={list(quantiles)}: must be increasing numbers in (0, 1)")
        if 0.5 not in levels:
            raise ValueError(f"task.quantiles={levels}: must include 0.5, the median, which is the prediction")
        self.levels = levels
        self.median = levels.index(0.5)

    def arguments(self) -> dict[str, Any]:
        return {"quantiles": list(self.levels)}

    def check_model(self, model: nn.Module) -> None:
        out_features = getattr(model, "out_features", None)
        if out_features != len(self.levels):
            raise ValueError(
                f"model.out_features={out_features} must equal the number of task.quantiles {len(self.levels)}"
            )

    def quantiles(self, output: torch.Tensor) -> torch.Tensor:
        """``(batch, Q)`` quantiles in increasing order."""
        return (output if output.dim() == 2 else output.unsqueeze(-1)).sort(dim=-1).values

    def outputs(self) -> dict[str, str]:
        return {
            "prediction": "the median of the target, in its own units, float32 (batch,)",
            "quantiles": "the target's quantiles at the levels in metadata 'quantiles', float32 (batch, Q)",
        }

    def forward(self, output: torch.Tensor, model: nn.Module) -> tuple[torch.Tensor, ...]:
        quantiles = self.quantiles(output)
        return quantiles[:, self.median], quantiles

    def metadata(self, model: nn.Module) -> dict[str, Any]:
        return {**super().metadata(model), "quantiles": list(self.levels)}

    def answers(self, outputs: tuple[torch.Tensor, ...], model: nn.Module) -> list[dict[str, Any]]:
        medians, quantiles = outputs
        return [
            {"prediction": median, "quantiles": {format_level(q): v for q, v in zip(self.levels, row)}}
            for median, row in zip(medians.tolist(), quantiles.tolist())
        ]

    def text(self, answer: dict[str, Any], target_name: str | None) -> str:
        shown = f"{target_name} = " if target_name else ""
        shown += f"{answer['prediction']:.4f}"
        values = list(answer["quantiles"].values())
        if len(values) > 1:
            coverage = 100 * (self.levels[-1] - self.levels[0])
            shown += f" ({coverage:.0f}%: {values[0]:.4f} .. {values[-1]:.4f})"
        return shown


def format_level(level: float) -> str:
    """``0.1`` -> ``"0.1"``: a quantile level as the key predict and metrics use."""
    return f"{level:g}"
