"""catbrain from Python: ``catbrain.train(...)`` returns a :class:`Run`, ``catbrain.load(path)`` a predictor.

    import catbrain
    run = catbrain.train("experiment=weather_3pm", "optimizer.lr=0.05", run_dir="runs/first")
    run.metrics["test/mse"], run.checkpoint
    brain = catbrain.load(run.checkpoint)
    brain.predict([[0.9, 0.8]])           # rows, a NumPy array, or a pandas DataFrame (a DataFrame back)

A training here is the command's own: the same overrides, the same checks before any work (a bad
value raises :class:`catbrain.errors.ConfigError` or ``UsageError`` with the command's one-line
message), the same run directory. Nothing global is left behind between two trainings: each
composes its config afresh, outside any Hydra application.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Run:
    """A finished training: its ``metrics.json`` as a dict, its folder, its checkpoints and its resolved config."""

    metrics: dict[str, Any]
    run_dir: Path
    config: dict[str, Any] = field(repr=False)

    @property
    def checkpoint(self) -> Path:
        """The best checkpoint (the one tested), for :func:`load`, ``catbrain predict``, eval and export."""
        return self.run_dir / "checkpoints" / "best.ckpt"

    @property
    def last_checkpoint(self) -> Path:
        """The latest state, to resume from (``ckpt_path=...``)."""
        return self.run_dir / "checkpoints" / "last.ckpt"


def default_run_dir() -> Path:
    """``outputs/train/<time>_<pid>`` as the command makes it, with ``_2``, ``_3``... for trainings in the same
    second of one process."""
    base = Path("outputs") / "train" / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{os.getpid()}"
    candidate, number = base, 1
    while candidate.exists():
        number += 1
        candidate = base.with_name(f"{base.name}_{number}")
    return candidate


def train(*overrides: str, run_dir: str | Path | None = None, overwrite: bool = False) -> Run:
    """Train as ``catbrain train <overrides>`` would, into ``run_dir`` (default: a new ``outputs/train/...``).

    A ``run_dir`` that already holds a run is refused unless ``overwrite=True`` (a resume, ``ckpt_path=...``,
    carries on in its own run's folder)."""
    from omegaconf import OmegaConf

    from catbrain.commands.launcher import preflight
    from catbrain.commands.train import prepare_resume
    from catbrain.commands.train import train as train_run
    from catbrain.config import compose_config

    arguments = [str(override) for override in overrides]
    if any(a.startswith(("hydra.run.dir=", "run_dir=")) for a in arguments):
        from catbrain.errors import UsageError

        raise UsageError("give the run's folder as run_dir=..., not as an override")
    given = [f"hydra.run.dir={run_dir}"] if run_dir is not None else []
    added = preflight("train", [*arguments, *given], prepare=prepare_resume)
    resumed = [a.split("=", 1)[1] for a in added if a.startswith("hydra.run.dir=")]  # a resume: its own folder
    added = [a for a in added if not a.startswith("hydra.run.dir=")]
    folder = Path(run_dir) if run_dir is not None else Path(resumed[-1]) if resumed else default_run_dir()
    if not resumed and not overwrite and any((folder / name).exists() for name in ("metrics.json", "checkpoints")):
        from catbrain.errors import UsageError

        raise UsageError(f"run_dir={str(folder)!r} holds a run already; give another, or overwrite=True")
    cfg = compose_config([*arguments, *added], folder)
    metrics = train_run(cfg, overrides=[*arguments, *added])
    config = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"))
    return Run(metrics=dict(metrics), run_dir=folder.resolve(), config=config)  # type: ignore[arg-type]


def load(path: str | Path, trust_model: str | None = None) -> Any:
    """The predictor in a checkpoint (a :class:`catbrain.predictor.Predictor`), every value in the file checked:
    ``.predict(rows)``, ``.feature_names``, ``.metadata()``."""
    from catbrain.predictor import load_predictor

    return load_predictor(str(path), trusted=(trust_model,) if trust_model else ())
