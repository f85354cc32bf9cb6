"""Stacked models and optimizers: K jobs in one set of tensors give, step by step, what each job gives alone with
torch's own modules and optimizers."""

from __future__ import annotations

import copy

import pytest
import torch

from catbrain.models import MLP, Linear, ThresholdedLinear
from catbrain.stacked import Stacked, StackedOptimizer

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
