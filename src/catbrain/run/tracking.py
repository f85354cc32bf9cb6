"""Experiment tracking beyond what Lightning logs: MLflow beside the run directories, and a run's config,
final numbers and files in the loggers that keep them (MLflow).

Nothing here imports MLflow unless ``logger=mlflow`` is chosen: the functions look at the loggers a
trainer already has, and Lightning's ``MLFlowLogger`` class imports MLflow only when one is made.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from catbrain.errors import UsageError

SQLITE_PREFIX = "sqlite:///"


def mlflow_logger(
    experiment_name: str,
    tracking_uri: str,
    run_dir: str | None = None,
    artifact_location: str | None = None,
    run_name: str | None = None,
    tags: dict[str, Any] | None = None,
    log_model: bool | str = False,
) -> Any:
    """Lightning's ``MLFlowLogger``; a local SQLite store gets its folder made and its artifacts beside it.

    ``tracking_uri`` is a database (``sqlite:////abs/path/mlflow.db``) or a tracking server
    (``http://host:5000``); with a SQLite store and no ``artifact_location``, a new experiment keeps
    its artifacts in ``mlartifacts/<experiment_name>`` beside the database (a server chooses its own).
    The run is tagged with ``run_dir`` and, unless ``run_name`` is given, named after it (relative to
    the working directory): MLflow's own random names repeat in runs seeded alike.
    """
    import importlib.util
    import logging
    import os

    if importlib.util.find_spec("mlflow") is None:
        raise UsageError("logger=mlflow needs MLflow, which is not installed: pip install 'catbrain[mlflow]'")
    if tracking_uri.startswith(SQLITE_PREFIX) and tracking_uri != SQLITE_PREFIX:
        database = Path(tracking_uri.removeprefix(SQLITE_PREFIX))
        if database.is_dir():
            raise UsageError(f"logger.tracking_uri={tracking_uri!r}: names a folder; give a database file")
        database.parent.mkdir(parents=True, exist_ok=True)  # SQLite makes the file, not its folder
        if artifact_location is None:
            artifact_location = str(database.parent.resolve() / "mlartifacts" / experiment_name)
    # The console shows the progress bar and the summary: no notes on creating tables and experiments.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    if tracking_uri.startswith(SQLITE_PREFIX) and tracking_uri != SQLITE_PREFIX:
        _make_database(tracking_uri, Path(tracking_uri.removeprefix(SQLITE_PREFIX)), experiment_name, artifact_location)
    lightning_mlflow = logging.getLogger("pytorch_lightning.loggers.mlflow")
    if _no_creation_note not in lightning_mlflow.filters:
        lightning_mlflow.addFilter(_no_creation_note)
    if run_dir is not None:
        tags = {"run_dir": str(run_dir), **(tags or {})}
        if run_name is None:
            path = Path(run_dir).resolve()
            run_name = str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)
    from pytorch_lightning.loggers import MLFlowLogger

    return MLFlowLogger(
        experiment_name=experiment_name,
        tracking_uri=tracking_uri,
        artifact_location=artifact_location,
        run_name=run_name,
        tags=tags,
        log_model=log_model,
    )


def _make_database(tracking_uri: str, database: Path, experiment_name: str, artifact_location: str | None) -> None:
    """Create MLflow's tables and the experiment one process at a time: two that make the same new database or
    experiment at once (the parallel jobs of a sweep) collide, and one of them fails."""
    try:
        import fcntl
    except ImportError:  # not POSIX: parallel jobs must share a database made beforehand
        return
    from mlflow.tracking import MlflowClient

    with open(database.parent / f".{database.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        client = MlflowClient(tracking_uri)
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            client.create_experiment(experiment_name, artifact_location=artifact_location)
        elif experiment.lifecycle_stage == "deleted":
            raise UsageError(
                f"MLflow experiment {experiment_name!r} was deleted in {tracking_uri}: restore it "
                f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or choose another name=..."
            )


def _no_creation_note(record: Any) -> bool:
    return "not found. Creating it" not in str(record.msg)


def _mlflow_loggers(trainer: Any) -> list[Any]:
    """The trainer's MLflow loggers (none unless MLflow was chosen)."""
    from pytorch_lightning.loggers import MLFlowLogger

    return [logger for logger in trainer.loggers if isinstance(logger, MLFlowLogger)]


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def log_config(trainer: Any, config: Mapping[str, Any]) -> None:
    """Log the run's resolved config as parameters (``optimizer.lr``, ``data.n_train``, ...) to MLflow.

    The task saves no hyperparameters of its own, so Lightning logs none: without this the run's
    settings would be missing from MLflow's run table and comparisons.
    """
    params = {key: value for key, value in _flatten(config).items() if value is not None}
    for logger in _mlflow_loggers(trainer):
        logger.log_hyperparams(params)


def log_metrics(trainer: Any, metrics: Mapping[str, float]) -> None:
    """Log the ``metrics.json`` numbers the loggers have not seen (Bayes-optimal references, weights, timings),
    and its words (why training stopped) as tags.

    Lightning already logged the test metrics at the last step; the rest are logged there too,
    so that a run's final numbers can be compared across runs in MLflow.
    """
    for logger in _mlflow_loggers(trainer):
        for key, value in metrics.items():
            if isinstance(value, str):
                logger.experiment.set_tag(logger.run_id, key, value)
        logged = logger.experiment.get_run(logger.run_id).data.metrics
        missing = {
            key: float(value)
            for key, value in metrics.items()
            if key not in logged and isinstance(value, (int, float)) and math.isfinite(value)
        }
        if missing:
            logger.log_metrics(missing, step=trainer.global_step)


def log_files(trainer: Any, paths: Iterable[str | Path], root: str | Path | None = None) -> None:
    """Store the run's files (``metrics.json``, ``config.yaml``, pictures, ...) with every logger that keeps files.

    MLflow gets each file as an artifact of the run, in the folder it has under ``root`` (the run
    directory: ``plots/x.png`` stays ``plots/x.png``); loggers that write into the run directory
    (CSV, TensorBoard) already sit beside the files and are skipped. Missing files are skipped too.
    """
    files = [Path(path) for path in paths if Path(path).is_file()]
    for logger in _mlflow_loggers(trainer):
        for file in files:
            folder = file.resolve().parent
            inside = root is not None and folder.is_relative_to(Path(root).resolve())
            artifact_path = folder.relative_to(Path(root).resolve()).as_posix() if inside else None
            logger.experiment.log_artifact(logger.run_id, str(file), artifact_path if artifact_path != "." else None)
