"""``optimizer=closed_form``: a linear model with a squared loss needs no descent, it has an exact answer.

The least-squares weights solve the normal equations ``(Z^T Z) w = Z^T y`` with ``Z = [x, 1]``, in
the standardised units the model computes in. ``Z^T Z`` and ``Z^T y`` are summed over chunks of the
training split in float64, so ten million rows need no more memory than the data itself. The task
solves once at the start of the first epoch; that epoch then only measures the solved weights
(``ClosedForm.step`` changes nothing), so validation, checkpoints, testing and the report are
those of any run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from catbrain.models import Linear, ThresholdedLinear

CHUNK_ROWS = 65_536
KINDS = ("regression", "threshold")  # tasks whose loss is the squared error of the model's one output


class ClosedForm(torch.optim.Optimizer):
    """The optimizer of ``optimizer=closed_form``: its steps evaluate the loss and leave the weights as solved."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float | None = None) -> None:
        super().__init__(params, {"lr": lr})  # an experiment's learning rate is taken and has nothing to set

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()


def check_solvable(model: nn.Module, kind: str) -> None:
    """Raise ``ValueError`` saying what the closed form needs when ``model`` and the task's ``kind`` lack it."""
    linear = (isinstance(model, Linear) and model.out_features == 1) or (
        isinstance(model, ThresholdedLinear) and not model.learn_thresholds
    )
    if not linear or kind not in KINDS:
        raise ValueError(
            "optimizer=closed_form needs a linear model with one output (model=linear or model=thresholded_linear, "
            f"fixed thresholds) and a squared loss (task=regression or task=threshold); got "
            f"{type(model).__name__} with task {kind}: choose another optimizer, e.g. optimizer=adam"
        )


def least_squares(
    features: torch.Tensor,
    target: torch.Tensor,
    mean: Any = 0.0,
    std: Any = 1.0,
    target_mean: Any = 0.0,
    target_std: Any = 1.0,
) -> torch.Tensor:
    """``[w, b]`` minimising ``|Z w + b - (y - target_mean) / target_std|^2`` with ``Z = (x - mean) / std``.

    The normal equations summed over chunks in float64 (never a float64 copy of the data), solved
    exactly; a constant or repeated feature gets the least-squares answer of smallest norm.
    """
    n_features = features.shape[1]
    gram = torch.zeros(n_features + 1, n_features + 1, dtype=torch.float64, device=features.device)
    moment = torch.zeros(n_features + 1, dtype=torch.float64, device=features.device)
    mean, std, target_mean, target_std = (torch.as_tensor(v, dtype=torch.float64, device=features.device)
                                          for v in (mean, std, target_mean, target_std))  # fmt: skip
    for rows, values in zip(features.split(CHUNK_ROWS), target.reshape(len(target), -1)[:, 0].split(CHUNK_ROWS)):
        design = torch.cat([(rows.double() - mean) / std, rows.new_ones(len(rows), 1, dtype=torch.float64)], 1)
        gram += design.T @ design
        moment += design.T @ ((values.double() - target_mean) / target_std)
    try:
        return torch.linalg.solve(gram, moment)
    except RuntimeError:
        return torch.linalg.lstsq(gram.cpu(), moment.cpu().unsqueeze(1), driver="gelsd").solution.squeeze(1)


def check_pairing(optimizer: Any, predictor: Any) -> None:
    """At a task's construction: ``optimizer=closed_form`` with a model and loss it cannot solve is refused."""
    if getattr(optimizer, "func", optimizer) is ClosedForm:
        check_solvable(predictor.model, predictor.head.kind)


def solve(task: Any, features: torch.Tensor, target: torch.Tensor) -> None:
    """Set ``task``'s linear model to the least-squares answer on raw ``features`` and ``target``."""
    predictor = task.predictor
    check_solvable(predictor.model, predictor.head.kind)
    scaling = (predictor.input_mean, predictor.input_std, predictor.target_mean, predictor.target_std)
    solution = least_squares(features, target, *scaling)
    model = predictor.model
    with torch.no_grad():
        model.weight.copy_(solution[:-1].reshape(model.weight.shape).to(model.weight))
        model.bias.copy_(solution[-1].reshape(model.bias.shape).to(model.bias))
