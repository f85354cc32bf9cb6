"""Heads whose answer is a class: softmax over logits, a thresholded score, an ordinal score with learned thresholds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from catbrain.predictor.heads.base import Head


class ClassHead(Head):
    """What the class heads share: their class names."""

    target = "class"

    def __init__(self, class_names: Sequence[str]) -> None:
        super().__init__()
        names = list(class_names or [])
        if len(names) < 2 or len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"class_names={names!r}: must be two or more distinct names")
        self._class_names = names

    @property
    def class_names(self) -> list[str]:
        return self._class_names

    def arguments(self) -> dict[str, Any]:
        return {"class_names": list(self.class_names)}

    def text(self, answer: dict[str, Any], target_name: str | None) -> str:
        return answer["prediction"]


class SoftmaxHead(ClassHead):
    """One logit per class: the largest one decides, and softmax gives each class's probability."""

    kind = "classification"

    def check_model(self, model: nn.Module) -> None:
        out_features = getattr(model, "out_features", None)
        if out_features != len(self.class_names):
            raise ValueError(
                f"model.out_features={out_features} must equal the number of classes "
                f"{len(self.class_names)} ({self.class_names})"
            )

    def outputs(self) -> dict[str, str]:
        return {
            "probabilities": "softmax over class_names, float32 (batch, classes)",
            "decision": "index into class_names of the largest logit, int64 (batch,)",
        }

    def decide(self, output: torch.Tensor, model: nn.Module) -> torch.Tensor:
        return output.argmax(-1)

    def forward(self, output: torch.Tensor, model: nn.Module) -> tuple[torch.Tensor, ...]:
        return torch.softmax(output, dim=-1), output.argmax(dim=-1)

    def answers(self, outputs: tuple[torch.Tensor, ...], model: nn.Module) -> list[dict[str, Any]]:
        probabilities, decisions = outputs
        return [
            {"prediction": self.class_names[d], "probabilities": dict(zip(self.class_names, row))}
            for row, d in zip(probabilities.tolist(), decisions.tolist())
        ]

    def text(self, answer: dict[str, Any], target_name: str | None) -> str:
        return f"{answer['prediction']}  (probability {answer['probabilities'][answer['prediction']]:.3f})"


class ThresholdHead(ClassHead):
    """A score and the model's ordered thresholds: the decision is how many thresholds the score passed.

    Ties go where ``ThresholdedLinear.decide`` sends them; the comparisons are ones every ONNX runtime has.
    """

    kind = "threshold"
    target = "number"  # it learns the score from numbers; the decision comes from the thresholds
    score_meaning = "the score in the target's own units"

    def check_model(self, model: nn.Module) -> None:
        thresholds = getattr(model, "thresholds", None)
        if thresholds is None or not hasattr(model, "tie_goes_up"):
            raise ValueError(f"the {self.kind} head needs a ThresholdedLinear model, got {type(model).__name__}")
        if len(thresholds) + 1 != len(self.class_names):
            raise ValueError(f"{len(thresholds)} thresholds cannot separate the classes {self.class_names}")

    def outputs(self) -> dict[str, str]:
        return {
            "score": f"{self.score_meaning}, float32 (batch,)",
            "decision": "index into class_names, int64 (batch,): how many thresholds the score has passed",
        }

    def decide(self, output: torch.Tensor, model: nn.Module) -> torch.Tensor:
        score = output.unsqueeze(-1)
        thresholds = model.thresholds.to(output.dtype)
        passed = (score > thresholds) | (model.tie_goes_up & (score == thresholds))
        return passed.sum(dim=-1)

    def forward(self, output: torch.Tensor, model: nn.Module) -> tuple[torch.Tensor, ...]:
        return output, self.decide(output, model)

    def metadata(self, model: nn.Module) -> dict[str, Any]:
        return {**super().metadata(model), "thresholds": model.thresholds.detach().cpu().tolist()}

    def answers(self, outputs: tuple[torch.Tensor, ...], model: nn.Module) -> list[dict[str, Any]]:
        scores, decisions = outputs
        thresholds = model.thresholds.detach().cpu().tolist()
        names = self.class_names
        boundaries = [f"{lower}|{upper}" for lower, upper in zip(names, names[1:])]
        return [
            {
                "prediction": names[d],
                "score": s,
                # How far the score lies above (+) or below (-) each threshold between two classes.
                "margins": {b: {"threshold": t, "distance": s - t} for b, t in zip(boundaries, thresholds)},
            }
            for s, d in zip(scores.tolist(), decisions.tolist())
        ]

    def text(self, answer: dict[str, Any], target_name: str | None) -> str:
        margins = ", ".join(
            f"{m['distance']:+.3f} from {m['threshold']:+g} ({boundary})" for boundary, m in answer["margins"].items()
        )
        return f"{answer['prediction']}  (score {answer['score']:+.4f}: {margins})"


class OrdinalHead(ThresholdHead):
    """A score learned from decisions alone, with learned thresholds; ``link`` turns gaps into probabilities."""

    kind = "ordinal"
    target = "class"  # it learns from decisions alone
    score_meaning = "the score (learned from decisions, so in units of its noise)"
    LINKS = ("logit", "probit")

    def __init__(self, class_names: Sequence[str], link: str = "probit") -> None:
        super().__init__(class_names)
        if link not in self.LINKS:
            raise ValueError(f"task.link={link!r} is not one of {list(self.LINKS)}")
        self.link = link

    def arguments(self) -> dict[str, Any]:
        return {**super().arguments(), "link": self.link}

    def class_probabilities(self, score: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
        """``(n, K)``: ``P(class <= k) = F(threshold_k - score)``, differenced."""
        gaps = thresholds - score.unsqueeze(-1)
        at_most = torch.sigmoid(gaps) if self.link == "logit" else torch.special.ndtr(gaps)
        ones = torch.ones_like(score).unsqueeze(-1)
        return torch.cat([at_most, ones], dim=-1) - torch.cat([torch.zeros_like(ones), at_most], dim=-1)
