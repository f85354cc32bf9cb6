"""catbrain-train: compose the config, fit, test the best checkpoint, write ``metrics.json``.

catbrain-train                                   # the default experiment, cat_threat
catbrain-train experiment=weather_3pm optimizer.lr=0.05 trainer.max_epochs=30
catbrain-train ckpt_path=outputs/.../checkpoints/last.ckpt   # resume that run
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from catbrain.commands import common, launcher
from catbrain.config import config_dir
from catbrain.errors import UsageError
from catbrain.predictor import read_checkpoint


def train(cfg: DictConfig, overrides: list[str] | None = None, callbacks: Sequence[Any] = ()) -> dict[str, float]:
    """Fit ``cfg.task`` on ``cfg.data``, test the best checkpoint, and return the metrics written.

    ``callbacks`` are Lightning callbacks added to the configured ones (a search's pruning callback).
    """
    from catbrain.predictor.contents import stored_overrides
    from catbrain.run import files, tracking
    from catbrain.run.callbacks import RunRecord, TrainingClock
    from catbrain.run.trainer import build_run, make_trainer, quiet_lightning, threads
    from catbrain.validation import validate

    validate(cfg)
    if cfg.ckpt_path:
        prepare_resume(cfg, read_checkpoint(cfg.ckpt_path))
    quiet_lightning()
    run_dir = Path(cfg.run_dir)
    datamodule, task = build_run(cfg)
    resolved = files.save_config(cfg, run_dir)
    if not common.in_multirun():
        files.point_latest(run_dir)  # outputs/train/latest: the newest run, for the commands that follow
    if cfg.ckpt_path:
        files.keep_earlier_csv_logs(run_dir)
    lightning = make_trainer(cfg)
    tracking.log_config(lightning, resolved)
    clock = TrainingClock()
    stored = stored_overrides(overrides or [])  # the run's own choices, never paths or hydra.*
    lightning.callbacks.extend([clock, RunRecord(resolved, stored), *callbacks])
    with threads(cfg.get("threads", "auto"), task.model):
        metrics, history = fit_and_test(lightning, task, datamodule, cfg.ckpt_path, run_dir)
    metrics.update({"train_seconds": clock.seconds})
    if lightning.is_global_zero:  # one process writes and prints for all of them
        command = launcher.shown_command(overrides)
        report_run(cfg, lightning, task, datamodule, history, metrics, resolved, command)
    return metrics


def fit_and_test(
    lightning: Any, task: Any, datamodule: Any, ckpt_path: str | None, run_dir: Path
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Fit, then test the best checkpoint (and on the shifted split, if any): the metrics, and the fit's history."""
    from catbrain.run import results
    from catbrain.run.stopping import why_stopped

    started = time.perf_counter()
    try:
        lightning.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit:  # Lightning's answer to Ctrl-C: it has stopped cleanly and exits 1
        if lightning.interrupted:
            _interrupted(lightning, run_dir)
        raise
    fit_seconds = time.perf_counter() - started
    stopped, stopped_reason = why_stopped(lightning, task)
    history = list(task.history)  # testing the best checkpoint loads its own (shorter) history
    from pytorch_lightning.callbacks import ModelCheckpoint

    best = next((c.best_model_path for c in lightning.callbacks if isinstance(c, ModelCheckpoint)), "")
    lightning.test(task, datamodule=datamodule, ckpt_path=best or None, verbose=False, weights_only=True)
    metrics = results.collect_metrics(lightning, task, datamodule)
    # The validation metrics of the tested weights (the checkpoint's own history ends with them):
    # what sweeps and searches choose by, so that the test data stays out of every choice.
    tested = next((entry for entry in reversed(task.history) if "val/loss" in entry), {})
    metrics.update({key: value for key, value in tested.items() if key.startswith("val/")})
    metrics.update(results.test_shifted(lightning, task, datamodule))
    epochs, steps = lightning.current_epoch, lightning.global_step
    timing = {"fit_seconds": fit_seconds, "epochs": epochs, "steps": steps}
    return metrics | timing | {"stopped": stopped, "stopped_reason": stopped_reason}, history


def report_run(
    cfg: DictConfig,
    lightning: Any,
    task: Any,
    datamodule: Any,
    history: list[dict[str, float]],
    metrics: dict[str, float],
    resolved: dict[str, Any],
    command: list[str] | None,
    console: bool = True,
) -> None:
    """metrics.json, the pictures, report.md, the summary on the console (unless ``console=False``: a job of a
    stacked group, which the sweep's summary table shows), and the same to the trackers."""
    from catbrain.run import explore, files, plots, report, tracking

    run_dir = Path(cfg.run_dir)
    files.write_metrics(run_dir, metrics)
    title = f"catbrain-train: {run_title(cfg)}"
    pictures = plots.draw_run(task, datamodule, history, run_dir, cfg.name, metrics) if cfg.plots else []
    plots.log_pictures(lightning, pictures)
    page = [explore.write_explore(task.predictor, datamodule, run_dir, title)] if cfg.plots else []
    report.write_report(run_dir, title, resolved, metrics, datamodule.feature_names, pictures, command)
    if console:
        report.print_summary(title, metrics, datamodule.feature_names, run_dir)
    tracking.log_metrics(lightning, metrics)
    written = [run_dir / "metrics.json", run_dir / "config.yaml", run_dir / "report.md", *pictures, *page]
    tracking.log_files(lightning, written, root=run_dir)


def prepare_resume(cfg: DictConfig, checkpoint: dict[str, Any]) -> None:
    """A resume's pre-flight: the checkpoint's model is the one the config builds, its tensors are sound, and what
    Lightning restores (loops, optimizer, callback state) looks like a run of catbrain wrote it."""
    from catbrain.predictor.checkpoint import predictor_from, refusing
    from catbrain.run.resume_state import check_resume_state

    with refusing(cfg.ckpt_path):
        predictor_from(checkpoint, trusted=(str(cfg.model.get("_target_")),))
        check_resume_state(checkpoint, Path(cfg.ckpt_path).resolve().parent)
    data = cfg.get("data") or {}
    if data.get("_target_") == "catbrain.data.CsvDataModule" and not any(
        data.get(key) for key in ("path", "train_path", "test_path")
    ):
        raise UsageError(
            "resuming a run on your own data: give its files again (data.path=... or data.train_path=..., "
            "as in the run's config.yaml); a checkpoint never names paths"
        )


def run_title(cfg: DictConfig) -> str:
    """What a summary is titled: the experiment, or for your own data the file (and the experiment whose
    settings the run took), so a CSV run is not mistaken for the world's."""
    files = [cfg.data.get(key) for key in ("path", "train_path", "test_path") if cfg.data.get(key)]
    return f"{Path(files[0]).name} (experiment {cfg.name})" if files else str(cfg.name)


def _interrupted(trainer: Any, run_dir: Path) -> None:
    """Ctrl-C: say where training stopped and how to go on, and exit 130 (the shell's code for an interrupt)."""
    import sys

    last = run_dir / "checkpoints" / "last.ckpt"
    where = f"interrupted at epoch {trainer.current_epoch}, step {trainer.global_step}"
    then = f"; resume with: catbrain-train ckpt_path={last}" if last.is_file() else "; no checkpoint was saved"
    print(f"catbrain-train: {where}{then}", file=sys.stderr)
    sys.exit(130)


@hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")
def _app(cfg: DictConfig) -> Any:
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task)
    if common.in_multirun():  # a failed job is one line and a row of the sweep's summary; the others go on
        from catbrain.commands.sweeps import run_job

        return run_job("catbrain-train", lambda: train(cfg, overrides=overrides))
    with common.errors_as_one_line("catbrain-train"):
        train(cfg, overrides=overrides)


def main() -> None:
    launcher.launch(_app, "catbrain-train", "train", prepare=prepare_resume)


if __name__ == "__main__":
    main()
