"""What a model's output means: one small head per kind of output.

A head knows which targets its task trains on (``target``: numbers or class labels), what it
outputs (``outputs()``: names and shapes, for predict, export metadata and a server), and how an
output becomes an answer (``forward`` for the exported tensors, ``answers`` for plain values,
``text`` for a line a person reads). Its arguments are plain values (``arguments()``), so a
checkpoint stores a head as data. Heads import torch only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn


class Head(nn.Module):
    """The meaning of a model's output (in the target's units); see the module docstring."""

    kind: ClassVar[str]
    target: ClassVar[str]  # "number" or "class": what the task trains on

    def arguments(self) -> dict[str, Any]:
        """Plain values that rebuild this head: ``type(head)(**head.arguments())``."""
        return {}

    @property
    def class_names(self) -> list[str] | None:
        return None

    def check_model(self, model: nn.Module) -> None:
        """Raise ``ValueError`` when ``model``'s outputs cannot mean what this head says."""

    def outputs(self) -> dict[str, str]:
        """Exported output names, in order, and what each holds."""
        raise NotImplementedError

    def forward(self, output: torch.Tensor, model: nn.Module) -> tuple[torch.Tensor, ...]:
        """The tensors of :meth:`outputs` from the model's output in target units."""
        raise NotImplementedError

    def decide(self, output: torch.Tensor, model: nn.Module) -> torch.Tensor | None:
        """A class index per row, or ``None`` for a head that answers with numbers."""
        return None

    def answers(self, outputs: tuple[torch.Tensor, ...], model: nn.Module) -> list[dict[str, Any]]:
        """One JSON-ready answer per row from the tensors of :meth:`forward`."""
        raise NotImplementedError

    def text(self, answer: dict[str, Any], target_name: str | None) -> str:
        """How one answer reads on a terminal."""
        return f"{answer['prediction']:.4f}"

    def metadata(self, model: nn.Module) -> dict[str, Any]:
        """What a consumer of the exported file needs beside the outputs."""
        return {"class_names": self.class_names, "thresholds": None, "quantiles": None}


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


HEADS: dict[str, type[Head]] = {
    head.kind: head for head in (NumberHead, ThresholdHead, SoftmaxHead, OrdinalHead, QuantileHead)
}
