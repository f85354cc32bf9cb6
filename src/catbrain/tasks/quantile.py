"""Quantile regression: not one guess for tomorrow's temperature but a range, "80% of days fall in here".

The pinball loss of level ``tau`` is minimised by the ``tau``-quantile of the target, so one model
with one output per level learns them all at once. The head sorts the outputs, so the quantiles
never cross, and answers with the median and the quantiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchmetrics import Metric, MetricCollection

from catbrain.predictor import Head, QuantileHead
from catbrain.predictor.heads import format_level
from catbrain.tasks.base import OptimizerFactory, SchedulerFactory, Task


def pinball_loss(quantiles: torch.Tensor, target: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Mean over rows and levels of ``max(tau (y - q), (tau - 1) (y - q))``; ``quantiles`` is ``(batch, Q)``."""
    error = target.unsqueeze(-1) - quantiles
    return torch.maximum(levels * error, (levels - 1) * error).mean()


class PinballLoss(Metric):
    """The pinball loss over an epoch, as :func:`pinball_loss` of all its rows."""

    def __init__(self, levels: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("levels", torch.tensor(list(levels)))
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, quantiles: torch.Tensor, target: torch.Tensor) -> None:
        self.total += pinball_loss(quantiles, target, self.levels.to(quantiles)).double() * len(target)
        self.count += len(target)

    def compute(self) -> torch.Tensor:
        return (self.total / self.count).float()


class Coverage(Metric):
    """For each level, the share of targets at or below its quantile: ``coverage/0.1`` should be near 0.1."""

    def __init__(self, levels: Sequence[float]) -> None:
        super().__init__()
        self.names = [f"coverage/{format_level(level)}" for level in levels]
        self.add_state("below", torch.zeros(len(levels), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, quantiles: torch.Tensor, target: torch.Tensor) -> None:
        self.below += (target.unsqueeze(-1) <= quantiles).double().sum(0)
        self.count += len(target)

    def compute(self) -> dict[str, torch.Tensor]:
        return {name: (below / self.count).float() for name, below in zip(self.names, self.below)}


class QuantileTask(Task):
    """Pinball loss over ``quantiles`` (in standardised target units); ``pinball_loss`` (target units) and
    ``coverage/<level>`` per epoch."""

    head_class = QuantileHead

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        quantiles: Sequence[float] = (0.1, 0.5, 0.9),
        scheduler: SchedulerFactory | None = None,
        steps_per_call: int = 1,
    ) -> None:
        self.levels = [float(q) for q in quantiles]
        super().__init__(model, optimizer, scheduler, steps_per_call)
        self.register_buffer("level_tensor", torch.tensor(self.levels), persistent=False)

    def make_head(self, model: nn.Module) -> Head:
        return QuantileHead(self.levels)

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"pinball_loss": PinballLoss(self.levels), "coverage": Coverage(self.levels)})

    def loss(self, output: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if not batch[1].is_floating_point():
            raise TypeError("the quantile task needs numbers as targets, got class indices: use a numeric target")
        quantiles = self.standardised(self.head.quantiles(output))
        return pinball_loss(quantiles, self.standardised(batch[1]), self.level_tensor)

    def update_metrics(self, metrics: MetricCollection, output: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> None:
        metrics.update(self.head.quantiles(output), batch[1])
