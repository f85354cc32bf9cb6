"""Each run draws the pictures that apply to it and gathers them with its numbers in report.md."""

from __future__ import annotations

import json
import re

import pytest
import torch
from matplotlib.image import imread

from catbrain.commands.train import train
from catbrain.models import ThresholdedLinear
from catbrain.run import plots
from catbrain.tasks import ThresholdTask
from tests.conftest import compose_config, run_cli

SMALL = ["data.n_train=512", "data.n_val=128", "data.n_test=512", "trainer.max_epochs=3"]
QUIET = ["callbacks=model_checkpoint", "logger=none", "trainer.enable_progress_bar=false"]


def picture_names(run_dir) -> set[str]:
    return {path.name for path in (run_dir / "plots").glob("*")}


def assert_png(path) -> None:
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 250 and image.shape[1] > 400
    assert image[..., :3].std() > 0.05  # not a blank canvas


@pytest.mark.parametrize(
    ("experiment", "expected"),
    [
        ("cat_threat", {"decision_plane.png", "predicted_vs_true.png", "learning_curves.png", "weight_paths.png"}),
        ("cat_softmax", {"decision_plane.png", "learning_curves.png"}),
        ("weather_3pm", {"predicted_vs_true.png", "learning_curves.png", "weight_paths.png"}),
    ],
)
def test_each_run_draws_the_pictures_that_apply(tmp_path, experiment, expected):
    metrics = train(compose_config([f"experiment={experiment}", *QUIET, *SMALL], tmp_path))
    assert picture_names(tmp_path) == expected  # and no temporary files left behind
    assert (tmp_path / "explore.html").is_file()
    assert "[explore.html](explore.html)" in (tmp_path / "report.md").read_text()
    for name in expected:
        assert_png(tmp_path / "plots" / name)
    report = (tmp_path / "report.md").read_text()
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", report):
        assert (tmp_path / link).is_file(), link
    assert len(re.findall(r"!\[", report)) == len(expected)
    first_metric = sorted(k for k in metrics if k.startswith("test/") and "bayes" not in k and "confusion" not in k)[0]
    assert f"| {first_metric.removeprefix('test/')} | {metrics[first_metric]:.4f} |" in report
    assert "```yaml" in report and f"name: {experiment}" in report


def test_report_puts_learned_closed_form_and_teacher_weights_side_by_side(tmp_path):
    metrics = train(compose_config([*QUIET, *SMALL], tmp_path))
    report = (tmp_path / "report.md").read_text()
    assert "| | learned | closed form | teacher |" in report.replace("|  |", "| |")
    row = f"| hardness | {metrics['weight/hardness']:+.4f} | {metrics['closed_form_weight/hardness']:+.4f} | +1.0000 |"
    assert row in report
    assert "hardness + 1.000 sharpness = 1.250" in report  # the teacher's boundary between ignore and run away


def test_decision_grid_is_the_models_decision():
    model = ThresholdedLinear(2, thresholds=(-0.25, 0.25))
    with torch.no_grad():
        model.score_layer.weight.fill_(1.0)
        model.score_layer.bias.fill_(-1.0)
    task = ThresholdTask(model, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    xs, ys, regions = plots.decision_grid(task, torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0]), steps=11)
    assert regions[0, 0] == 0 and regions[10, 10] == 2 and regions[5, 5] == 1  # (0, 0), (1, 1), (0.5, 0.5)
    assert regions[0, 10] == 1  # hardness 1, sharpness 0: score 0, ignore
    assert torch.equal(
        regions, model.decision(torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)).reshape(11, 11)
    )


def test_learning_curves_follow_the_epochs_and_survive_a_resume(tmp_path):
    train(compose_config([*QUIET, *SMALL, "trainer.max_epochs=2"], tmp_path))
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    history = checkpoint["catbrain_history"]
    assert [(entry["epoch"], "val/loss" in entry, "train/loss" in entry) for entry in history] == [
        (-1, False, False),  # the weights before training
        (0, True, False),
        (0, False, True),
        (1, True, False),
        (1, False, True),
    ]
    # The path's last point is the checkpoint's own weight.
    weight = checkpoint["state_dict"]["predictor.model.score_layer.weight"][0, 0].item()
    assert [e["weight/hardness"] for e in history if "weight/hardness" in e][-1] == pytest.approx(weight)
    assert history[0]["weight/hardness"] != pytest.approx(weight, abs=0.01)
    resumed = compose_config(
        [*QUIET, *SMALL, "trainer.max_epochs=4", f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}"], tmp_path
    )
    train(resumed)
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert [entry["epoch"] for entry in checkpoint["catbrain_history"] if "val/loss" in entry] == [0, 1, 2, 3]


def test_plots_false_draws_nothing_but_still_reports(tmp_path):
    train(compose_config([*QUIET, *SMALL, "plots=false"], tmp_path))
    assert not (tmp_path / "plots").exists() and not (tmp_path / "explore.html").exists()
    assert "## test metrics" in (tmp_path / "report.md").read_text()


def test_eval_draws_and_reports_on_its_own_data(tmp_path):
    overrides = ["experiment=cat_softmax", *QUIET, *SMALL]
    train(compose_config(overrides, tmp_path / "train"), overrides=overrides)  # as the command line records them
    result = run_cli(
        "catbrain-eval",
        f"ckpt_path={tmp_path / 'train' / 'checkpoints' / 'best.ckpt'}",
        "data.shift={skew:[4,4]}",
        f"hydra.run.dir={tmp_path / 'eval'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert picture_names(tmp_path / "eval") == {"decision_plane.png"}
    assert (tmp_path / "eval" / "explore.html").is_file()
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    report = (tmp_path / "eval" / "report.md").read_text()
    assert (
        f"| acc | {metrics['test/acc']:.4f} | {metrics['test/bayes_acc']:.4f} | {metrics['shift/acc']:.4f} |" in report
    )
    assert "shifted test confusion matrix" in report
