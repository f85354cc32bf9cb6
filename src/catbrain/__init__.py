"""catbrain: learn prediction models from data, from a cat's threat score to tomorrow's weather.

Importing the package is cheap; the heavy parts (Lightning, the tasks) load when used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from catbrain.commands.api import Run
    from catbrain.predictor import Predictor

__version__ = "0.1.0"
__all__ = ["Run", "__version__", "load", "train"]


def train(*overrides: str, run_dir: str | Path | None = None, overwrite: bool = False) -> Run:
    """Train as ``catbrain train <overrides>`` would; a :class:`~catbrain.commands.api.Run` (``.metrics``,
    ``.run_dir``, ``.checkpoint``, ``.config``). See :mod:`catbrain.commands.api`."""
    from catbrain.commands.api import train as train_run

    return train_run(*overrides, run_dir=run_dir, overwrite=overwrite)


def load(path: str | Path, trust_model: str | None = None) -> Predictor:
    """The predictor in a checkpoint: ``.predict(rows | array | DataFrame)``, ``.feature_names``, ``.metadata()``."""
    from catbrain.commands.api import load as load_predictor

    return load_predictor(path, trust_model)


def __getattr__(name: str) -> Any:
    if name == "Run":  # the class itself, imported only when asked for
        from catbrain.commands.api import Run

        return Run
    raise AttributeError(f"module 'catbrain' has no attribute {name!r}")
