"""Your own data: a LightningDataModule over CSV files."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from catbrain.data.base import InMemoryDataModule
from catbrain.data.checks import TRAINING_LIMIT, check_labels, check_names, check_splits
from catbrain.data.table import read_columns

TASKS = ("regression", "classification")
_READ: dict[tuple, dict] = {}  # the last file read, until it is read again


def _file_key(file: str, features: list[str], target: str, is_label: bool) -> tuple | None:
    from pathlib import Path

    try:
        stat = Path(file).resolve().stat()
    except OSError:
        return None
    return str(Path(file).resolve()), stat.st_mtime_ns, stat.st_size, tuple(features), target, is_label


class CsvDataModule(InMemoryDataModule):
    """Columns ``features`` predict column ``target`` of CSV files.

    Give ``path`` (one file, split into train / val / test by ``val_fraction`` and
    ``test_fraction``), or ``train_path`` (split the same way, or into train / val only when
    ``test_path`` is given too), or ``test_path`` alone (to evaluate a checkpoint).
    ``val_fraction=0`` validates on the training data. For ``task="classification"`` the target
    column holds labels; ``class_names`` fixes their order, else the sorted labels of the training
    file are the classes. The files are read and checked when the module is built, before any
    training.
    """

    def __init__(
        self,
        features: Sequence[str],
        target: str,
        task: str = "regression",
        path: str | None = None,
        train_path: str | None = None,
        test_path: str | None = None,
        class_names: Sequence[str] | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        seed: int = 0,
        batch_size: int = 64,
        standardize: bool = True,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"data.task={task!r} is not one of {list(TASKS)}")
        if not features:
            raise ValueError("data.features must name at least one column")
        if target in features:
            raise ValueError(f"data.target={target!r} is also one of data.features")
        check_names(features, class_names)
        if path is not None and (train_path is not None or test_path is not None):
            raise ValueError("give data.path, or data.train_path and/or data.test_path, not both")
        if path is None and train_path is None and test_path is None:
            raise ValueError("data.path (or data.train_path / data.test_path) must name a CSV file")
        for name, value in [("val_fraction", val_fraction), ("test_fraction", test_fraction)]:
            if not 0 <= value < 1:
                raise ValueError(f"data.{name} must be in [0, 1), got {value}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"data.batch_size must be a positive integer, got {batch_size!r}")
        self.feature_names = list(features)
        self.target_name = target
        self.batch_keys = ["target"]
        self.task = task
        self.seed, self.batch_size, self.standardize = seed, batch_size, standardize
        self.class_names = list(class_names) if class_names is not None else None

        tables = {}
        for split_name, file in [("all", path), ("train", train_path), ("test", test_path)]:
            if file is not None:
                tables[split_name] = self._read(file)
        if self.task == "classification" and self.class_names is None:
            self.class_names = sorted(set(next(iter(tables.values()))["labels"]))
        self.splits = self._split(tables, val_fraction, test_fraction)
        files = " and ".join(str(file) for file in (path, train_path, test_path) if file is not None)
        check_splits(self.splits, self.feature_names, self.class_names if task == "classification" else None, files)
        self.input_mean = self.input_std = self.target_mean = self.target_std = None

    def _read(self, file: str) -> dict[str, torch.Tensor]:
        """The file's columns as tensors (and labels), read once per process: a command checks the file before
        its run directory exists, then trains on what it read (unless the file changed in between)."""
        is_label = self.task == "classification"
        key = _file_key(file, self.feature_names, self.target_name, is_label)
        if key is not None and key in _READ:
            return _READ.pop(key)
        columns = read_columns(file, self.feature_names + ([] if is_label else [self.target_name]),
                               [self.target_name] if is_label else [], limit=TRAINING_LIMIT)  # fmt: skip
        features = torch.tensor([columns[f] for f in self.feature_names], dtype=torch.float32).T.contiguous()
        if is_label:
            check_labels(columns[self.target_name], self.target_name, file)
            table = {"features": features, "labels": columns[self.target_name]}
        else:
            table = {"features": features, "target": torch.tensor(columns[self.target_name], dtype=torch.float32)}
        if key is not None:
            _READ.clear()
            _READ[key] = table
        return table

    def _encode(self, table: dict) -> dict[str, torch.Tensor]:
        if "labels" not in table:
            return table
        index = {name: i for i, name in enumerate(self.class_names)}
        unknown = sorted(set(table["labels"]) - set(index))
        if unknown:
            raise ValueError(f"data.target={self.target_name!r} has labels {unknown} outside {self.class_names}")
        target = torch.tensor([index[label] for label in table["labels"]], dtype=torch.long)
        return {"features": table["features"], "target": target}

    def _split(self, tables: dict, val_fraction: float, test_fraction: float) -> dict[str, dict[str, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed)
        tables = {name: self._encode(table) for name, table in tables.items()}

        def take(table: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
            return {key: value[index] for key, value in table.items()}

        splits: dict[str, dict[str, torch.Tensor]] = {}
        source = tables.get("all", tables.get("train"))
        if source is not None:
            n = len(source["features"])
            order = torch.randperm(n, generator=generator)
            n_test = round(n * test_fraction) if "test" not in tables else 0
            n_val = round(n * val_fraction)
            if "test" not in tables and n_test < 1:
                raise ValueError(
                    f"data: no test data: {n} rows with data.test_fraction={test_fraction} leave none; "
                    "give data.test_path or a larger data.test_fraction"
                )
            if n - n_test - n_val < 1:
                raise ValueError(
                    f"data: {n} rows leave no training data with data.val_fraction={val_fraction} "
                    f"and data.test_fraction={test_fraction}"
                )
            if n_test:
                splits["test"] = take(source, order[:n_test])
            splits["train"] = take(source, order[n_test + n_val :])
            splits["val"] = take(source, order[n_test : n_test + n_val]) if n_val else splits["train"]
        if "test" in tables:
            splits["test"] = tables["test"]
        return splits

    def setup(self, stage: str | None = None) -> None:
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        for split in self.splits.values():
            for key, value in split.items():
                split[key] = value.to(device)
        if self.standardize and "train" in self.splits:
            train = self.splits["train"]
            self.input_mean = train["features"].mean(0).cpu()
            self.input_std = train["features"].std(0).nan_to_num(1.0).clamp_min(1e-8).cpu()
            if self.task == "regression":
                self.target_mean = train["target"].mean().cpu()
                self.target_std = train["target"].std().nan_to_num(1.0).clamp_min(1e-8).cpu()

    def teacher(self) -> None:
        """Real data has no known teacher."""
        return None

    def reference_metrics(self, split: str = "test", levels: list[float] | None = None) -> dict[str, float]:
        """Real data has no known Bayes-optimal predictor."""
        return {}
