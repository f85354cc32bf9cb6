"""What a model's output means: one small head per kind of output.

A head knows which targets its task trains on (``target``: numbers or class labels), what it
outputs (``outputs()``: names and shapes, for predict, export metadata and a server), and how an
output becomes an answer (``forward`` for the exported tensors, ``answers`` for plain values,
``text`` for a line a person reads). Its arguments are plain values (``arguments()``), so a
checkpoint stores a head as data. Heads import torch only.
"""

from __future__ import annotations

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
