"""Shared helpers: compose configs the way the entry points do, and run the console scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig

from catbrain.config import compose_config as catbrain_compose

BIN = Path(sys.executable).parent


def compose_config(overrides: list[str], run_dir: Path, config_name: str = "train") -> DictConfig:
    """The entry point's config for ``overrides``, writing into ``run_dir``."""
    return catbrain_compose(overrides, run_dir, config_name)


def run_cli(command: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run a console script the way a user would, capturing its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [str(BIN / command), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture
def quiet_run() -> list[str]:
    """Overrides that keep an in-process run free of progress bars and extra loggers."""
    return ["callbacks=model_checkpoint", "logger=none", "trainer.enable_progress_bar=false", "plots=false"]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> str:
    """The default experiment trained for one epoch on 200 rows: a checkpoint to ask things of."""
    from catbrain.commands.train import train

    run_dir = tmp_path_factory.mktemp("trained")
    small = ["trainer.max_epochs=1", "data.n_train=200", "logger=none", "plots=false", "callbacks=model_checkpoint"]
    train(compose_config([*small, "trainer.enable_progress_bar=false"], run_dir))
    return str(run_dir / "checkpoints/best.ckpt")


def predict_in_process(checkpoint: str, arguments: list[str], capsys) -> tuple[int, str, str]:
    """``catbrain-predict ckpt_path=<checkpoint> <arguments>`` in this process: exit code, stdout, stderr."""
    from catbrain.commands.predict import main

    try:
        main([f"ckpt_path={checkpoint}", *arguments])
        code = 0
    except SystemExit as exited:
        code = exited.code
    out, err = capsys.readouterr()
    return code, out, err
