"""Scale-out: the SLURM launcher's config, a submitit sweep, and DDP processes started by torchrun or by SLURM."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl

from catbrain.config import config_dir
from catbrain.predictor import read_checkpoint as load_checkpoint
from tests.conftest import BIN, run_cli

REPO = Path(__file__).resolve().parents[1]
SMALL = ["data.n_train=512", "data.n_val=128", "data.n_test=128", "data.batch_size=32", "trainer.max_epochs=2",
         "callbacks=model_checkpoint", "logger=none", "trainer.enable_progress_bar=false"]  # fmt: skip
SUBMITIT = "the slurm extra is not installed: pip install catbrain[slurm]"


def hydra_config(overrides: list[str]):
    """The whole config of ``catbrain-train -m OVERRIDES``, Hydra's own part included."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


class EnvironmentProbe(pl.Callback):
    """Write the cluster environment through which Lightning found this process's rank to ``<prefix><rank>``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def on_train_start(self, trainer, pl_module) -> None:
        Path(f"{self.prefix}{trainer.global_rank}").write_text(type(trainer.strategy.cluster_environment).__name__)


def probe(tmp_path: Path) -> list[str]:
    return [f"+callbacks.probe._target_={__name__}.EnvironmentProbe", f"+callbacks.probe.prefix={tmp_path}/rank"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_slurm_launcher_asks_for_one_task_per_gpu_on_the_trainers_nodes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason=SUBMITIT)
    from hydra.utils import instantiate

    single = hydra_config(["hydra/launcher=slurm"]).hydra.launcher
    assert single._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (single.nodes, single.gpus_per_node, single.tasks_per_node, single.timeout_min) == (1, 1, 1, 60)

    ddp = hydra_config(["hydra/launcher=slurm", "trainer=ddp", "trainer.num_nodes=2", "hydra.launcher.gpus_per_node=4"])
    assert (ddp.hydra.launcher.nodes, ddp.hydra.launcher.tasks_per_node) == (2, 4)
    assert (ddp.trainer.strategy, ddp.trainer.devices) == ("ddp", -1)  # all the GPUs SLURM gives each node
    launcher = instantiate(ddp.hydra.launcher)  # builds the launcher; nothing is submitted
    assert launcher.params["nodes"] == 2 and launcher.params["gpus_per_node"] == 4
    assert launcher.params["submitit_folder"].endswith("/.submitit/%j")


@pytest.mark.slow  # two jobs, each a fresh process importing Lightning: about 30 s here
def test_submitit_local_sweep_runs_each_job_in_its_own_directory(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason=SUBMITIT)
    result = run_cli("catbrain-train", "-m", "hydra/launcher=submitit_local", "hydra.sweep.dir=sweep", *SMALL,
                     "optimizer.lr=0.01,0.05", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for job, lr in [("0", 0.01), ("1", 0.05)]:
        assert json.loads((tmp_path / "sweep" / job / "metrics.json").read_text())["test/mse"] > 0
        assert f"lr: {lr}" in (tmp_path / "sweep" / job / "config.yaml").read_text()
    assert (tmp_path / "sweep/.submitit").is_dir()


def assert_one_ddp_run(run_dir: Path, environment: str) -> None:
    """Two processes, started from outside and found by Lightning's ``environment``, trained one run with the
    steps of the global batch of 64."""
    assert [(run_dir.parent / f"rank{rank}").read_text() for rank in (0, 1)] == [environment, environment]
    assert (run_dir / "metrics.json").is_file()
    assert load_checkpoint(run_dir / "checkpoints/last.ckpt")["global_step"] == 2 * 512 // 64
    assert "MEMBER: 2/2" in (run_dir / "train.log").read_text()


@pytest.mark.slow  # two processes importing Lightning
def test_torchrun_starts_the_processes_and_lightning_joins_them(tmp_path):
    command = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "catbrain.commands.train",
               "trainer=ddp_cpu", *SMALL, *probe(tmp_path), "hydra.run.dir=run"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_one_ddp_run(tmp_path / "run", "TorchElasticEnvironment")
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == ["run"]  # no process made a directory of its own


@pytest.mark.slow  # two processes importing Lightning
def test_slurm_tasks_each_run_the_job_and_lightning_joins_them(tmp_path):
    # What srun does for a job of 2 tasks on one node (submitit's tasks_per_node=2): start the same command
    # twice with SLURM's variables; Lightning reads its rank from them and starts no processes itself.
    slurm = {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1", "SLURM_NODEID": "0",
             "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "train", "SLURM_NODELIST": "127.0.0.1",
             "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}  # fmt: skip
    command = [
        sys.executable,
        "-m",
        "catbrain.commands.train",
        "trainer=ddp_cpu",
        *SMALL,
        *probe(tmp_path),
        "hydra.run.dir=run",
    ]
    tasks = [
        subprocess.Popen(
            command,
            cwd=tmp_path,
            env={**os.environ, **slurm, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    for task in tasks:
        _, stderr = task.communicate(timeout=600)
        assert task.returncode == 0, stderr[-3000:]
    assert_one_ddp_run(tmp_path / "run", "SLURMEnvironment")
