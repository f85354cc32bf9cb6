"""The book's cat brain: learn the threat score by regression, decide by thresholds."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score
from torchmetrics.classification import MulticlassAccuracy

from catbrain.models import ThresholdedLinear
from catbrain.predictor import Head, ThresholdHead
from catbrain.tasks.base import OptimizerFactory, SchedulerFactory, Task


class ThresholdTask(Task):
    """Fits a :class:`ThresholdedLinear` score to threat-score targets (MSE in standardised target units).

    Batches are ``(features, score)`` or ``(features, score, decision)``. Score metrics are
    ``mse``, ``mae``, ``r2``; ``decision_acc`` compares the thresholded prediction with the
    observed decision (or, without one, with the thresholded target score).
    """

    head_class = ThresholdHead
    model_class = ThresholdedLinear

    def __init__(
        self,
        model: ThresholdedLinear,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        steps_per_call: int = 1,
    ) -> None:
        if not isinstance(model, ThresholdedLinear):
            raise ValueError(f"ThresholdTask needs a ThresholdedLinear model, got {type(model).__name__}")
        if model.learn_thresholds:
            raise ValueError(
                "model.learn_thresholds=true needs task=ordinal (thresholds learned from decisions); "
                "the threshold task fits the score to threat scores with fixed thresholds"
            )
        super().__init__(model, optimizer, scheduler, steps_per_call)

    def make_head(self, model: nn.Module) -> Head:
        return ThresholdHead(model.class_names)

    def make_metrics(self) -> MetricCollection:
        n_classes = len(self.model.class_names)
        return MetricCollection(
            {
                "mse": MeanSquaredError(),
                "mae": MeanAbsoluteError(),
                "r2": R2Score(),
                "decision_acc": MulticlassAccuracy(n_classes, average="micro"),
            },
            compute_groups=False,
        )

    def loss(self, output: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if not batch[1].is_floating_point():
            raise TypeError(
                f"the {self.head.kind} task needs numbers as targets, got class indices: "
                "use a numeric target (data.targets=[score] on the cat world)"
            )
        return F.mse_loss(self.standardised(output), self.standardised(batch[1]))

    def update_metrics(self, metrics: MetricCollection, output: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> None:
        decision = batch[2] if len(batch) > 2 else self.decide(batch[1])
        for name, metric in metrics.items(keep_base=True):
            if name.endswith("decision_acc"):
                metric.update(self.decide(output), decision)
            else:
                metric.update(output, batch[1])
