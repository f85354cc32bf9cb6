"""Experiment tracking: a real run's metrics are read back from what each logger wrote."""

import csv
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catbrain.commands.train import train
from tests.conftest import compose_config

SMALL = ["data.n_train=512", "data.n_val=128", "data.n_test=128", "trainer.max_epochs=3", "callbacks=model_checkpoint",
         "trainer.enable_progress_bar=false"]  # fmt: skip


def test_csv_logger_writes_every_epoch(tmp_path):
    train(compose_config([*SMALL, "logger=csv"], tmp_path))
    with open(tmp_path / "csv/metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows if row["val/loss"]] == ["0", "1", "2"]
    assert any(row["train/loss"] for row in rows) and any(row["test/mse"] for row in rows)


def test_tensorboard_logger_writes_events_that_read_back(tmp_path):
    pytest.importorskip(
        "tensorboard", reason="the tensorboard extra is not installed: pip install catbrain[tensorboard]"
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(compose_config([*SMALL, "logger=tensorboard"], tmp_path))
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"val/loss", "train/loss", "test/mse"} <= tags
    assert len(events.Scalars("val/loss")) == 3
    # The run's pictures are there too, as images of the size the PNG files have.
    images = set(events.Tags()["images"])
    assert images == {"plots/decision_plane", "plots/predicted_vs_true", "plots/learning_curves", "plots/weight_paths"}
    (image,) = events.Images("plots/decision_plane")
    assert image.width > 400 and image.height > 300


@pytest.mark.slow  # MLflow builds its database on first use: about 6 s on a busy 2-core machine
def test_mlflow_logger_keeps_metrics_params_and_files_in_a_local_database(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed: pip install catbrain[mlflow]")
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # the default database is outputs/mlflow.db under the working directory
    run_dir = tmp_path / "runs" / "first"
    metrics = train(compose_config([*SMALL, "logger=mlflow", "name=tiny_mlflow", "optimizer.lr=0.03"], run_dir))

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/outputs/mlflow.db")
    experiment = client.get_experiment_by_name("tiny_mlflow")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "runs/first"
    assert run.data.tags["run_dir"] == str(run_dir)
    assert len(client.get_metric_history(run.info.run_id, "val/loss")) == 3  # one per epoch
    for key, value in metrics.items():  # every metrics.json number, test metrics and references alike
        if isinstance(value, str):  # why training stopped: words, kept as tags
            assert run.data.tags[key] == value, key
            continue
        assert run.data.metrics[key] == pytest.approx(value, rel=1e-6), key
    assert run.data.params["optimizer.lr"] == "0.03" and run.data.params["data.n_train"] == "512"
    assert run.data.params["model._target_"] == "catbrain.models.ThresholdedLinear"

    assert run.info.artifact_uri.startswith(str(tmp_path / "outputs" / "mlartifacts" / "tiny_mlflow"))
    pictures = sorted(p.relative_to(run_dir).as_posix() for p in (run_dir / "plots").glob("*.png"))
    assert pictures and [a.path for a in client.list_artifacts(run.info.run_id, "plots")] == pictures
    for name in ("metrics.json", "config.yaml", "report.md", *pictures):
        downloaded = client.download_artifacts(run.info.run_id, name, str(tmp_path))
        assert Path(downloaded).read_bytes() == (run_dir / name).read_bytes()


def test_mlflow_logger_refuses_a_folder_as_its_database(tmp_path):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed: pip install catbrain[mlflow]")
    from catbrain.errors import UsageError
    from catbrain.run.tracking import mlflow_logger

    with pytest.raises(UsageError, match=r"logger.tracking_uri=.*names a folder"):
        mlflow_logger("x", f"sqlite:///{tmp_path}")


@pytest.mark.slow  # a fresh interpreter importing Lightning
def test_mlflow_is_imported_only_when_chosen(tmp_path):
    # A run with another logger, and checking a config that names MLflow, leave MLflow unimported (about 1 s).
    script = (
        "import sys\n"
        "from catbrain.run import trainer, tracking\n"
        "from catbrain.config import compose_config\n"
        "from catbrain.validation import validate\n"
        f"validate(compose_config(['logger=mlflow'], {str(tmp_path)!r}))\n"
        f"lightning_trainer = trainer.make_trainer(compose_config(['logger=csv'], {str(tmp_path)!r}))\n"
        "tracking.log_files(lightning_trainer, [])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.slow  # two fresh interpreters importing MLflow
def test_parallel_jobs_share_a_new_mlflow_database(tmp_path):
    # Two processes (a joblib sweep's jobs) open the same new database and experiment at the same moment.
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed: pip install catbrain[mlflow]")
    script = (
        "import pathlib, sys, time\n"
        "from catbrain.run.tracking import mlflow_logger\n"
        "pathlib.Path(sys.argv[1] + '.ready').touch()\n"
        "while not pathlib.Path('go').exists(): time.sleep(0.01)\n"
        f"logger = mlflow_logger('parallel', 'sqlite:///{tmp_path}/outputs/mlflow.db', run_dir=sys.argv[1])\n"
        "print(logger.run_id)\n"
    )
    jobs = [subprocess.Popen([sys.executable, "-c", script, name], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for name in ("a", "b")]  # fmt: skip
    while not all((tmp_path / f"{name}.ready").exists() for name in ("a", "b")):
        assert all(job.poll() is None for job in jobs), jobs[0].communicate()[1][-2000:]
        time.sleep(0.01)
    (tmp_path / "go").touch()
    for job in jobs:
        _, stderr = job.communicate(timeout=120)
        assert job.returncode == 0, stderr[-3000:]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/outputs/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("parallel").experiment_id])
    assert sorted(run.info.run_name for run in runs) == ["a", "b"]


@pytest.mark.parametrize(("logger", "module"), [("mlflow", "mlflow"), ("tensorboard", "tensorboard")])
def test_a_logger_whose_extra_is_missing_is_refused_before_any_work(tmp_path, monkeypatch, logger, module):
    import importlib.util

    from catbrain.validation import ConfigError

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real_find_spec(name, *a)
    )
    run_dir = tmp_path / "run"
    with pytest.raises(
        ConfigError, match=rf"needs {module}, which is not installed: pip install 'catbrain\[{logger}\]'"
    ):
        train(compose_config([*SMALL, f"logger={logger}"], run_dir))
    assert not run_dir.exists()
