"""Quantitative estimation: predict a number (tomorrow's temperature), learn by mean squared error."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from catbrain.predictor import Head, NumberHead
from catbrain.tasks.base import Task


class RegressionTask(Task):
    """MSE loss (in standardised target units); ``mse``, ``mae`` and ``r2`` per epoch (in the target's units)."""

    head_class = NumberHead

    def make_head(self, model: nn.Module) -> Head:
        return NumberHead()

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError(), "r2": R2Score()})

    def loss(self, output: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if not batch[1].is_floating_point():
            raise TypeError(
                f"the {self.head.kind} task needs numbers as targets, got class indices: "
                "use a numeric target (data.targets=[score] on the cat world)"
            )
        return F.mse_loss(self.standardised(output), self.standardised(batch[1]))

    def update_metrics(self, metrics: MetricCollection, output: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> None:
        metrics.update(output, batch[1])
