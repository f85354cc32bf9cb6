"""The ideas of the book's chapter 1 that the experiments show: each test fails if its idea stops working."""

from __future__ import annotations

import json
import math

import pytest
import torch

from catbrain.commands.train import train
from catbrain.data import WorldDataModule
from catbrain.models import Linear, ThresholdedLinear
from catbrain.models.thresholded import Ordered
from catbrain.run import results
from catbrain.tasks import ClassificationTask, OrdinalTask
from catbrain.worlds import CatWorld, LionWorld, WeatherWorld
from tests.conftest import compose_config, run_cli

SMALL_CAT = ["data.n_train=3000", "data.n_val=500", "data.n_test=3000"]


def fit(experiment: str, tmp_path, quiet_run, *overrides: str) -> dict[str, float]:
    return train(compose_config([f"experiment={experiment}", *quiet_run, *overrides], tmp_path))


# Learnable thresholds ---------------------------------------------------------------------------


def test_ordered_parametrization_keeps_any_raw_values_in_order():
    torch.manual_seed(0)
    ordered = Ordered()
    for _ in range(100):
        thresholds = ordered(torch.randn(4) * 10)
        assert (thresholds.diff() > 0).all()
    given = torch.tensor([-1.0, 0.5, 0.75])
    assert torch.allclose(ordered(ordered.right_inverse(given)), given)


def test_learned_thresholds_are_parameters_and_survive_a_state_dict_round_trip():
    model = ThresholdedLinear(2, thresholds=(-1.0, 1.0), learn_thresholds=True)
    assert model.bias.item() == 0 and model.score_layer.bias is None
    assert any(name.endswith("thresholds.original") for name, _ in model.named_parameters())
    with torch.no_grad():
        model.parametrizations.thresholds.original.copy_(torch.tensor([0.3, -2.0]))
    again = ThresholdedLinear(2, thresholds=(-1.0, 1.0), learn_thresholds=True)
    again.load_state_dict(model.state_dict())
    assert torch.equal(again.thresholds, model.thresholds) and model.thresholds[0] < model.thresholds[1]


def test_ordinal_probabilities_are_the_cumulative_link_model():
    model = ThresholdedLinear(1, thresholds=(-0.5, 0.5), learn_thresholds=True)
    task = OrdinalTask(model, optimizer=lambda p: torch.optim.SGD(p, lr=0.1), link="probit")
    score = torch.tensor([-3.0, 0.0, 0.2, 3.0])
    probabilities = task.class_probabilities(score)
    assert torch.allclose(probabilities.sum(-1), torch.ones(4))
    normal = torch.distributions.Normal(0.0, 1.0)
    expected_ignore = normal.cdf(0.5 - score) - normal.cdf(-0.5 - score)
    assert torch.allclose(probabilities[:, 1], expected_ignore, atol=1e-6)
    with pytest.raises(ValueError, match="task.link='cloglog'"):
        OrdinalTask(model, optimizer=lambda p: torch.optim.SGD(p, lr=0.1), link="cloglog")
    with pytest.raises(ValueError, match="learn_thresholds=true"):
        OrdinalTask(ThresholdedLinear(1), optimizer=lambda p: torch.optim.SGD(p, lr=0.1))


def test_ordinal_task_learns_ordered_thresholds_and_the_teachers_boundaries(tmp_path, quiet_run):
    metrics = fit("cat_ordinal", tmp_path, quiet_run)
    # Started at (-1, +1); learned from decisions alone, in order, far from where they began.
    low, high = metrics["threshold/approach-ignore"], metrics["threshold/ignore-run_away"]
    assert low < high and abs(low + 1) > 1 and abs(high - 1) > 1
    assert metrics["test/acc"] >= metrics["test/bayes_acc"] - 0.01
    for pair in ("approach-ignore", "ignore-run_away"):
        for key in ("sharpness", "offset"):
            learned, taught = metrics[f"boundary/{pair}/{key}"], metrics[f"teacher_boundary/{pair}/{key}"]
            assert learned == pytest.approx(taught, abs=0.05), (pair, key)
    assert "closed_form_bias" not in metrics  # least squares on class indices would mean nothing


def test_predict_names_the_ordinal_decision_with_its_learned_thresholds(tmp_path, quiet_run):
    fit("cat_ordinal", tmp_path, quiet_run, *SMALL_CAT, "trainer.max_epochs=3")
    result = run_cli(
        "catbrain-predict",
        f"ckpt_path={tmp_path / 'checkpoints' / 'best.ckpt'}",
        "input=[[0.95, 0.9]]",
        "format=json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["prediction"] == "run_away"
    thresholds = [margin["threshold"] for margin in row["margins"].values()]
    assert list(row["margins"]) == ["approach|ignore", "ignore|run_away"] and thresholds[0] < thresholds[1]
    assert thresholds != [-1.0, 1.0]


def test_softmax_boundaries_are_where_neighbouring_logits_meet():
    model = Linear(2, 3)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-2.0, -2.0], [0.0, 0.0], [2.0, 2.0]]))
        model.bias.copy_(torch.tensor([1.5, 0.0, -2.5]))
    task = ClassificationTask(model, optimizer=lambda p: torch.optim.SGD(p, lr=0.1), class_names=["a", "b", "c"])
    (first, c_first), (second, c_second) = results.boundary_lines(task)
    # a | b: -2h - 2s + 1.5 = 0  <=>  h + s = 0.75;   b | c: 2h + 2s - 2.5 = 0  <=>  h + s = 1.25
    assert results.line_metrics("l", first, c_first, ["h", "s"]) == pytest.approx(
        {"l/h": 1, "l/s": 1, "l/offset": 0.75}
    )
    assert results.line_metrics("l", second, c_second, ["h", "s"]) == pytest.approx(
        {"l/h": 1, "l/s": 1, "l/offset": 1.25}
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["experiment=cat_ordinal", "model.learn_thresholds=false"], "learn_thresholds=true"),
        (["model.learn_thresholds=true"], "needs task=ordinal"),
    ],
)
def test_thresholds_and_tasks_that_do_not_fit_are_refused_in_one_line(tmp_path, overrides, message):
    result = run_cli("catbrain-train", *overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# Linear vs nonlinear ------------------------------------------------------------------------------


def test_lopsided_cat_fears_hard_blunt_and_sharp_soft_objects():
    straight, curved = CatWorld(noise_std=0.0), CatWorld(noise_std=0.0, lopsided_fear=1.0)
    objects = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.2]])
    assert straight.bayes_decision(objects).tolist() == [1, 1, 1, 0]
    assert curved.bayes_decision(objects).tolist() == [2, 2, 1, 0]
    assert curved.teacher() is None and curved.boundaries() is None
    assert straight.boundaries()[1][1] == pytest.approx(1.25)


def test_mlp_beats_the_linear_classifier_on_the_curved_cat(tmp_path, quiet_run):
    small = [*SMALL_CAT, "trainer.max_epochs=15"]
    linear = fit("cat_nonlinear_linear", tmp_path / "linear", quiet_run, *small)
    mlp = fit("cat_nonlinear_mlp", tmp_path / "mlp", quiet_run, *small, "optimizer.lr=0.02")
    assert linear["test/acc"] <= linear["test/bayes_acc"] - 0.08  # no straight line follows a parabola
    assert mlp["test/acc"] >= linear["test/acc"] + 0.07
    assert mlp["test/acc"] >= mlp["test/bayes_acc"] - 0.03


@pytest.mark.slow
def test_shipped_curved_cat_experiments_reach_what_the_readme_says(tmp_path, quiet_run):
    linear = fit("cat_nonlinear_linear", tmp_path / "linear", quiet_run)
    mlp = fit("cat_nonlinear_mlp", tmp_path / "mlp", quiet_run)
    assert mlp["test/acc"] >= mlp["test/bayes_acc"] - 0.01
    assert linear["test/acc"] <= linear["test/bayes_acc"] - 0.08


# The lion -------------------------------------------------------------------------------------------


def test_lion_leap_is_the_physics():
    world = LionWorld(leap_speed=12.0)
    features = world.sample(2000, torch.Generator().manual_seed(0))["features"]
    leap = world.leap(features)
    distance, speed, cos, sin, reaction = features.unbind(-1)
    flight = reaction + leap / 12.0
    prey = torch.stack([distance + speed * flight * cos, speed * flight * sin], -1)
    assert torch.allclose(prey.norm(dim=-1), leap, atol=1e-4)  # the lion lands where the prey is
    still = torch.tensor([[4.0, 0.0, 1.0, 0.0, 0.3]])
    assert world.leap(still).item() == pytest.approx(4.0)  # a prey standing still: leap its distance
    towards = torch.tensor([[4.0, 3.0, -1.0, 0.0, 0.3]])
    away = torch.tensor([[4.0, 3.0, 1.0, 0.0, 0.3]])
    # Head-on: 4 - 3 t = 12 (t - 0.3); running away: 4 + 3 t = 12 (t - 0.3).
    assert world.leap(towards).item() == pytest.approx(12 * (7.6 / 15 - 0.3), rel=1e-5)
    assert world.leap(away).item() == pytest.approx(12 * (7.6 / 9 - 0.3), rel=1e-5)
    with pytest.raises(ValueError, match="leap_speed=4"):
        LionWorld(leap_speed=4.0)


def test_lion_mlp_learns_the_physics_a_line_cannot(tmp_path, quiet_run):
    small = ["data.n_train=8000", "data.n_test=4000", "trainer.max_epochs=12"]
    linear = fit("lion_linear", tmp_path / "linear", quiet_run, *small)
    mlp = fit("lion_mlp", tmp_path / "mlp", quiet_run, *small, "optimizer.lr=0.01")
    assert linear["test/mse"] >= 4 * linear["test/bayes_mse"]
    assert mlp["test/mse"] <= 0.4 * linear["test/mse"]


@pytest.mark.slow
def test_shipped_lion_experiments_reach_what_the_readme_says(tmp_path, quiet_run):
    linear = fit("lion_linear", tmp_path / "linear", quiet_run)
    mlp = fit("lion_mlp", tmp_path / "mlp", quiet_run)
    assert linear["test/mse"] >= 5 * linear["test/bayes_mse"]
    assert mlp["test/mse"] <= 1.2 * mlp["test/bayes_mse"]


# Distribution shift ---------------------------------------------------------------------------------


def test_shifted_split_comes_from_the_shifted_world_and_leaves_the_others_alone():
    def splits(shift):
        datamodule = WorldDataModule(CatWorld(), ["score"], ["hardness", "sharpness"], seed=3, shift=shift)
        datamodule.setup()
        return datamodule

    plain, shifted = splits(None), splits({"skew": [4, 4]})
    for split in ("train", "val", "test"):
        assert torch.equal(plain.splits[split]["features"], shifted.splits[split]["features"])
    assert "shift" not in plain.splits
    # u ** (1 / 4) has mean 0.8: mostly hard, sharp objects.
    assert shifted.splits["shift"]["features"].mean(0).tolist() == pytest.approx([0.8, 0.8], abs=0.01)
    with pytest.raises(ValueError, match=r"data.shift names \['winter'\]"):
        WorldDataModule(WeatherWorld(), ["temp_tomorrow"], list(WeatherWorld.feature_names), shift={"winter": 1})


def test_shifted_metrics_are_computed_on_the_shifted_data(tmp_path, quiet_run):
    config = compose_config(
        ["experiment=cat_threat", *quiet_run, *SMALL_CAT, "trainer.max_epochs=3", "data.shift={skew:[4,4]}"], tmp_path
    )
    metrics = train(config)
    checkpoint = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    weights = checkpoint["state_dict"]["predictor.model.score_layer.weight"][0]
    bias = checkpoint["state_dict"]["predictor.model.score_layer.bias"][0]
    datamodule = WorldDataModule(
        CatWorld(),
        ["score", "decision"],
        ["hardness", "sharpness"],
        n_train=3000,
        n_val=500,
        n_test=3000,
        shift={"skew": [4, 4]},
    )
    datamodule.setup()
    for split in ("test", "shift"):
        data = datamodule.splits[split]
        mse = ((data["features"] @ weights + bias) - data["score"]).square().mean().item()
        assert metrics[f"{split}/mse"] == pytest.approx(mse, rel=1e-4), split
        bayes = (data["bayes_score"] - data["score"]).square().mean().item()
        assert metrics[f"{split}/bayes_mse"] == pytest.approx(bayes, rel=1e-5), split
    assert metrics["shift/mse"] != pytest.approx(metrics["test/mse"], rel=1e-3)


def test_training_closer_to_the_test_distribution_closes_the_gap(tmp_path, quiet_run):
    small = ["data.n_train=8000", "data.n_test=4000", "trainer.max_epochs=12", "optimizer.lr=0.01"]
    slow_prey = fit("lion_shift", tmp_path / "slow", quiet_run, *small)
    all_prey = fit("lion_shift", tmp_path / "all", quiet_run, *small, "data.world.prey_speed_range=[0,5]")
    assert slow_prey["shift/mse"] >= 3 * slow_prey["test/mse"]  # what it never saw, it gets wrong
    assert all_prey["shift/mse"] <= 0.3 * slow_prey["shift/mse"]
    # The shifted split is the same in both runs: the Bayes-optimal error on it says so.
    assert all_prey["shift/bayes_mse"] == pytest.approx(slow_prey["shift/bayes_mse"])


def test_eval_reports_in_distribution_and_shifted_metrics_side_by_side(tmp_path, quiet_run):
    fit("cat_threat", tmp_path / "train", quiet_run, *SMALL_CAT, "trainer.max_epochs=3")
    checkpoint = tmp_path / "train" / "checkpoints" / "best.ckpt"
    result = run_cli(
        "catbrain-eval",
        f"ckpt_path={checkpoint}",
        "data.shift={skew:[4,4]}",
        f"hydra.run.dir={tmp_path / 'eval'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert {"test/mse", "shift/mse", "test/bayes_mse", "shift/bayes_mse"} <= set(metrics)
    assert not any(key.startswith("closed_form") for key in metrics)  # no training rows of its own
    assert "shifted" in result.stdout and "shifted Bayes" in result.stdout
    assert math.isfinite(metrics["shift/decision_acc"])
