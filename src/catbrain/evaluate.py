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

import hydra
from omegaconf import DictConfig, OmegaConf

from catbrain import _cli
from catbrain.config import config_dir


def use_checkpoint_columns(cfg: DictConfig, info: dict) -> None:
    """Given data (``data=csv data.test_path=...``) is read with the columns and classes the model was trained on."""
    cfg.data.task = "classification" if info["kind"] == "classification" else "regression"
    if cfg.data.get("test_path"):  # only the given test file: not the files the model was trained on
        cfg.data.path = cfg.data.train_path = None
    for key, value in [("features", info["feature_names"]), ("target", info["target_name"])]:
        if OmegaConf.is_missing(cfg.data, key):
            cfg.data[key] = value
    if info.get("class_names") and cfg.data.task == "classification":
        cfg.data.class_names = info["class_names"]


def evaluate(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, float]:
    """Load the weights of ``cfg.ckpt_path`` into the configured task, test it, return the metrics written."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from catbrain import runs
    from catbrain.validation import validate

    runs.quiet_lightning()
    checkpoint = _cli.load_checkpoint(cfg.ckpt_path)
    # The model is the checkpoint's own: its weights fit it whatever the data config says now.
    cfg.model = OmegaConf.create(checkpoint["catbrain"]["config"]["model"])
    validate(cfg)
    if cfg.data._target_ == "catbrain.data.CsvDataModule":
        use_checkpoint_columns(cfg, checkpoint["catbrain"])
    run_dir = Path(cfg.run_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    trained_on = list(checkpoint["catbrain"]["feature_names"])
    if datamodule.num_features != len(trained_on):
        raise _cli.UsageError(
            f"the checkpoint's model takes {len(trained_on)} features ({', '.join(trained_on)}); "
            f"this data gives {datamodule.num_features} ({', '.join(datamodule.feature_names)})"
        )
    task = instantiate(cfg.task)
    try:
        task.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise _cli.UsageError(
            f"ckpt_path={cfg.ckpt_path!r} does not fit the configured task {cfg.task._target_}: {error}"
        ) from error
    runs.save_config(cfg, run_dir)
    trainer = runs.make_trainer(cfg, with_callbacks=False)
    trainer.test(task, datamodule=datamodule, verbose=False)
    # The closed form belongs to the training rows, which evaluation does not have: the training run reported it.
    metrics = runs.collect_metrics(trainer, task, datamodule, closed_form_too=False)
    metrics.update(runs.test_shifted(trainer, task, datamodule))
    runs.write_metrics(run_dir, metrics)
    title = f"catbrain-eval: {cfg.name}"
    from catbrain import plots, report

    pictures = plots.draw_run(task, datamodule, [], run_dir, cfg.name, metrics) if cfg.plots else []
    resolved = OmegaConf.to_container(cfg, resolve=True)
    report.write_report(run_dir, title, resolved, metrics, datamodule.feature_names, pictures, overrides)
    runs.print_summary(title, metrics, datamodule.feature_names, run_dir)
    return metrics


@hydra.main(config_path=config_dir(), config_name="eval", version_base="1.3")
def _app(cfg: DictConfig) -> None:
    with _cli.errors_as_one_line("catbrain-eval"):
        evaluate(cfg, overrides=_cli.shown_command(None))


def main() -> None:
    _cli.launch(_app, "catbrain-eval", "eval", required=("ckpt_path",))


if __name__ == "__main__":
    main()
