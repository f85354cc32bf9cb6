"""What a run learned: its test metrics beside the Bayes-optimal ones, its weights beside the closed form and the
teacher's, and its decision boundaries as lines, as one flat mapping for ``metrics.json``."""

from __future__ import annotations

from typing import Any


def collect_metrics(trainer: Any, task: Any, datamodule: Any, closed_form_too: bool = True) -> dict[str, float]:
    """Test metrics, Bayes-optimal references, and learned vs teacher weights, as one flat mapping.

    ``closed_form_too=False`` leaves out the least-squares answer: evaluation has no training rows of its own.
    """
    metrics = split_metrics(trainer, task, datamodule, "test")
    rule, teacher = task.predictor.linear_rule(), datamodule.teacher()
    names = datamodule.feature_names
    if rule is not None:
        metrics.update({f"weight/{name}": float(w) for name, w in zip(names, rule[0])})
        if not getattr(task.model, "learn_thresholds", False):  # learned thresholds carry the offset: no bias
            metrics["bias"] = rule[1]
        solved = closed_form(datamodule) if closed_form_too else None
        if solved is not None:
            metrics.update({f"closed_form_weight/{name}": float(w) for name, w in zip(names, solved[0])})
            metrics["closed_form_bias"] = solved[1]
        if teacher is not None:
            metrics.update({f"teacher_weight/{name}": float(w) for name, w in zip(names, teacher[0])})
            metrics["teacher_bias"] = float(teacher[1])
    thresholds = getattr(task.model, "thresholds", None)
    class_names = getattr(task, "class_names", None)
    if thresholds is not None:
        pairs = [f"{lower}-{upper}" for lower, upper in zip(class_names, class_names[1:])]
        metrics.update({f"threshold/{pair}": float(t) for pair, t in zip(pairs, thresholds.detach().cpu())})
    learned = boundary_lines(task)
    taught = datamodule.teacher_boundaries() if hasattr(datamodule, "teacher_boundaries") else None
    for prefix, lines in [("boundary", learned), ("teacher_boundary", taught)]:
        if lines and class_names and len(lines) == len(class_names) - 1:
            for lower, upper, (weights, offset) in zip(class_names, class_names[1:], lines):
                metrics.update(line_metrics(f"{prefix}/{lower}-{upper}", weights, offset, names))
    return metrics


def split_metrics(trainer: Any, task: Any, datamodule: Any, split: str) -> dict[str, float]:
    """The metrics of the last ``trainer.test`` on ``split``, its Bayes-optimal references, its confusion matrix."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(f"{split}/")}
    metrics.update(datamodule.reference_metrics(split, getattr(task.head, "levels", None)))
    confusion = getattr(task, "test_confusion_matrix", None)
    if confusion is not None:
        for i, truth in enumerate(task.class_names):
            for j, predicted in enumerate(task.class_names):
                metrics[f"{split}/confusion/{truth}/{predicted}"] = float(confusion[i, j])
    return metrics


def test_shifted(trainer: Any, task: Any, datamodule: Any) -> dict[str, float]:
    """Test on the data module's shifted split, if it has one: metrics named ``shift/...``."""
    if getattr(datamodule, "test_world", None) is None:
        return {}
    trainer.test(task, dataloaders=datamodule.split_dataloader("shift"), verbose=False)
    return split_metrics(trainer, task, datamodule, "shift")


def boundary_lines(task: Any) -> list[tuple[Any, float]] | None:
    """A linear classifier's boundary between each pair of neighbouring classes, as ``w . x = c`` in raw units.

    Thresholded scores: ``w . x + b = threshold_k``; softmax logits: where two neighbouring logits are equal.
    """
    from catbrain.models import Linear, ThresholdedLinear

    model, class_names = task.model, getattr(task, "class_names", None)
    if not class_names:
        return None
    if isinstance(model, ThresholdedLinear):
        weights, bias = task.predictor.linear_rule()
        return [(weights, float(t) - bias) for t in model.thresholds.detach().cpu().tolist()]
    if isinstance(model, Linear) and model.out_features == len(class_names) > 1:
        weight, bias = task.predictor.raw_linear()  # logits in raw units: W x + b
        differences = weight[1:] - weight[:-1]
        return [(w, float(c)) for w, c in zip(differences, bias[:-1] - bias[1:])]
    return None


def line_metrics(prefix: str, weights: Any, offset: float, names: list[str]) -> dict[str, float]:
    """The line ``w . x = c`` scaled so that its first feature's weight is 1: comparable whatever its scale."""
    first = float(weights[0])
    scale = first if abs(first) > 1e-12 else 1.0
    metrics = {f"{prefix}/{name}": float(w) / scale for name, w in zip(names, weights)}
    metrics[f"{prefix}/offset"] = offset / scale
    return metrics


def closed_form(datamodule: Any) -> tuple[Any, float] | None:
    """Least squares on the training split, ``argmin_w,b |X w + b - y|^2``: where gradient descent should land."""
    from catbrain.tasks.closed_form import least_squares

    arrays = datamodule.training_arrays() if hasattr(datamodule, "training_arrays") else None
    if arrays is None:
        return None
    # The normal equations in float64, summed over chunks: the same digits on every run (a threaded QR
    # solver is not), and no float64 copy of ten million rows.
    solution = least_squares(*(a.detach() for a in arrays)).cpu()
    return solution[:-1], float(solution[-1])
