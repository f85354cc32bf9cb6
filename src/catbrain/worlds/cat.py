"""Objects a cat meets, described by hardness and sharpness, and what the cat decides.

The teacher is the book's: ``threat_score = w . (hardness, sharpness) + b`` with ``w = (1, 1)``,
``b = -1``. The observed score carries Gaussian noise, and the decision thresholds the noisy
score: ``approach`` below ``-delta``, ``run_away`` above ``+delta``, ``ignore`` in between.

``lopsided_fear > 0`` bends that rule (the book's sections 1.6-1.7): the cat also fears lopsided
objects, very hard however blunt or very sharp however soft, with an extra threat
``lopsided_fear * (hardness - sharpness) ** 2``. The decision boundaries become parabolas that no
straight line can follow.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from catbrain.worlds.base import World


class CatWorld(World):
    """Cat objects with features in ``[0, 1]^2``.

    Each feature is drawn as ``u ** (1 / skew)`` with ``u`` uniform, density ``skew * x**(skew-1)``:
    ``skew = 1`` is uniform, ``skew > 1`` favours hard / sharp objects, ``skew < 1`` soft / blunt ones.
    """

    feature_names = ("hardness", "sharpness")
    class_names = ("approach", "ignore", "run_away")
    units = {"hardness": "0 soft to 1 hard", "sharpness": "0 blunt to 1 sharp"}

    def __init__(
        self,
        teacher_weights: Sequence[float] = (1.0, 1.0),
        teacher_bias: float = -1.0,
        delta: float = 0.25,
        noise_std: float = 0.1,
        skew: Sequence[float] = (1.0, 1.0),
        lopsided_fear: float = 0.0,
    ) -> None:
        if len(teacher_weights) != 2:
            raise ValueError(f"teacher_weights must have 2 values (hardness, sharpness), got {list(teacher_weights)}")
        if len(skew) != 2 or any(float(k) <= 0 for k in skew):
            raise ValueError(f"skew must be 2 positive numbers (hardness, sharpness), got {list(skew)}")
        if delta < 0:
            raise ValueError(f"delta must be >= 0, got {delta}")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        if lopsided_fear < 0:
            raise ValueError(f"lopsided_fear must be >= 0, got {lopsided_fear}")
        self.teacher_weights = torch.tensor([float(w) for w in teacher_weights])
        self.teacher_bias = float(teacher_bias)
        self.delta = float(delta)
        self.noise_std = float(noise_std)
        self.skew = torch.tensor([float(k) for k in skew])
        self.lopsided_fear = float(lopsided_fear)

    def sample_features(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``(n, 2)`` hardness and sharpness in ``[0, 1]``."""
        u = torch.rand(n, 2, generator=generator)
        return u if bool((self.skew == 1).all()) else u ** (1 / self.skew)

    def teacher_score(self, features: torch.Tensor) -> torch.Tensor:
        """The noiseless threat score ``w . x + b`` (plus ``lopsided_fear * (hardness - sharpness) ** 2``)."""
        score = (features @ self.teacher_weights.to(features)).add_(self.teacher_bias)
        if self.lopsided_fear:
            score += self.lopsided_fear * (features[:, 0] - features[:, 1]) ** 2
        return score

    def decide(self, score: torch.Tensor) -> torch.Tensor:
        """0 = approach (score < -delta), 2 = run_away (score > delta), 1 = ignore otherwise."""
        # (score >= -delta) + (score > delta), summed in one byte per row before widening: less memory.
        return ((score >= -self.delta).to(torch.int8) + (score > self.delta).to(torch.int8)).long()

    def class_probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """``(n, 3)`` probability of each decision given the features (the noise is the only randomness)."""
        clean = self.teacher_score(features)
        if self.noise_std == 0:
            return torch.nn.functional.one_hot(self.decide(clean), 3).to(clean)
        p_approach = torch.special.ndtr((-self.delta - clean) / self.noise_std)
        p_run_away = torch.special.ndtr((clean - self.delta) / self.noise_std)
        return torch.stack([p_approach, 1 - p_approach - p_run_away, p_run_away], dim=-1)

    def bayes_decision(self, features: torch.Tensor) -> torch.Tensor:
        """The most probable decision: no classifier can be more accurate on average."""
        return self.class_probabilities(features).argmax(-1)

    def sample(
        self, n: int, generator: torch.Generator, truth: bool = True, targets: tuple[str, ...] | None = None
    ) -> dict[str, torch.Tensor]:
        """``features (n, 2)``, noisy ``score`` and ``decision``, and their Bayes-optimal predictions.

        ``bayes_score`` is the noiseless teacher score, ``bayes_decision`` the most probable decision;
        ``truth=False`` leaves them out (training data needs no ground truth, and saves the memory), as
        ``targets=("score",)`` leaves out the decisions (8 bytes a row).
        """
        features = self.sample_features(n, generator)
        bayes_score = self.teacher_score(features)
        score = torch.randn(n, generator=generator).mul_(self.noise_std).add_(bayes_score)
        sample = {"features": features, "score": score}
        if targets is None or "decision" in targets:  # no randomness below: the rest is the same either way
            sample["decision"] = self.decide(score)
        if not truth:
            return sample
        sample["bayes_score"] = bayes_score
        if "decision" in sample:
            sample["bayes_decision"] = self.bayes_decision(features)
        return sample

    def teacher(self) -> tuple[torch.Tensor, float] | None:
        """Weights and bias of the noiseless threat score; ``None`` when it is curved (no linear teacher)."""
        if self.lopsided_fear:
            return None
        return self.teacher_weights.clone(), self.teacher_bias

    def boundaries(self) -> list[tuple[torch.Tensor, float]] | None:
        """The teacher's decision boundaries as lines ``w . x = c``, one per threshold; ``None`` when curved."""
        if self.lopsided_fear:
            return None
        weights = self.teacher_weights.clone()
        return [(weights, threshold - self.teacher_bias) for threshold in (-self.delta, self.delta)]
