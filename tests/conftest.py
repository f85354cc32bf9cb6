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
