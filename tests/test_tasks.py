import functools

import pytest
import torch

from catbrain.models import MLP, Linear, ThresholdedLinear
from catbrain.tasks import ClassificationTask, RegressionTask, ThresholdTask
from catbrain.worlds import CatWorld

SGD = functools.partial(torch.optim.SGD, lr=0.1)


def cat_batch(n: int = 256):
    sample = CatWorld().sample(n, torch.Generator().manual_seed(0))
    return sample["features"], sample["score"], sample["decision"]


def loss_before_and_after_one_step(task, batch):
    optimizer = task.configure_optimizers()
    before = task.loss(task(batch[0]), batch)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = task.loss(task(batch[0]), batch)
    return before.item(), after.item()


@pytest.mark.parametrize(
    "make_task",
    [
        lambda: ThresholdTask(ThresholdedLinear(2), SGD),
        lambda: RegressionTask(Linear(2), SGD),
        lambda: RegressionTask(MLP(2, hidden=[8]), SGD),
        lambda: ClassificationTask(Linear(2, 3), SGD, class_names=["approach", "ignore", "run_away"]),
    ],
    ids=["threshold", "regression-linear", "regression-mlp", "classification"],
)
def test_a_step_lowers_the_loss(make_task):
    torch.manual_seed(0)
    task = make_task()
    features, score, decision = cat_batch()
    batch = (features, decision) if isinstance(task, ClassificationTask) else (features, score, decision)
    before, after = loss_before_and_after_one_step(task, batch)
    assert after < before


def test_scheduler_comes_with_the_optimizer():
    scheduler = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1)
    configured = RegressionTask(Linear(2), SGD, scheduler=scheduler).configure_optimizers()
    assert isinstance(configured["optimizer"], torch.optim.SGD)
    assert isinstance(configured["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)


def test_standardised_inputs_still_give_the_rule_in_raw_units():
    task = RegressionTask(Linear(2), SGD)
    task.predictor.input_mean.copy_(torch.tensor([10.0, -3.0]))
    task.predictor.input_std.copy_(torch.tensor([2.0, 0.5]))
    task.predictor.target_mean.fill_(12.0)
    task.predictor.target_std.fill_(4.0)
    x = torch.randn(20, 2) * 3 + 5
    weights, bias = task.predictor.linear_rule()
    assert torch.allclose(task(x), x @ weights + bias, atol=1e-5)


def test_classifier_must_have_one_output_per_class():
    with pytest.raises(ValueError, match=r"model.out_features=1 must equal the number of classes 3"):
        ClassificationTask(Linear(2, 1), SGD, class_names=["a", "b", "c"])


def test_threshold_task_needs_a_thresholded_model():
    with pytest.raises(ValueError, match="ThresholdedLinear"):
        ThresholdTask(Linear(2), SGD)


def test_threshold_decision_accuracy_uses_the_observed_decisions():
    model = ThresholdedLinear(2)
    with torch.no_grad():
        model.score_layer.weight.copy_(torch.tensor([[1.0, 1.0]]))
        model.score_layer.bias.fill_(-1.0)
    task = ThresholdTask(model, SGD)
    features, score, decision = cat_batch(5000)
    metrics = task.metrics["test_"]
    task.update_metrics(metrics, task(features), (features, score, decision))
    values = metrics.compute()
    bayes = (CatWorld().decide(features @ torch.ones(2) - 1) == decision).float().mean()
    assert values["test/decision_acc"].item() == pytest.approx(bayes.item())
    assert values["test/mse"].item() == pytest.approx(((features.sum(1) - 1 - score) ** 2).mean().item(), rel=1e-4)


def test_each_stage_has_its_own_metrics_even_from_a_make_metrics_that_gives_one_collection():
    from torchmetrics import MeanSquaredError, MetricCollection

    from catbrain.tasks.metrics import stage_metrics

    for make in (lambda: MetricCollection({"mse": MeanSquaredError()}),
                 (lambda one: lambda: one)(MetricCollection({"mse": MeanSquaredError()}))):  # fmt: skip
        metrics = stage_metrics(make, ["train", "val", "test"])
        assert len({id(m) for m in metrics.values()}) == 3
        metrics["train_"].update(torch.ones(2), torch.zeros(2))
        assert metrics["train_"].compute() == {"train/mse": 1.0}
        assert metrics["val_"]["mse"].total.item() == 0  # the train update is not in it
