"""Stacked models and optimizers: K jobs in one set of tensors give, step by step, what each job gives alone with
torch's own modules and optimizers."""

from __future__ import annotations

import copy

import pytest
import torch

from catbrain.models import MLP, Linear, ThresholdedLinear
from catbrain.run import batched
from catbrain.run.batched import batched_losses
from catbrain.run.vectorized import LossOf
from catbrain.stacked import Stacked, StackedOptimizer
from catbrain.tasks import ClassificationTask, OrdinalTask, QuantileTask, RegressionTask, ThresholdTask

JOBS = 4


def models(make, seed: int = 0) -> list[torch.nn.Module]:
    torch.manual_seed(seed)
    return [make() for _ in range(JOBS)]


@pytest.mark.parametrize(
    "make",
    [
        lambda: Linear(3, 1),
        lambda: Linear(3, 4),
        lambda: MLP(3, hidden=[8, 5], activation="gelu"),
        lambda: ThresholdedLinear(3),
        lambda: ThresholdedLinear(3, learn_thresholds=True),
    ],  # fmt: skip
    ids=["linear", "linear-logits", "mlp", "thresholded", "learned-thresholds"],
)
def test_a_stacked_call_gives_each_jobs_own_output(make):
    alone = models(make)
    stacked = Stacked(alone)
    features = torch.randn(JOBS, 10, 3, generator=torch.Generator().manual_seed(1))
    together = stacked(features)
    for job, model in enumerate(alone):
        torch.testing.assert_close(together[job], model(features[job]), rtol=1e-6, atol=1e-7)
        state = stacked.job_state(job)
        assert state.keys() == model.state_dict().keys()
        for name, value in model.state_dict().items():
            assert torch.equal(state[name], value)


def test_models_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="one architecture"):
        Stacked([Linear(3, 1), Linear(4, 1)])


SETTINGS = {
    "sgd": [{"lr": 0.1}, {"lr": 0.03, "momentum": 0.9}, {"lr": 0.05, "momentum": 0.5, "dampening": 0.3},
            {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.01}],
    "sgd-nesterov": [{"lr": 0.1, "momentum": 0.9}, {"lr": 0.03, "momentum": 0.5}, {"lr": 0.05, "momentum": 0.7},
                     {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.01}],
    "adam": [{"lr": 0.01}, {"lr": 0.003, "betas": (0.8, 0.99)}, {"lr": 0.03, "eps": 1e-6},
             {"lr": 0.01, "weight_decay": 0.05}],
    "adamw": [{"lr": 0.01}, {"lr": 0.003, "betas": (0.8, 0.99)}, {"lr": 0.03, "weight_decay": 0.1},
              {"lr": 0.01, "weight_decay": 0.0}],
}  # fmt: skip


def torch_optimizer(kind: str, params, settings: dict) -> torch.optim.Optimizer:
    if kind.startswith("sgd"):
        return torch.optim.SGD(params, nesterov=kind == "sgd-nesterov", **settings)
    return (torch.optim.Adam if kind == "adam" else torch.optim.AdamW)(params, **settings)


def stacked_settings(kind: str) -> dict[str, list[float]]:
    jobs = SETTINGS[kind]
    names = {name for job in jobs for name in job}
    if "betas" in names:
        names = (names - {"betas"}) | {"beta1", "beta2"}
    defaults = torch_optimizer(kind.removesuffix("-nesterov"), [torch.zeros(1, requires_grad=True)], {}).defaults
    values = {}
    for name in names:
        if name.startswith("beta"):
            index = int(name[-1]) - 1
            values[name] = [job.get("betas", defaults["betas"])[index] for job in jobs]
        else:
            values[name] = [job.get(name, defaults[name]) for job in jobs]
    return values


@pytest.mark.parametrize("kind", sorted(SETTINGS))
def test_stacked_optimizers_step_as_torchs_own_job_by_job(kind):
    alone = models(lambda: MLP(3, hidden=[6], activation="tanh"))
    stacked = Stacked(copy.deepcopy(alone))
    optimizer = StackedOptimizer(kind.removesuffix("-nesterov"), list(stacked.params.values()), JOBS,
                                 nesterov=kind == "sgd-nesterov", **stacked_settings(kind))  # fmt: skip
    optimizers = [torch_optimizer(kind, model.parameters(), settings) for model, settings in zip(alone, SETTINGS[kind])]
    generator = torch.Generator().manual_seed(2)
    for step in range(60):
        features = torch.randn(JOBS, 16, 3, generator=generator)
        targets = torch.randn(JOBS, 16, generator=generator)
        for model, own, rows, target in zip(alone, optimizers, features, targets):
            own.zero_grad()
            ((model(rows) - target) ** 2).mean().backward()
        # the same gradients: what is compared is the optimizers' arithmetic alone, bit for bit
        for name, param in stacked.params.items():
            param.grad = torch.stack([dict(model.named_parameters())[name].grad for model in alone])
        optimizer.step()
        for own in optimizers:
            own.step()
        for job, model in enumerate(alone):
            for name, value in model.named_parameters():
                assert torch.equal(stacked.params[name][job], value), f"job {job}, step {step}, {name}"
    state = optimizer.job_state(1)
    assert state["param_groups"][0]["lr"] == SETTINGS[kind][1]["lr"]
    if kind.startswith("adam"):
        own = optimizers[1].state_dict()["state"][0]
        torch.testing.assert_close(state["state"][0]["exp_avg_sq"], own["exp_avg_sq"], rtol=1e-5, atol=1e-9)


def test_the_stacked_loss_gives_each_job_its_own_gradient():
    alone = models(lambda: MLP(3, hidden=[6], activation="tanh"))
    stacked = Stacked(copy.deepcopy(alone))
    features = torch.randn(JOBS, 16, 3, generator=torch.Generator().manual_seed(3))
    targets = torch.randn(JOBS, 16, generator=torch.Generator().manual_seed(4))
    ((stacked(features) - targets) ** 2).mean(dim=1).sum().backward()
    for job, model in enumerate(alone):
        ((model(features[job]) - targets[job]) ** 2).mean().backward()
        for name, value in model.named_parameters():
            torch.testing.assert_close(stacked.params[name].grad[job], value.grad, rtol=1e-5, atol=1e-7)


def test_a_job_with_no_learning_rate_stops_changing():
    stacked = Stacked(models(lambda: Linear(2, 1)))
    optimizer = StackedOptimizer("adamw", list(stacked.params.values()), JOBS, lr=0.1, weight_decay=0.1)
    optimizer.lr[2] = 0.0
    frozen = stacked.job_state(2)
    for _ in range(5):
        optimizer.zero_grad()
        stacked(torch.ones(JOBS, 4, 2)).sum().backward()
        optimizer.step()
    assert all(torch.equal(stacked.job_state(2)[name], value) for name, value in frozen.items())
    assert not torch.equal(stacked.job_state(1)["layer.weight"], frozen["layer.weight"])


def test_bad_settings_are_refused():
    params = [torch.zeros(JOBS, 2, requires_grad=True)]
    with pytest.raises(ValueError, match="one of"):
        StackedOptimizer("rmsprop", params, JOBS)
    with pytest.raises(ValueError, match=r"takes .* not \['momentum'\]"):
        StackedOptimizer("adam", params, JOBS, momentum=0.9)
    with pytest.raises(ValueError, match="3 values for 4 jobs"):
        StackedOptimizer("sgd", params, JOBS, lr=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="first axis is the job"):
        StackedOptimizer("sgd", [torch.zeros(3, 2)], JOBS)


def sgd(params):
    return torch.optim.SGD(params, lr=0.1)


NAMES = ["approach", "ignore", "run_away"]
TASKS = {  # each with the targets its loss takes: numbers, or class indices
    "regression-linear": (lambda: RegressionTask(Linear(3), sgd), "numbers"),
    "regression-mlp": (lambda: RegressionTask(MLP(3, hidden=[8, 5], activation="gelu"), sgd), "numbers"),
    "threshold": (lambda: ThresholdTask(ThresholdedLinear(3), sgd), "numbers"),
    "classification-linear": (lambda: ClassificationTask(Linear(3, 3), sgd, class_names=NAMES), "classes"),
    "classification-mlp": (lambda: ClassificationTask(MLP(3, [6], 3, "tanh"), sgd, class_names=NAMES), "classes"),
    "quantile": (lambda: QuantileTask(MLP(3, [6], 3, "silu"), sgd, quantiles=[0.1, 0.5, 0.9]), "numbers"),
    "quantile-one-level": (lambda: QuantileTask(Linear(3), sgd, quantiles=[0.5]), "numbers"),
}


def stacked_tasks(make, scaled: bool) -> Stacked:
    """JOBS tasks with their own weights and (``scaled``) their own standardisation, stacked as the engine stacks."""
    torch.manual_seed(0)
    tasks = [make() for _ in range(JOBS)]
    for job, task in enumerate(tasks):
        if scaled:
            generator = torch.Generator().manual_seed(10 + job)
            task.predictor.set_scaling(input_mean=torch.randn(3, generator=generator),
                                       input_std=torch.rand(3, generator=generator) + 0.5,
                                       target_mean=torch.randn((), generator=generator),
                                       target_std=torch.rand((), generator=generator) + 0.5)  # fmt: skip
    return Stacked([LossOf(task) for task in tasks])


def batch(kind: str, seed: int, rows: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(JOBS, rows, 3, generator=generator)
    if kind == "classes":
        return features, torch.randint(0, 3, (JOBS, rows), generator=generator)
    return features, torch.randn(JOBS, rows, generator=generator) * 2 + 1


@pytest.mark.parametrize("scaled", [False, True], ids=["identity-scaling", "own-scaling"])
@pytest.mark.parametrize("name", list(TASKS))
def test_batched_losses_give_vmaps_losses_and_gradients(name, scaled):
    make, kind = TASKS[name]
    stacked = stacked_tasks(make, scaled)
    losses = batched_losses(stacked, batch(kind, seed=1))
    assert losses is not None, "catbrain's own model and loss take the batched path"
    other = batch(kind, seed=2, rows=37)  # not the batch it was checked on
    params = list(stacked.params.values())
    fast, slow = losses(*other), stacked(*other)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(torch.autograd.grad(fast.sum(), params), torch.autograd.grad(slow.sum(), params)):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)


class Doubled(torch.nn.Module):
    """A model of your own: the batched path does not know it."""

    in_features = 3

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self.layer(x).squeeze(-1)


def test_models_and_losses_it_does_not_know_keep_vmap(monkeypatch):
    assert batched_losses(stacked_tasks(lambda: RegressionTask(Doubled(), sgd), False), batch("numbers", 1)) is None
    ordinal = stacked_tasks(lambda: OrdinalTask(ThresholdedLinear(3, learn_thresholds=True), sgd), False)
    assert batched_losses(ordinal, batch("classes", 1)) is None

    class OwnLoss(RegressionTask):
        def loss(self, output, batch):
            return (output - batch[1]).abs().mean()

    assert batched_losses(stacked_tasks(lambda: OwnLoss(Linear(3), sgd), False), batch("numbers", 1)) is None

    def normed() -> RegressionTask:  # its class is catbrain's, its layer is not as the class builds it
        model = Linear(3)
        torch.nn.utils.parametrizations.weight_norm(model.layer)
        return RegressionTask(model, sgd)

    assert batched_losses(stacked_tasks(normed, False), batch("numbers", 1)) is None
    # A batched path that disagrees with vmap on the batch it is checked on is not used.
    monkeypatch.setattr(batched, "_linear", lambda params, name, x: 1.001 * torch.baddbmm(
        params[f"{name}.bias"].unsqueeze(1), x, params[f"{name}.weight"].transpose(1, 2)))  # fmt: skip
    assert batched_losses(stacked_tasks(lambda: RegressionTask(Linear(3), sgd), False), batch("numbers", 1)) is None


@pytest.mark.filterwarnings("ignore:grad and param do not obey the gradient layout contract")
def test_flattened_parameters_step_as_the_parameters_do():
    make = lambda: MLP(3, hidden=[6, 4], activation="tanh")  # noqa: E731
    apart, together = Stacked(models(make)), Stacked(models(make))
    flat = together.flatten()
    assert flat.shape == (JOBS, sum(p[0].numel() for p in apart.params.values()))
    optimizers = [StackedOptimizer("adamw", list(apart.params.values()), JOBS, lr=[0.1, 0.01, 0.03, 0.0]),
                  StackedOptimizer("adamw", [flat], JOBS, lr=[0.1, 0.01, 0.03, 0.0])]  # fmt: skip
    for step in range(5):
        features = torch.randn(JOBS, 8, 3, generator=torch.Generator().manual_seed(step))
        optimizers[0].zero_grad()
        flat.grad.zero_()
        for stacked in (apart, together):
            stacked(features).square().mean((1,)).sum().backward()
        together.gathered()
        for optimizer in optimizers:
            optimizer.step()
        for name, value in apart.params.items():  # the same numbers, and the flat tensor is the parameters
            assert torch.equal(together.params[name], value), (step, name)
            assert together.params[name].untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()


@pytest.mark.parametrize("change", ["in place", "replaced"])
def test_a_hyper_parameter_changed_is_used_at_the_next_step(change):
    stacked = Stacked(models(lambda: Linear(2, 1)))
    optimizer = StackedOptimizer("sgd", list(stacked.params.values()), JOBS, lr=0.1)

    def step() -> dict[str, torch.Tensor]:
        optimizer.zero_grad()
        stacked(torch.ones(JOBS, 3, 2)).sum().backward()
        optimizer.step()
        return {name: value.detach().clone() for name, value in stacked.params.items()}

    before = {name: value.detach().clone() for name, value in stacked.params.items()}
    kept = step()  # the per-job numbers are cast and kept...
    assert all(not torch.equal(kept[name][1], before[name][1]) for name in kept)
    if change == "in place":
        optimizer.lr[1] = 0.0
    else:
        optimizer.hyper["lr"] = torch.tensor([0.1, 0.0, 0.1, 0.1], dtype=torch.float64)
    after = step()  # ...and cast again after the change: job 1 stops, the others go on
    assert all(torch.equal(after[name][1], kept[name][1]) for name in kept)
    assert all(not torch.equal(after[name][0], kept[name][0]) for name in kept)
