"""catbrain's own models and losses for K jobs at once, written over the job axis: no ``vmap``.

:class:`~catbrain.stacked.Stacked` runs any module for K jobs through ``vmap`` and ``functional_call``,
which costs about half a millisecond a call in wrapping tensors and swapping parameters: for a linear
model of three numbers that is most of a training step. For the models catbrain ships (``Linear``,
``ThresholdedLinear`` with fixed thresholds, ``MLP``) and the losses of its tasks (mean squared error,
cross-entropy, pinball), this module does the same arithmetic on the stacked tensors directly: a layer
is one batched matrix product ``(K, batch, in) @ (K, in, out)``, a loss a mean over each job's rows.
The numbers agree with ``vmap``'s up to float rounding; :func:`batched_losses` checks that on a batch
(losses and gradients) before it is used, and anything else (a model or task of your own, the ordinal
task) keeps ``vmap``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from catbrain.predictor.predictor import SCALING
from catbrain.stacked.models import Stacked

Losses = Callable[..., torch.Tensor]


def _linear(params: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    """``nn.Linear`` named ``name`` for every job: ``x`` ``(K, batch, in)`` -> ``(K, batch, out)``."""
    weight, bias = params[f"{name}.weight"], params.get(f"{name}.bias")
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def _model(model: nn.Module, prefix: str) -> Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor] | None:
    """The model's forward over the job axis, or ``None`` when it is not one written here."""
    from catbrain.models import MLP, Linear, ThresholdedLinear
    from catbrain.models.mlp import ACTIVATIONS

    kind = type(model)
    if kind is Linear:
        squeeze = model.out_features == 1
        return lambda p, x: (lambda y: y.squeeze(-1) if squeeze else y)(_linear(p, f"{prefix}layer", x))
    if kind is ThresholdedLinear and not model.learn_thresholds:
        return lambda p, x: _linear(p, f"{prefix}score_layer", x).squeeze(-1)
    if kind is MLP:
        steps: list[Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]] = []
        for index, layer in enumerate(model.layers):
            if type(layer) is nn.Linear:
                steps.append(lambda p, x, name=f"{prefix}layers.{index}": _linear(p, name, x))
            elif type(layer) in ACTIVATIONS.values():  # elementwise: any shape
                steps.append(lambda p, x, layer=layer: layer(x))
            else:
                return None
        squeeze = model.out_features == 1

        def mlp(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            for step in steps:
                x = step(p, x)
            return x.squeeze(-1) if squeeze else x

        return mlp
    return None


def _per_job(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A ``(K, ...)`` per-job buffer shaped to broadcast over ``like``'s rows (its second axis)."""
    return value.reshape(value.shape[0], *[1] * (like.dim() - value.dim()), *value.shape[1:])


def _loss(task: Any) -> Callable[..., torch.Tensor] | None:
    """The task's loss per job, ``(output, standardise, *targets) -> (K,)``, or ``None`` when not written here."""
    from catbrain.predictor.heads.numbers import QuantileHead
    from catbrain.tasks.classification import ClassificationTask
    from catbrain.tasks.quantile import QuantileTask
    from catbrain.tasks.regression import RegressionTask
    from catbrain.tasks.threshold import ThresholdTask

    loss = type(task).loss
    if loss in (RegressionTask.loss, ThresholdTask.loss):

        def squared(output: torch.Tensor, standardise: Callable, target: torch.Tensor, *rest: torch.Tensor) -> Any:
            if not target.is_floating_point():
                return None
            return (standardise(output) - standardise(target)).square().mean(1)

        return squared
    if loss is ClassificationTask.loss:

        def cross_entropy(output: torch.Tensor, standardise: Callable, target: torch.Tensor, *rest: torch.Tensor
                          ) -> Any:  # fmt: skip
            if target.is_floating_point():
                return None
            k, n = target.shape
            return F.cross_entropy(output.reshape(k * n, -1), target.reshape(-1), reduction="none").view(k, n).mean(1)

        return cross_entropy
    if loss is QuantileTask.loss and type(task.head).quantiles is QuantileHead.quantiles:
        levels = task.level_tensor

        def pinball(output: torch.Tensor, standardise: Callable, target: torch.Tensor, *rest: torch.Tensor) -> Any:
            if not target.is_floating_point():
                return None
            quantiles = (output if output.dim() == 3 else output.unsqueeze(-1)).sort(dim=-1).values
            error = standardise(target).unsqueeze(-1) - standardise(quantiles)
            level = levels.to(error.device)
            return torch.maximum(level * error, (level - 1) * error).mean((1, 2))

        return pinball
    return None


def batched_losses(stacked: Stacked, sample: tuple[torch.Tensor, ...]) -> Losses | None:
    """Each job's loss for ``(features, *targets)`` stacked ``(K, batch, ...)``, as ``stacked`` (a
    :class:`Stacked` of :class:`~catbrain.run.vectorized.LossOf`) computes it through ``vmap``, without it; or
    ``None`` where the model or loss is not one written here or the two disagree on ``sample``."""
    from catbrain.predictor.predictor import Predictor
    from catbrain.tasks.base import Task

    task = stacked.architecture.task
    predictor = task.predictor
    if type(predictor).output is not Predictor.output or type(task).standardised is not Task.standardised:
        return None
    model, loss = _model(predictor.model, "task.predictor.model."), _loss(task)
    if model is None or loss is None or not _plain(predictor.model, stacked):
        return None

    # Data not standardised (every job's means 0 and deviations 1): x - 0, x / 1 change nothing, so skip them.
    neutral = {"input_mean": 0.0, "input_std": 1.0, "target_mean": 0.0, "target_std": 1.0}
    identity = all(bool((stacked.buffers[f"task.predictor.{name}"] == neutral[name]).all()) for name in SCALING)

    def losses(features: torch.Tensor, *targets: torch.Tensor) -> torch.Tensor:
        mean, std, target_mean, target_std = (stacked.buffers[f"task.predictor.{name}"] for name in SCALING)
        if identity:
            output = model(stacked.params, features)
            value = loss(output, lambda values: values, *targets)
        else:
            output = model(stacked.params, (features - mean.unsqueeze(1)) / std.unsqueeze(1))
            output = output * _per_job(target_std, output) + _per_job(target_mean, output)

            def standardise(values: torch.Tensor) -> torch.Tensor:
                return (values - _per_job(target_mean, values)) / _per_job(target_std, values)

            value = loss(output, standardise, *targets)
        if value is None:  # targets of the wrong kind: the task's own loss says so
            return stacked(features, *targets)
        return value

    return losses if _agrees(stacked, losses, sample) else None


def _plain(model: nn.Module, stacked: Stacked) -> bool:
    """Whether the model is as its class builds it: every parameter one of its ``nn.Linear`` layers' weight or bias
    (none parametrized, e.g. by ``weight_norm``), and no hooks, which the batched path would not run."""
    expected = set()
    for name, module in model.named_modules():
        if module._forward_hooks or module._forward_pre_hooks or hasattr(module, "parametrizations"):
            return False
        if type(module) is nn.Linear:
            expected |= {f"task.predictor.model.{name}.weight"} | ({f"task.predictor.model.{name}.bias"}
                                                                     if module.bias is not None else set())  # fmt: skip
    return set(stacked.params) == expected


def _agrees(stacked: Stacked, losses: Losses, sample: tuple[torch.Tensor, ...]) -> bool:
    """Whether ``losses`` gives ``vmap``'s losses and gradients on ``sample``, up to float rounding (a batched path
    that fails is no path: ``vmap`` then runs, and says what fails, if anything)."""
    params = list(stacked.params.values())
    found = []
    for compute in (stacked, losses):
        try:
            value = compute(*sample)
            grads = torch.autograd.grad(value.sum(), params, allow_unused=True)
        except Exception:
            if compute is stacked:
                raise
            return False
        found.append((value.detach(), [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, params)]))
    (value, grads), (other, other_grads) = found
    if not torch.allclose(value, other, rtol=1e-5, atol=1e-6, equal_nan=True):
        return False
    return all(torch.allclose(g, o, rtol=1e-4, atol=1e-6, equal_nan=True) for g, o in zip(grads, other_grads))
