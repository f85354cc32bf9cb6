"""``explore.html``: one self-contained page per run that shows what the model learned, to move and watch.

For a model of two features (the cat's hardness and sharpness): a slider per feature and the answer
live (the decision, the score and its margins, the probabilities), over the plane coloured by the model's
decision, the teacher's boundaries and the training objects as dots. For other models: the same sliders
beside predicted against true on test rows (a point clicked loads its row). The page computes the model
itself for catbrain's models (the weights, the standardisation and the head's rule, in its script); for a
model of your own it reads the answers off a grid computed here, and says so. Its script, style and data
are inline, and its Content-Security-Policy forbids fetching anything: it opens from a file, offline.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from catbrain.models import MLP, Linear, ThresholdedLinear
from catbrain.run.files import write_atomically
from catbrain.run.plots import CLASS_COLOURS, plane_grid

PAGE = Path(__file__).with_name("explore_page.html")
GRID = 160  # cells a side of the plane's picture
SAMPLE_POINTS = 600
ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.SiLU: "silu"}


def write_explore(predictor: Any, datamodule: Any, run_dir: Path, title: str) -> Path:
    """Write ``<run_dir>/explore.html`` for ``predictor`` trained on ``datamodule``; its path."""
    predictor = predictor.eval()
    data = page_data(predictor, datamodule, title)
    script_safe = json.dumps(data, allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e")
    page = PAGE.read_text(encoding="utf-8")
    page = page.replace("__TITLE__", html.escape(title)).replace("/*__DATA__*/null", script_safe)
    path = run_dir / "explore.html"
    write_atomically(path, page)
    return path


def _numbers(tensor: torch.Tensor, digits: int = 6) -> list:
    """A tensor as (nested) lists of floats rounded to ``digits`` significant digits: what a picture needs."""
    return [float(f"{value:.{digits}g}") for value in tensor.flatten().tolist()]


def page_data(predictor: Any, datamodule: Any, title: str) -> dict[str, Any]:
    """Everything the page shows, as plain JSON values."""
    metadata = predictor.metadata()
    names = list(datamodule.feature_names)
    split = "train" if "train" in datamodule.splits else "test"  # eval on a test file alone has no training rows
    train = datamodule.splits[split]
    features = train["features"].detach().cpu().float()
    low, high = features.min(0).values, features.max(0).values
    span = torch.where(high > low, high - low, torch.ones_like(high))
    low, high = low - 0.05 * span, high + 0.05 * span
    model = predictor.model
    data: dict[str, Any] = {
        "title": title,
        "kind": metadata["kind"],
        "feature_names": names,
        "target_name": metadata["target_name"],
        "class_names": metadata["class_names"],
        "thresholds": metadata["thresholds"],
        "tie_goes_up": model.tie_goes_up.tolist() if hasattr(model, "tie_goes_up") else None,
        "quantiles": metadata["quantiles"],
        "feature_ranges": metadata["feature_ranges"],
        "start": _numbers(typical_row(features)),
        "low": _numbers(low),
        "high": _numbers(high),
        "colours": CLASS_COLOURS,
        "program": program(predictor),
        "n_train": len(features),
        "dots_from": "training" if split == "train" else "test",
    }
    if len(names) == 2:
        data["plane"] = plane(predictor, datamodule, features, train, low, high)
    else:
        data["scatter"] = scatter(predictor, datamodule)
    return data


def typical_row(features: torch.Tensor) -> torch.Tensor:
    """The row nearest the middle of the data (the median of each feature, in units of its spread): where the
    sliders start, a real object whose features go together (the middle of each range may be none)."""
    median = features.median(0).values
    spread = features.std(0).clamp_min(1e-12) if len(features) > 1 else torch.ones_like(median)
    return features[((features - median) / spread).pow(2).sum(1).argmin()]


def program(predictor: Any) -> dict[str, Any] | None:
    """What the page's script needs to compute the model exactly as torch does: the standardisation and each
    layer's weights and activation; ``None`` for a model that is not one of catbrain's."""
    model = predictor.model
    if isinstance(model, ThresholdedLinear):
        modules = [model.score_layer]
    elif isinstance(model, Linear):
        modules = [model.layer]
    elif isinstance(model, MLP):
        modules = list(model.layers)
    else:
        return None
    layers = []
    for module in modules:
        if isinstance(module, nn.Linear):
            weight = module.weight.detach().cpu().float()
            bias = module.bias.detach().cpu().float() if module.bias is not None else torch.zeros(len(weight))
            layers.append({"weight": weight.tolist(), "bias": bias.tolist()})
        elif isinstance(module, nn.GELU) and module.approximate == "none":
            layers.append({"activation": "gelu"})
        elif type(module) in ACTIVATIONS:
            layers.append({"activation": ACTIVATIONS[type(module)]})
        else:
            return None
    scaling = {name: getattr(predictor, name).detach().cpu().float().reshape(-1).tolist()
               for name in ("input_mean", "input_std", "target_mean", "target_std")}  # fmt: skip
    return {**scaling, "layers": layers}


def _classes(predictor: Any, features: torch.Tensor) -> torch.Tensor | None:
    device = predictor.input_mean.device
    with torch.no_grad():
        decision = predictor.decide(predictor.output(features.to(device)))
    return None if decision is None else decision.cpu()


def _values(predictor: Any, features: torch.Tensor) -> torch.Tensor:
    """What a number-answering model predicts (a quantile model's median)."""
    with torch.no_grad():
        return predictor.outputs(features.to(predictor.input_mean.device))[0].cpu().float()


def plane(predictor: Any, datamodule: Any, features: torch.Tensor, train: dict, low: Any, high: Any) -> dict:
    """The model's answer over a grid of the plane, the teacher's decision there, and training objects as dots."""
    _, _, grid = plane_grid(low, high, GRID)
    classes = _classes(predictor, grid)
    cells = "".join(map(str, classes.tolist())) if classes is not None else _numbers(_values(predictor, grid), 5)
    world = getattr(datamodule, "world", None)
    teacher, lines = None, None
    if classes is not None and hasattr(world, "teacher_score") and hasattr(world, "decide"):
        boundaries = world.boundaries() if hasattr(world, "boundaries") else None
        if boundaries is not None:  # straight lines w . x = c, drawn as lines
            lines = [[*_numbers(weights.float(), 8), float(offset)] for weights, offset in boundaries]
        else:  # curved: the cells where the teacher's decision changes
            teacher_classes = world.decide(world.teacher_score(grid))
            if int(teacher_classes.max()) < len(predictor.class_names):
                teacher = "".join(map(str, teacher_classes.tolist()))
    sample = torch.randperm(len(features), generator=torch.Generator().manual_seed(0))[:SAMPLE_POINTS]
    observed_key = next((key for key in datamodule.batch_keys if not train[key].is_floating_point()), None)
    observed_key = observed_key or datamodule.batch_keys[0]
    observed = train[observed_key].detach().cpu()[sample]
    return {
        "steps": GRID,
        "cells": cells,
        "teacher": teacher,
        "teacher_lines": lines,
        "dots": [_numbers(features[sample, 0]), _numbers(features[sample, 1])],
        "observed": observed.tolist() if not observed.is_floating_point() else _numbers(observed),
        "observed_name": observed_key,
    }


def scatter(predictor: Any, datamodule: Any) -> dict[str, Any]:
    """Test rows: their features, the observed target and the model's answer (numbers), or a confusion matrix with
    an example row per cell (classes)."""
    test = datamodule.splits["test"]
    key = datamodule.batch_keys[0]
    features = test["features"].detach().cpu().float()
    sample = torch.randperm(len(features), generator=torch.Generator().manual_seed(0))[:SAMPLE_POINTS]
    rows = features[sample]
    truth = test[key].detach().cpu()[sample]
    if truth.is_floating_point():
        return {"rows": [_numbers(row) for row in rows], "truth": _numbers(truth), "predicted":
                _numbers(_values(predictor, rows)), "observed_name": key}  # fmt: skip
    predicted = _classes(predictor, rows)
    if predicted is None:  # a score model tested on classes: nothing to cross
        return {"rows": [], "truth": [], "predicted": [], "observed_name": key}
    k = len(predictor.class_names)
    counts = [[0] * k for _ in range(k)]
    examples: list[list[Any]] = [[None] * k for _ in range(k)]
    for row, t, p in zip(rows, truth.tolist(), predicted.tolist()):
        if 0 <= t < k:
            counts[t][p] += 1
            examples[t][p] = examples[t][p] or _numbers(row)
    return {"confusion": counts, "examples": examples, "observed_name": key}
