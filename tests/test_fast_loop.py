"""Several optimizer steps per Lightning call change the cost, never the result or Lightning's behaviour."""

import csv

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from catbrain.commands.train import train
from catbrain.data import IndexBatchSampler
from catbrain.predictor import read_checkpoint as load_checkpoint
from tests.conftest import compose_config

SMALL = ["experiment=weather_3pm", "data.n_train=640", "data.n_val=128", "data.n_test=128", "data.batch_size=64",
         "trainer.max_epochs=3", "callbacks=model_checkpoint"]  # fmt: skip


def trained(tmp_path, name, *overrides, logger="none"):
    run_dir = tmp_path / name
    config = compose_config([*SMALL, f"logger={logger}", "trainer.enable_progress_bar=false", *overrides], run_dir)
    metrics = train(config)
    return metrics, load_checkpoint(run_dir / "checkpoints/last.ckpt"), run_dir


def same_weights(first, second):
    assert first.keys() == second.keys()
    return all(torch.equal(first[key], second[key]) for key in first)


@pytest.mark.parametrize("scheduler", ["none", "cosine", "plateau"])
def test_many_steps_per_call_give_the_weights_of_one_step_per_call(tmp_path, scheduler):
    _, one, _ = trained(tmp_path, "one", "task.steps_per_call=1", f"scheduler={scheduler}")
    _, many, _ = trained(tmp_path, "many", "task.steps_per_call=4", f"scheduler={scheduler}")
    assert one["global_step"] == many["global_step"] == 30
    assert same_weights(one["state_dict"], many["state_dict"])


def test_the_default_loop_equals_a_hand_written_pytorch_loop(tmp_path):
    cat = ["experiment=cat_threat", "data.n_train=640", "data.batch_size=64", "optimizer=sgd", "optimizer.lr=0.1",
           "optimizer.momentum=0.0"]  # fmt: skip
    config = compose_config([*SMALL, *cat, "logger=none"], tmp_path / "hand")
    assert config.task.steps_per_call > 1  # the default: several steps per call
    pl.seed_everything(config.seed)
    datamodule, task = instantiate(config.data), instantiate(config.task)
    datamodule.setup("fit")
    model = task.model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    features, score = datamodule.splits["train"]["features"], datamodule.splits["train"]["score"]
    sampler = IndexBatchSampler(len(features), 64, shuffle=True, seed=config.data.seed)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for index in sampler:
            loss = torch.nn.functional.mse_loss(model(features[index]), score[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    _, catbrain_run, _ = trained(tmp_path, "catbrain", *cat)
    hand = {f"predictor.model.{key}": value for key, value in model.state_dict().items()}
    state = catbrain_run["state_dict"].items()
    assert same_weights(hand, {k: v for k, v in state if k.startswith("predictor.model.")})


@pytest.mark.parametrize("steps_per_call", [1, 4, 16])
def test_max_steps_is_honoured_exactly(tmp_path, steps_per_call):
    metrics, last, _ = trained(tmp_path, "run", f"task.steps_per_call={steps_per_call}", "trainer.max_steps=13")
    assert metrics["steps"] == last["global_step"] == 13


def validation_losses(run_dir):
    with open(run_dir / "csv/metrics.csv") as file:
        return [(row["step"], float(row["val/loss"])) for row in csv.DictReader(file) if row["val/loss"]]


def test_val_check_interval_counts_optimizer_steps(tmp_path):
    common = ["trainer.val_check_interval=4", "trainer.max_epochs=2"]
    *_, one = trained(tmp_path, "one", "task.steps_per_call=1", *common, logger="csv")
    *_, many = trained(tmp_path, "many", "task.steps_per_call=2", *common, logger="csv")
    # Validation after optimizer steps 4 and 8 of each 10-step epoch, with the same losses either way
    # (up to summation order: evaluation batches are bigger with more steps per call).
    assert [step for step, _ in validation_losses(one)] == [step for step, _ in validation_losses(many)]
    assert [step for step, _ in validation_losses(one)] == ["3", "7", "13", "17"]
    assert [loss for _, loss in validation_losses(many)] == pytest.approx([loss for _, loss in validation_losses(one)])


def test_checkpoints_every_n_steps_with_several_steps_per_call(tmp_path):
    *_, run_dir = trained(tmp_path, "run", "task.steps_per_call=4", "callbacks.last_checkpoint.every_n_train_steps=6",
                          "trainer.max_steps=16")  # fmt: skip
    assert load_checkpoint(run_dir / "checkpoints/last.ckpt")["global_step"] == 16
