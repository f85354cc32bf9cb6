"""Learn the cat brain from decisions alone: the score and its ordered thresholds together.

The cumulative-link (ordinal regression) model: a decision of class ``k`` or lower has probability

    P(decision <= k | x) = F(threshold_k - score(x)),      score(x) = w . x

with ``F`` the logistic function (``link: logit``) or the standard normal CDF (``link: probit``,
exact when the observed score carries Gaussian noise, as in the cat world). The loss is the negative
log-likelihood of the observed decisions. Decisions alone fix the score only up to scale: what is
recovered is the direction of ``w`` and the boundary lines ``w . x = threshold_k``, not the
threat-score units (the probit model measures the score in units of the noise).
"""

from __future__ import annotations

import torch
from torch import nn

from catbrain.models import ThresholdedLinear
from catbrain.predictor import Head, OrdinalHead
from catbrain.tasks.base import OptimizerFactory, SchedulerFactory
from catbrain.tasks.classification import ClassificationTask


class OrdinalTask(ClassificationTask):
    """Trains a :class:`ThresholdedLinear` with learned thresholds on class indices; decides by the thresholds."""

    head_class = OrdinalHead
    model_class = ThresholdedLinear

    def __init__(
        self,
        model: ThresholdedLinear,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        link: str = "probit",
        steps_per_call: int = 1,
    ) -> None:
        if not isinstance(model, ThresholdedLinear) or not model.learn_thresholds:
            raise ValueError(
                "the ordinal task needs a ThresholdedLinear model with learn_thresholds=true "
                f"(model=thresholded_linear model.learn_thresholds=true), got {type(model).__name__}"
            )
        self.link = link
        super().__init__(model, optimizer, model.class_names, scheduler, steps_per_call)

    def make_head(self, model: nn.Module) -> Head:
        return OrdinalHead(model.class_names, self.link)

    def class_probabilities(self, score: torch.Tensor) -> torch.Tensor:
        """``(n, K)`` probability of each class given the score."""
        return self.head.class_probabilities(score, self.model.thresholds)

    def loss(self, output: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if batch[1].is_floating_point():
            raise TypeError("the ordinal task needs class indices as targets, got numbers: use data=cat_decisions")
        probabilities = self.class_probabilities(output).gather(-1, batch[1].unsqueeze(-1)).squeeze(-1)
        return -probabilities.clamp_min(1e-12).log().mean()
