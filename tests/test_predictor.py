"""The predictor and its heads: scaling once, each kind's answer, and what a checkpoint may replay."""

import pytest
import torch

from catbrain.models import MLP, Linear, ThresholdedLinear
from catbrain.predictor import HEADS, NumberHead, Predictor, QuantileHead, SoftmaxHead, ThresholdHead
from catbrain.predictor.contents import replayable, stored_overrides


def test_the_output_is_the_model_between_the_scalings():
    torch.manual_seed(0)
    predictor = Predictor(Linear(2), NumberHead(), ["a", "b"], "y")
    predictor.set_scaling(input_mean=torch.tensor([1.0, -2.0]), input_std=torch.tensor([2.0, 0.5]))
    predictor.set_scaling(target_mean=torch.tensor(10.0), target_std=torch.tensor(3.0))
    x = torch.randn(7, 2)
    expected = predictor.model((x - torch.tensor([1.0, -2.0])) / torch.tensor([2.0, 0.5])) * 3 + 10
    assert torch.allclose(predictor.output(x), expected)
    weights, bias = predictor.raw_linear()  # the same map, in raw units
    assert torch.allclose(x @ weights[0] + bias[0], expected, atol=1e-5)


def test_quantiles_never_cross_and_the_median_is_the_prediction():
    head = QuantileHead([0.1, 0.5, 0.9])
    crossing = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, -1.0]])
    median, quantiles = head(crossing, None)
    assert quantiles.tolist() == [[1.0, 2.0, 3.0], [-1.0, 0.0, 5.0]]
    assert median.tolist() == [2.0, 0.0]
    [answer, _] = head.answers((median, quantiles), None)
    assert answer == {"prediction": 2.0, "quantiles": {"0.1": 1.0, "0.5": 2.0, "0.9": 3.0}}
    assert head.text(answer, "temp_tomorrow") == "temp_tomorrow = 2.0000 (80%: 1.0000 .. 3.0000)"


@pytest.mark.parametrize("levels", [[0.1, 0.9], [0.5, 0.1], [0.0, 0.5], [0.5, 1.0], []])
def test_quantile_levels_are_increasing_in_the_open_interval_and_hold_the_median(levels):
    with pytest.raises(ValueError, match="task.quantiles"):
        QuantileHead(levels)


def test_the_threshold_head_decides_ties_as_the_model_does():
    model = ThresholdedLinear(2, thresholds=[-0.25, 0.25])
    scores = torch.tensor([-0.3, -0.25, 0.0, 0.25, 0.3])
    assert ThresholdHead(model.class_names).decide(scores, model).tolist() == model.decide(scores).tolist()


def test_a_head_refuses_a_model_whose_outputs_cannot_mean_it():
    with pytest.raises(ValueError, match="out_features=1 must equal the number of classes 3"):
        Predictor(Linear(2), SoftmaxHead(["a", "b", "c"]))
    with pytest.raises(ValueError, match="number of task.quantiles 3"):
        Predictor(MLP(2, out_features=2), QuantileHead([0.1, 0.5, 0.9]))
    with pytest.raises(ValueError, match="needs a ThresholdedLinear"):
        Predictor(Linear(2), ThresholdHead(["a", "b", "c"]))


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_every_head_rebuilds_from_its_plain_arguments(kind):
    arguments = {"class_names": ["a", "b", "c"]} if kind in ("classification", "threshold", "ordinal") else {}
    head = HEADS[kind](**arguments)
    again = type(head)(**head.arguments())
    assert again.arguments() == head.arguments() and again.kind == kind


def test_predictions_name_features_outside_the_training_range():
    predictor = Predictor(Linear(2), NumberHead(), ["hardness", "sharpness"], "score", {"hardness": [0.0, 1.0]})
    inside, outside = predictor.predict([[0.5, 9.0], [1.5, 0.0]])
    assert "outside_training_range" not in inside  # sharpness has no recorded range
    assert outside["outside_training_range"] == ["hardness"]


@pytest.mark.parametrize(
    ("override", "replayed"),
    [
        ("experiment=cat_ordinal", True),
        ("data.n_train=100", True),
        ("data.shift={skew:[4,4]}", True),
        ("callbacks=[model_checkpoint,early_stopping]", True),
        ("~callbacks.early_stopping", True),
        ("hydra.run.dir=/elsewhere", False),
        ("data.train_path=/etc/passwd", False),
        ("callbacks.model_checkpoint.dirpath=/x", False),
        ("trainer.default_root_dir=/x", False),
        ("logger.save_dir=/x", False),
        ("+model._target_=builtins.open", False),
        ("data.world={_target_:builtins.open}", False),
        ("trainer.max_epochs=${oc.env:HOME}", False),
        ("experiment=../../elsewhere", False),
        ("ckpt_path=/x.ckpt", False),
    ],
)
def test_a_run_replays_only_its_own_choices(override, replayed):
    assert replayable(override) is replayed


def test_a_run_stores_no_part_of_an_object_it_cannot_replay():
    command = ["+callbacks.kill._target_=tests.helpers.KillOnce", "+callbacks.kill.step=3", "data.n_train=64"]
    assert stored_overrides(command) == ["data.n_train=64"]


def test_rows_of_the_wrong_width_are_refused_naming_the_shapes():
    predictor = Predictor(Linear(2), NumberHead(), ["hardness", "sharpness"])
    assert len(predictor.predict([0.5, 0.5])) == 1  # one row
    for rows in ([[1.0, 2.0, 3.0, 4.0]], [1.0, 2.0, 3.0], [[[1.0, 2.0]]]):
        with pytest.raises(ValueError, match=r"the model takes \(n >= 1, 2\) rows of hardness, sharpness"):
            predictor.predict(rows)


def test_an_answer_that_is_not_a_finite_number_is_refused_naming_the_row():
    from catbrain.errors import UsageError

    predictor = Predictor(Linear(2), NumberHead(), ["hardness", "sharpness"])
    with torch.no_grad():
        predictor.model.layer.weight.fill_(10.0)
    with pytest.raises(UsageError, match="row 2: the model's answer is not a finite number"):
        predictor.predict([[0.5, 0.5], [3.4e38, 3.4e38]])


def test_a_classifier_never_names_a_decision_beside_probabilities_that_are_not_numbers():
    from catbrain.errors import UsageError
    from catbrain.predictor.heads import SoftmaxHead

    predictor = Predictor(Linear(2, 3), SoftmaxHead(["approach", "ignore", "run_away"]), ["hardness", "sharpness"])
    with torch.no_grad():
        predictor.model.layer.weight.copy_(torch.tensor([[1e38, 1e38], [-1e38, -1e38], [0.0, 0.0]]))
    with pytest.raises(UsageError, match="row 1: the model's answer is not a finite number"):
        predictor.predict([[3.4e38, 3.4e38], [0.5, 0.5]])
