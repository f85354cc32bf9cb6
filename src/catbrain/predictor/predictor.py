"""A trained model as one plain-torch object: raw features in, answers out.

The predictor holds the model, the standardisation fitted on the training split (features in,
target out) and the head that says what the output means. The task trains it, and predict,
eval, export and the pictures use it, so the scaling arithmetic and the meaning of an output
live here once. No Lightning: loading a predictor is quick.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from catbrain.errors import UsageError
from catbrain.predictor.heads import Head

SCALING = ("input_mean", "input_std", "target_mean", "target_std")  # the standardisation fitted on training data


class Predictor(nn.Module):
    """``model`` between the input scaling and the target unscaling, read by ``head``.

    ``output(x)`` is the model's output in the target's units (what the task's loss sees);
    ``outputs(x)`` the head's tensors (what an exported file gives); ``predict(rows)`` the answers.
    ``feature_names``, ``target_name`` and ``feature_ranges`` describe the data it was trained on.
    """

    def __init__(
        self,
        model: nn.Module,
        head: Head,
        feature_names: Sequence[str] | None = None,
        target_name: str | None = None,
        feature_ranges: dict[str, list[float]] | None = None,
    ) -> None:
        super().__init__()
        in_features = getattr(model, "in_features", None)
        if not isinstance(in_features, int) or in_features < 1:
            raise ValueError(f"a model needs an in_features attribute (a positive integer), got {in_features!r}")
        head.check_model(model)
        self.model = model
        self.head = head
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.target_name = target_name
        self.feature_ranges = dict(feature_ranges or {})
        self.register_buffer("input_mean", torch.zeros(in_features))
        self.register_buffer("input_std", torch.ones(in_features))
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))

    @property
    def in_features(self) -> int:
        return self.model.in_features

    @property
    def class_names(self) -> list[str] | None:
        return self.head.class_names

    def set_scaling(self, **values: torch.Tensor | None) -> None:
        """Copy the fitted ``input_mean``, ``input_std``, ``target_mean``, ``target_std`` (``None``: keep)."""
        for name, value in values.items():
            if value is not None:
                getattr(self, name).copy_(value)

    def scaling_is_identity(self) -> bool:
        return bool(
            (self.input_mean == 0).all()
            and (self.input_std == 1).all()
            and self.target_mean == 0
            and self.target_std == 1
        )

    def output(self, features: torch.Tensor) -> torch.Tensor:
        """The model's output for raw ``features``, in the target's own units."""
        output = self.model((features - self.input_mean) / self.input_std)
        return output * self.target_std + self.target_mean

    def decide(self, output: torch.Tensor) -> torch.Tensor | None:
        """A class index per row of ``output`` (from :meth:`output`), or ``None`` for a number."""
        return self.head.decide(output, self.model)

    def outputs(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The head's outputs (named by ``head.outputs()``) for raw ``features``."""
        return self.head(self.output(features), self.model)

    def forward(self, features: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """The exported graph: :meth:`outputs`, a lone tensor when there is one output."""
        outputs = self.outputs(features)
        return outputs[0] if len(outputs) == 1 else outputs

    def predict(self, rows: Any, first_row: int = 1) -> Any:
        """One answer per row: ``prediction`` (a number or a class name) and what the head adds.

        A row with a feature outside the range seen in training names those features in
        ``outside_training_range``: the model is guessing there. Errors number the rows from ``first_row``
        (a chunk of a longer input). ``rows`` may be a list of rows, a tensor or NumPy array, or a pandas
        DataFrame with a column per feature name: then the answers come back as a DataFrame with its index,
        one column per answer field (``probabilities/run_away``, ...).
        """
        if hasattr(rows, "columns") and hasattr(rows, "to_numpy"):
            return self._predict_frame(rows)
        features = self._features(rows, first_row)
        with torch.inference_mode():
            outputs = self.outputs(features.to(self.input_mean.device))
        for output in outputs:  # never a silent inf or NaN answer
            if output.is_floating_point() and not bool(torch.isfinite(output).all()):
                bad = (~torch.isfinite(output.reshape(len(output), -1))).any(1).nonzero().flatten()
                rows_named = ", ".join(str(int(row) + first_row) for row in bad[:5])
                raise UsageError(
                    f"row {rows_named}: the model's answer is not a finite number (inputs out of its reach)"
                )
        answers = self.head.answers(outputs, self.model)
        names = self.feature_names or [str(i) for i in range(self.in_features)]
        outside = self._outside_training_range(features, names)
        if outside is not None:
            for row in outside.any(1).nonzero().flatten().tolist():
                answers[row]["outside_training_range"] = [n for n, out in zip(names, outside[row].tolist()) if out]
        return answers

    def _outside_training_range(self, features: torch.Tensor, names: list[str]) -> torch.Tensor | None:
        """``(n, features)``: which values lie outside the range seen in training (``None``: no ranges known)."""
        if not self.feature_ranges:
            return None
        key = (tuple(names), repr(self.feature_ranges))
        if getattr(self, "_bounds", (None,))[0] != key:  # built once: a server asks about one row at a time
            inf = float("inf")
            bounds = [self.feature_ranges.get(name) or [-inf, inf] for name in names]
            low = torch.tensor([float(b[0]) for b in bounds], dtype=torch.float64)
            high = torch.tensor([float(b[1]) for b in bounds], dtype=torch.float64)
            self._bounds = (key, low, high)
        _, low, high = self._bounds
        values = features.cpu().double()
        return (values < low) | (values > high)

    def _features(self, rows: Any, first_row: int) -> torch.Tensor:
        """``rows`` as an ``(n, in_features)`` float32 tensor of finite numbers; a :class:`UsageError` naming the
        row and feature otherwise (as ``catbrain-predict`` names them)."""
        names = self.feature_names or [str(i) for i in range(self.in_features)]
        try:
            if hasattr(rows, "__array__") and not isinstance(rows, torch.Tensor):
                import numpy

                rows = numpy.ascontiguousarray(rows, dtype="float32")  # any strides, any float or int dtype
            features = torch.as_tensor(rows, dtype=torch.float32)
        except (ValueError, TypeError) as error:
            raise UsageError(f"rows must be numbers, {len(names)} a row ({', '.join(names)}): {error}") from None
        features = features.unsqueeze(0) if features.dim() == 1 and features.numel() else features
        if features.dim() != 2 or features.shape[1] != self.in_features or not len(features):
            raise UsageError(
                f"rows of shape {tuple(features.shape)}: the model takes (n >= 1, {self.in_features}) rows of "
                + ", ".join(names)
            )
        finite = torch.isfinite(features)
        if not bool(finite.all()):
            row, column = (int(i) for i in (~finite).nonzero()[0])
            value = float(features[row, column])
            raise UsageError(f"input row {row + first_row}, {names[column]}: {value} is not a finite number")
        return features

    def _predict_frame(self, frame: Any) -> Any:
        import pandas

        names = self.feature_names or [str(i) for i in range(self.in_features)]
        missing = [name for name in names if name not in frame.columns]
        if missing:
            raise ValueError(f"the DataFrame has no column {', '.join(missing)}; the model takes {', '.join(names)}")
        answers = self.predict(frame[names].to_numpy(dtype="float64"))
        return pandas.DataFrame([flat_answer(answer) for answer in answers], index=frame.index)

    def describe(self, answer: dict[str, Any]) -> str:
        """An answer as a person reads it."""
        text = self.head.text(answer, self.target_name)
        outside = answer.get("outside_training_range")
        return text + (f"  [outside the training range: {', '.join(outside)}]" if outside else "")

    def metadata(self) -> dict[str, Any]:
        """What a consumer needs to feed the model and read its outputs."""
        return {
            "kind": self.head.kind,
            "feature_names": self.feature_names,
            "target_name": self.target_name,
            **self.head.metadata(self.model),
            "feature_ranges": self.feature_ranges or None,  # [min, max] of each feature in training
            "outputs": self.head.outputs(),
        }

    def raw_linear(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``W (outputs, features)``, ``b (outputs,)`` of a linear model in raw feature and target units, or None."""
        weight, bias = getattr(self.model, "weight", None), getattr(self.model, "bias", None)
        n = self.input_mean.numel()
        if weight is None or bias is None or weight.shape[-1] != n:
            return None
        weight, bias = weight.detach().cpu().reshape(-1, n), bias.detach().cpu().reshape(-1)
        mean, std = self.input_mean.cpu(), self.input_std.cpu()
        scale, shift = float(self.target_std), float(self.target_mean)
        return scale * weight / std, scale * (bias - (weight / std) @ mean) + shift

    def linear_rule(self) -> tuple[torch.Tensor, float] | None:
        """Weights and bias of a single-output linear model in raw feature and target units, else ``None``."""
        raw = self.raw_linear()
        if raw is None or len(raw[0]) != 1:
            return None
        return raw[0][0], float(raw[1][0])


def flat_answer(answer: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"probabilities": {"cat": 0.2}}`` as ``{"probabilities/cat": 0.2}``; the features outside the training
    range as one cell, space-separated: one answer as a table's row."""
    cells: dict[str, Any] = {}
    for key, value in answer.items():
        if isinstance(value, dict):
            cells.update(flat_answer(value, f"{prefix}{key}/"))
        elif isinstance(value, list):
            cells[prefix + key] = " ".join(map(str, value))
        else:
            cells[prefix + key] = value
    return cells
