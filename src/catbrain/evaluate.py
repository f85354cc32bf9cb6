"""catbrain-eval: test a checkpoint on freshly generated data and write ``metrics.json``.

    catbrain-eval ckpt_path=outputs/train/.../checkpoints/best.ckpt
    catbrain-eval ckpt_path=... data.seed=7 data.n_test=100000     # new data, same world
    catbrain-eval ckpt_path=... data.world.skew=[4,4]             # a shifted world

The run's own config comes from the checkpoint; overrides change it, not replace it.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from catbrain import _cli
from catbrain.config import config_dir


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Load the weights of ``cfg.ckpt_path`` into the configured task, test it, return the metrics written."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from catbrain import runs

    checkpoint = _cli.load_checkpoint(cfg.ckpt_path)
    runs.quiet_lightning()
    run_dir = Path(cfg.run_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    task = instantiate(cfg.task)
    try:
        task.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise _cli.UsageError(
            f"ckpt_path={cfg.ckpt_path!r} does not fit the configured model {cfg.model._target_}: {error}"
        ) from error
    runs.save_config(cfg, run_dir)
    trainer = runs.make_trainer(cfg, with_callbacks=False)
    trainer.test(task, datamodule=datamodule, verbose=False)
    metrics = runs.collect_metrics(trainer, task, datamodule)
    runs.write_metrics(run_dir, metrics)
    runs.print_summary(f"catbrain-eval: {cfg.name}", metrics, datamodule.feature_names, run_dir)
    return metrics


@hydra.main(config_path=config_dir(), config_name="eval", version_base="1.3")
def _app(cfg: DictConfig) -> None:
    with _cli.errors_as_one_line("catbrain-eval"):
        evaluate(cfg)


def main() -> None:
    _cli.launch(_app, "catbrain-eval", "eval", required=("ckpt_path",))


if __name__ == "__main__":
    main()
