"""The configs travel inside the wheel: an installed catbrain trains from any directory."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_the_configs_and_trains_outside_the_repository(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("catbrain-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "catbrain/conf/train.yaml" in names and "catbrain/conf/experiment/cat_threat.yaml" in names

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import catbrain.config as c; print(c.config_dir())"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.strip() == str(site / "catbrain" / "conf")
    result = subprocess.run(
        [sys.executable, "-m", "catbrain.commands.train", "data.n_train=256", "data.n_val=64", "data.n_test=64",
         "trainer.max_epochs=1", "hydra.run.dir=run"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (elsewhere / "run" / "metrics.json").is_file()


@pytest.mark.slow
def test_a_fresh_virtual_environment_installs_the_wheel_and_trains(tmp_path):
    """The wheel's declared dependencies are enough: nothing from this checkout or its environment leaks in."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(REPO)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = wheels.glob("catbrain-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    # The CPU build of torch first (the plain requirement would fetch the much larger CUDA build).
    installed = subprocess.run([*pip, "torch==" + torch_version()], capture_output=True, text=True)
    if installed.returncode != 0:
        pytest.skip(f"torch {torch_version()} cannot be installed here: {installed.stderr[-300:]}")
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [str(venv / "bin" / "catbrain-train"), "data.n_train=256", "data.n_val=64", "data.n_test=64",
         "trainer.max_epochs=1", "hydra.run.dir=run"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (elsewhere / "run" / "metrics.json").is_file() and (elsewhere / "run/checkpoints/best.ckpt").is_file()


def torch_version() -> str:
    import torch

    return torch.__version__.split("+")[0]
