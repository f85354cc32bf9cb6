"""Classification: one logit per class (approach, ignore, run away), learn by cross-entropy."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from catbrain.predictor import Head, SoftmaxHead
from catbrain.tasks.base import OptimizerFactory, SchedulerFactory, Task


class ClassificationTask(Task):
    """Cross-entropy loss; ``acc`` and ``f1_macro`` per epoch, and the confusion matrix at test."""

    head_class = SoftmaxHead

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        class_names: Sequence[str],
        scheduler: SchedulerFactory | None = None,
        steps_per_call: int = 1,
    ) -> None:
        self.requested_class_names = list(class_names or [])
        super().__init__(model, optimizer, scheduler, steps_per_call)
        self.confusion = MulticlassConfusionMatrix(len(self.class_names))
        self.test_confusion_matrix: torch.Tensor | None = None

    def make_head(self, model: nn.Module) -> Head:
        return SoftmaxHead(self.requested_class_names)

    def make_metrics(self) -> MetricCollection:
        n = len(self.class_names)
        return MetricCollection(
            {"acc": MulticlassAccuracy(n, average="micro"), "f1_macro": MulticlassF1Score(n, average="macro")}
        )

    def loss(self, output: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if batch[1].is_floating_point():
            raise TypeError(
                "the classification task needs class indices as targets, got numbers: "
                "use data.targets=[decision] (data=cat_decisions) or a classification CSV"
            )
        return F.cross_entropy(output, batch[1])

    def update_metrics(self, metrics: MetricCollection, output: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> None:
        decision = self.decide(output)
        metrics.update(decision, batch[1])
        if metrics is self.metrics["test_"]:
            self.confusion.update(decision, batch[1])

    def measured(self, stage: str, name: str) -> dict[str, torch.Tensor]:
        values = super().measured(stage, name)
        if stage == "test":
            self.test_confusion_matrix = self.confusion.compute().cpu()
            self.confusion.reset()
        return values
