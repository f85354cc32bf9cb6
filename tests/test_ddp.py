"""Data-parallel training on 2 CPU processes: disjoint shards, and the weights of one process with the global batch."""

import os
import subprocess
from pathlib import Path

import torch

from catbrain.predictor import read_checkpoint as load_checkpoint
from tests.conftest import BIN

REPO = Path(__file__).resolve().parents[1]
COMMON = ["experiment=weather_3pm", "data.n_train=1024", "data.n_val=128", "data.n_test=128", "trainer.max_epochs=2",
          "callbacks=model_checkpoint", "logger=none", "task.steps_per_call=4"]  # fmt: skip


def train(*arguments: str, cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([str(BIN / "catbrain-train"), *COMMON, *arguments], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_processes_take_the_steps_of_one_with_the_global_batch(tmp_path):
    record = ["+callbacks.record._target_=tests.helpers.RecordBatches", f"+callbacks.record.prefix={tmp_path}/rank"]
    train("trainer=ddp_cpu", "data.batch_size=32", *record, "hydra.run.dir=ddp", cwd=tmp_path)
    train("data.batch_size=64", "hydra.run.dir=single", cwd=tmp_path)

    # Each process saw its own half of the training data, and together all of it.
    first, second = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert len(first) == len(second) == 512
    everything = torch.cat([first, second])
    assert len(torch.unique(everything, dim=0)) == 1024

    ddp = load_checkpoint(tmp_path / "ddp/checkpoints/last.ckpt")
    single = load_checkpoint(tmp_path / "single/checkpoints/last.ckpt")
    assert ddp["global_step"] == single["global_step"] == 2 * 1024 // 64
    for key, value in single["state_dict"].items():
        assert torch.allclose(ddp["state_dict"][key], value, atol=1e-6), key
    assert (tmp_path / "ddp/metrics.json").is_file()
