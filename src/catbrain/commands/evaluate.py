"""catbrain-eval: test a checkpoint on freshly generated data and write ``metrics.json``.

    catbrain-eval ckpt_path=outputs/train/.../checkpoints/best.ckpt
    catbrain-eval ckpt_path=... data.seed=7 data.n_test=100000     # new data, same world
    catbrain-eval ckpt_path=... data.world.skew=[4,4]             # a shifted world
    catbrain-eval ckpt_path=... data.shift={skew:[4,4]}           # both: as trained, and shifted
    catbrain-eval ckpt_path=... data=csv data.test_path=mine.csv   # your own test data

The run's own config comes from the checkpoint; overrides change it, not replace it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf

from catbrain.commands import common, launcher
from catbrain.config import config_dir
from catbrain.errors import UsageError

if TYPE_CHECKING:
    from catbrain.predictor import Predictor


def prepare(cfg: DictConfig, checkpoint: dict[str, Any]) -> Predictor:
    """Eval's pre-flight: the checkpoint's predictor, checked, and the config made to fit it.

    The model config becomes the checkpoint's own (an allow-listed class with plain arguments, or
    the class of the model config your command composed); given data (``data=csv``) is read with the
    columns and classes the model was trained on.
    """
    from catbrain.predictor.checkpoint import predictor_from, refusing
    from catbrain.predictor.contents import describe

    with refusing(cfg.ckpt_path):
        described = describe(checkpoint)
        predictor = predictor_from(checkpoint, trusted=(str(cfg.model.get("_target_")),))
    cfg.model = OmegaConf.create({"_target_": described["model_class"], **described["model_arguments"]})
    if cfg.data.get("_target_") == "catbrain.data.CsvDataModule":
        learns_classes = predictor.head.target == "class"
        cfg.data.task = "classification" if learns_classes else "regression"
        if cfg.data.get("test_path"):  # only the given test file: not the files the model was trained on
            cfg.data.path = cfg.data.train_path = None
        for key, value in [("features", predictor.feature_names), ("target", predictor.target_name)]:
            if OmegaConf.is_missing(cfg.data, key):
                cfg.data[key] = value
        if learns_classes:
            cfg.data.class_names = predictor.class_names
    return predictor


def evaluate(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, float]:
    """Test the checkpoint's predictor (``cfg.ckpt_path``) on the configured data, return the metrics written."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from catbrain.commands.train import run_title
    from catbrain.predictor import read_checkpoint
    from catbrain.run import explore, files, plots, report, results
    from catbrain.run.trainer import make_trainer, quiet_lightning
    from catbrain.validation import validate

    quiet_lightning()
    predictor = prepare(cfg, read_checkpoint(cfg.ckpt_path))
    validate(cfg)
    run_dir = Path(cfg.run_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    trained_on = predictor.feature_names
    if datamodule.num_features != len(trained_on):
        raise UsageError(
            f"the checkpoint's model takes {len(trained_on)} features ({', '.join(trained_on)}); "
            f"this data gives {datamodule.num_features} ({', '.join(datamodule.feature_names)})"
        )
    task = instantiate(cfg.task)
    if task.head.kind != predictor.head.kind:
        raise UsageError(
            f"ckpt_path={cfg.ckpt_path!r} holds a {predictor.head.kind} model; the configured task "
            f"{cfg.task._target_} trains {task.head.kind} models"
        )
    task.predictor = predictor
    files.save_config(cfg, run_dir)
    trainer = make_trainer(cfg, with_callbacks=False)
    trainer.test(task, datamodule=datamodule, verbose=False)
    # The closed form belongs to the training rows, which evaluation does not have: the training run reported it.
    metrics = results.collect_metrics(trainer, task, datamodule, closed_form_too=False)
    metrics.update(results.test_shifted(trainer, task, datamodule))
    files.write_metrics(run_dir, metrics)
    title = f"catbrain-eval: {run_title(cfg)}"
    pictures = plots.draw_run(task, datamodule, [], run_dir, cfg.name, metrics) if cfg.plots else []
    if cfg.plots:
        explore.write_explore(predictor, datamodule, run_dir, title)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    report.write_report(run_dir, title, resolved, metrics, datamodule.feature_names, pictures, overrides)
    report.print_summary(title, metrics, datamodule.feature_names, run_dir)
    return metrics


@hydra.main(config_path=config_dir(), config_name="eval", version_base="1.3")
def _app(cfg: DictConfig) -> None:
    with common.errors_as_one_line("catbrain-eval"):
        evaluate(cfg, overrides=launcher.shown_command(None))


def main() -> None:
    launcher.launch(_app, "catbrain-eval", "eval", required=("ckpt_path",), prepare=prepare)


if __name__ == "__main__":
    main()
