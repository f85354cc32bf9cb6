"""Experiment tracking: a real run's metrics are read back from what each logger wrote."""

import csv

import pytest

from catbrain.train import train
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
