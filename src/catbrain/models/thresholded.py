"""The cat brain of the book's chapter 1: a linear threat score, thresholded into a decision.

    score    = w0 * hardness + w1 * sharpness + b
    decision = approach  if score < -delta
               run_away  if score > +delta
               ignore    otherwise

With K classes there are K-1 ordered thresholds. A score exactly on a threshold goes to the
class nearer the middle, so with the book's ``(-delta, +delta)`` the ignore band is ``[-delta, +delta]``.

``learn_thresholds=True`` makes the thresholds parameters, learned with the score from decisions
alone (see ``OrdinalTask``). They stay in order by construction: the first one plus positive gaps.
The score then has no bias of its own: a bias would only shift every threshold by the same amount.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize


class Ordered(nn.Module):
    """Parametrization of increasing values: ``t_0 = u_0``, ``t_k = t_(k-1) + MIN_GAP + softplus(u_k)``."""

    MIN_GAP = 1e-4  # strictly increasing even where softplus rounds to 0 in float32

    def forward(self, unconstrained: torch.Tensor) -> torch.Tensor:
        gaps = nn.functional.softplus(unconstrained[1:]) + self.MIN_GAP
        return torch.cat([unconstrained[:1], unconstrained[:1] + gaps.cumsum(0)])

    def right_inverse(self, thresholds: torch.Tensor) -> torch.Tensor:
        gaps = thresholds.diff() - self.MIN_GAP
        return torch.cat([thresholds[:1], gaps + torch.log(-torch.expm1(-gaps))])  # softplus^-1(gap)


class ThresholdedLinear(nn.Module):
    """A linear score plus ordered thresholds that turn the score into one of ``class_names``."""

    def __init__(
        self,
        in_features: int,
        thresholds: Sequence[float] = (-0.25, 0.25),
        class_names: Sequence[str] = ("approach", "ignore", "run_away"),
        learn_thresholds: bool = False,
    ) -> None:
        super().__init__()
        thresholds = [float(t) for t in thresholds]
        if len(class_names) != len(thresholds) + 1:
            raise ValueError(
                f"ThresholdedLinear needs one more class than thresholds, got "
                f"{len(class_names)} class_names {list(class_names)} and {len(thresholds)} thresholds {thresholds}"
            )
        if any(lo >= hi for lo, hi in zip(thresholds, thresholds[1:])):
            raise ValueError(f"ThresholdedLinear thresholds must be strictly increasing, got {thresholds}")
        self.in_features = in_features
        self.class_names = list(class_names)
        self.learn_thresholds = learn_thresholds
        self.score_layer = nn.Linear(in_features, 1, bias=not learn_thresholds)
        if learn_thresholds:
            self.thresholds = nn.Parameter(torch.tensor(thresholds))
            parametrize.register_parametrization(self, "thresholds", Ordered())
        else:
            self.register_buffer("thresholds", torch.tensor(thresholds))
        # Thresholds below the middle send ties upwards, those above send them downwards.
        middle = (len(thresholds) - 1) / 2
        self.register_buffer("tie_goes_up", torch.tensor([i <= middle for i in range(len(thresholds))]))

    @property
    def weight(self) -> torch.Tensor:
        """The score's weights, shape ``(in_features,)``."""
        return self.score_layer.weight[0]

    @property
    def bias(self) -> torch.Tensor:
        """The score's bias, a scalar (0 when the thresholds are learned: they carry the offset)."""
        bias = self.score_layer.bias
        return bias[0] if bias is not None else self.score_layer.weight.new_zeros(())

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """The threat score ``w . x + b``, shape ``(batch,)``."""
        return self.score_layer(x).squeeze(-1)

    def decide(self, score: torch.Tensor) -> torch.Tensor:
        """Class index for each score: how many thresholds it has passed."""
        score = score.unsqueeze(-1)
        passed = torch.where(self.tie_goes_up, score >= self.thresholds, score > self.thresholds)
        return passed.sum(-1)

    def decision(self, x: torch.Tensor) -> torch.Tensor:
        """Class index for each input row."""
        return self.decide(self.score(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(x)
