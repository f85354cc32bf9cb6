"""What a table must hold to be trained on, checked when it is read, before any run directory exists.

Each problem is one line naming the file, column or split and what would do instead: a column named
twice, a constant feature (nothing to learn from it; its standardised weight would be arbitrary), a
split too small for a standard deviation or r2, a classification target that holds one label, too
many labels to be classes, or numbers that are not labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from catbrain.errors import TableError

TRAINING_LIMIT = 1e15  # a value to train on: its square stays finite in float32
MAX_CLASSES = 100  # more distinct labels than this are an id or a number, not classes


def check_names(features: Sequence[str], class_names: Sequence[str] | None) -> None:
    for key, names in (("data.features", features), ("data.class_names", class_names or [])):
        repeated = sorted({str(name) for name in names if list(names).count(name) > 1})
        if repeated:
            raise TableError(f"{key}={list(names)}: names {', '.join(repeated)} more than once")
    slashed = [str(name) for name in class_names or [] if "/" in str(name)]
    if slashed:
        raise TableError(f"data.class_names: {slashed[0]!r} holds '/', which metric names use as a separator")


def check_labels(labels: Sequence[str], target: str, file: str) -> None:
    """Labels that are classes: not too many, and not numbers with fractions (a regression target)."""
    distinct = set(labels)
    numbers = []
    for label in list(distinct)[:1000]:
        try:
            numbers.append(float(label))
        except ValueError:
            break
    else:
        fractional = [label for label, number in zip(list(distinct)[:1000], numbers) if not number.is_integer()]
        if fractional:
            raise TableError(
                f"data.target={target!r} in {file} holds numbers such as {fractional[0]!r}, not labels: "
                "for a number to predict use data.task=regression"
            )
    slashed = sorted(label for label in distinct if "/" in str(label))
    if slashed:  # metric names such as test/confusion/<true>/<predicted> are split on it
        raise TableError(f"data.target={target!r} in {file} has the label {slashed[0]!r}: a class name may not hold "
                         "'/', which metric names use as a separator; rename it in the file")  # fmt: skip
    if len(distinct) > MAX_CLASSES:
        raise TableError(
            f"data.target={target!r} in {file} has {len(distinct)} distinct labels (at most {MAX_CLASSES} classes): "
            "is it an id or a number? choose another column, or data.task=regression"
        )


def check_splits(splits: dict[str, dict[str, torch.Tensor]], features: Sequence[str], classes: Sequence[str] | None,
                 files: str) -> None:  # fmt: skip
    """Each split has two rows or more; the training split varies in every feature and, for a classifier,
    holds at least two classes."""
    for split, table in splits.items():
        rows = len(table["features"])
        if rows < 2:
            raise TableError(
                f"data: the {split} split of {files} has {rows} row; a standard deviation and r2 need at least 2 "
                "(more rows, or other data.val_fraction / data.test_fraction)"
            )
    train = splits.get("train")
    if train is None:
        return
    spread = train["features"].amax(0) - train["features"].amin(0)
    for name, width, value in zip(features, spread.tolist(), train["features"][0].tolist()):
        if width == 0:
            raise TableError(
                f"data.features: column {name!r} holds one value ({value:g}) in all {len(train['features'])} "
                f"training rows of {files}: nothing to learn from it; leave it out"
            )
    if classes is not None and train["target"].unique().numel() < 2:
        only = classes[int(train["target"][0])]
        raise TableError(
            f"data.target: the training rows of {files} hold one label ({only!r}); a classifier needs two or more"
        )
