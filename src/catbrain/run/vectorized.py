"""A sweep's jobs trained at once: one stacked model, each job with its own data, seed, batches and optimizer.

Each job is built as a run of its own would build it (its seed, its data drawn from its ``data.seed``,
its model's initial weights, its scaling), then every parameter is stacked along a job axis
(:mod:`catbrain.stacked`) and one loop trains them all: each step gathers every job's own batch (its
own shuffle), takes each job's loss with the task's own ``loss`` through ``vmap`` and steps a
:class:`~catbrain.stacked.StackedOptimizer` with each job's hyper-parameters. After each epoch every
job is validated, and its own :class:`~catbrain.run.stopping.Stopping` and best-checkpoint rule (the
lowest ``val/loss``, as ``ModelCheckpoint`` keeps) decide for it alone: a stopped job stops changing.
Then each job is tested with its best weights by the task's own metrics. The numbers are the same as a
run of the job alone, up to float rounding (a test compares them job by job).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch
from omegaconf import DictConfig

from catbrain.errors import diverged
from catbrain.run.batched import batched_losses
from catbrain.stacked import Stacked, StackedOptimizer

OPTIMIZERS = {"torch.optim.SGD": "sgd", "torch.optim.Adam": "adam", "torch.optim.AdamW": "adamw"}
HYPER = {  # config key -> stacked optimizer setting
    "sgd": {"lr": "lr", "momentum": "momentum", "dampening": "dampening", "weight_decay": "weight_decay"},
    "adam": {"lr": "lr", "eps": "eps", "weight_decay": "weight_decay"},
    "adamw": {"lr": "lr", "eps": "eps", "weight_decay": "weight_decay"},
}


@dataclass
class Job:
    """One job of a group: what it was built from, and once trained, what it learned and why it stopped."""

    cfg: DictConfig
    datamodule: Any = None
    task: Any = None
    stopping: Any = None
    history: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    best_score: float | None = None
    best_epoch: int = -1
    best_step: int = 0
    last_state: dict[str, torch.Tensor] | None = None
    epochs: int = 0
    steps: int = 0
    stopped: str = "max_epochs"
    stopped_reason: str = ""
    error: Exception | None = None
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)


class LossOf(torch.nn.Module):
    """A task's loss on a batch as a module: what ``vmap`` runs once per job with that job's tensors."""

    def __init__(self, task: Any) -> None:
        super().__init__()
        self.task = task

    def forward(self, features: torch.Tensor, *targets: torch.Tensor) -> torch.Tensor:
        batch = (features, *targets)
        return self.task.loss(self.task.predictor.output(features), batch)


def build(cfg: DictConfig) -> Job:
    """The job's data, task and initial weights, drawn exactly as its own run draws them."""
    from hydra.utils import instantiate

    from catbrain.run.grouping import stopping_rules
    from catbrain.run.trainer import build_run

    job = Job(cfg)
    job.datamodule, job.task = build_run(cfg)
    job.datamodule.setup("fit")
    job.task.take_data(job.datamodule)
    stopping = list(stopping_rules(cfg).values())
    job.stopping = instantiate(stopping[0]) if stopping else None  # whatever its name (grouping allows one)
    rule = job.task.predictor.linear_rule()
    if rule is not None:  # where the weights start: the first point of their path
        names = job.task.predictor.feature_names
        job.history.append({"epoch": -1, "step": 0, **{f"weight/{n}": float(w) for n, w in zip(names, rule[0])},
                            "bias": rule[1]})  # fmt: skip
    return job


def optimizer_for(jobs: list[Job], params: list[torch.Tensor]) -> StackedOptimizer:
    """Each job's optimizer settings, stacked."""
    first = jobs[0].cfg.optimizer
    kind = OPTIMIZERS[str(first._target_)]
    settings: dict[str, list[float]] = {}
    for key, name in HYPER[kind].items():
        if key in first:
            settings[name] = [float(job.cfg.optimizer[key]) for job in jobs]
    if kind != "sgd" and "betas" in first:
        settings["beta1"] = [float(job.cfg.optimizer.betas[0]) for job in jobs]
        settings["beta2"] = [float(job.cfg.optimizer.betas[1]) for job in jobs]
    return StackedOptimizer(kind, params, len(jobs), nesterov=bool(first.get("nesterov", False)), **settings)


def _stack_split(jobs: list[Job], split: str, device: torch.device) -> tuple[torch.Tensor, ...]:
    datamodule = jobs[0].datamodule
    keys = ["features", *datamodule.batch_keys]
    return tuple(torch.stack([job.datamodule.splits[split][key] for job in jobs]).to(device) for key in keys)


def _mean_loss(losses: Any, data: tuple[torch.Tensor, ...], batch_size: int) -> torch.Tensor:
    """Each job's loss over a whole split in batches of ``batch_size``, weighted by batch length (a MeanMetric)."""
    total = torch.zeros(len(data[0]), dtype=torch.float32, device=data[0].device)
    weight = 0
    with torch.no_grad():
        for start in range(0, data[0].shape[1], batch_size):
            part = tuple(tensor[:, start : start + batch_size] for tensor in data)
            total += losses(*part) * part[0].shape[1]
            weight += part[0].shape[1]
    return total / weight


class _OneJobTrainer(SimpleNamespace):
    """What :class:`Stopping` reads of a trainer, for one job of the group."""


def fit_together(jobs: list[Job], device: torch.device | None = None) -> float:
    """Train ``jobs`` (one architecture and data shape) at once; each job's outcome lands in its :class:`Job`.
    Returns the wall seconds of the fit."""
    with warnings.catch_warnings():  # the flat parameters' gradients: see Stacked.flatten
        warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout contract")
        return _fit_together(jobs, device)


def _fit_together(jobs: list[Job], device: torch.device | None) -> float:
    started, device, first = time.perf_counter(), device or torch.device("cpu"), jobs[0]
    stacked = Stacked([LossOf(job.task) for job in jobs])
    stacked.params = {name: value.to(device).detach().requires_grad_(True) for name, value in stacked.params.items()}
    stacked.buffers = {name: value.to(device) for name, value in stacked.buffers.items()}
    flat = stacked.flatten()  # one optimizer step for all parameters
    optimizer = optimizer_for(jobs, [flat])
    train, val = _stack_split(jobs, "train", device), _stack_split(jobs, "val", device)
    k, n = len(jobs), train[0].shape[1]
    batch_size = first.datamodule.batch_size
    eval_batch = batch_size * int(getattr(first.task, "steps_per_call", 1))
    max_epochs = int(first.cfg.trainer.max_epochs)
    losses_of = batched_losses(stacked, tuple(tensor[:, :batch_size] for tensor in train)) or stacked
    rows = torch.arange(k, device=device).unsqueeze(1)
    active = torch.ones(k, dtype=torch.bool, device=device)
    everyone = True  # every job still training: no masks to apply
    best = {name: value.detach().clone() for name, value in stacked.params.items()}
    for epoch in range(max_epochs):
        orders = torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(job.datamodule.seed + epoch))
                              for job in jobs]).to(device)  # fmt: skip
        # Each job's epoch in its own order, gathered once as rows of (K * n, ...): 3x faster than [rows, orders].
        picked = (orders + rows * n).flatten()
        shuffled = tuple(t.reshape(k * n, *t.shape[2:]).index_select(0, picked).view(t.shape) for t in train)
        train_losses: list[torch.Tensor] = []
        batches = 0
        for batch_index, start in enumerate(range(0, n, batch_size)):
            batch = tuple(tensor[:, start : start + batch_size] for tensor in shuffled)
            flat.grad.zero_()
            losses = losses_of(*batch)
            diverging = active & ~torch.isfinite(losses.detach())
            if bool(diverging.any()):  # stop it before its step, as a run alone stops
                for j in diverging.nonzero().flatten().tolist():
                    jobs[j].error = diverged(float(losses.detach()[j]), jobs[j].steps + batch_index, epoch, batch_index)
                    jobs[j].steps += batch_index
                    active[j] = False
                    optimizer.lr[j] = 0.0
                everyone = False
            (losses if everyone else torch.where(active, losses, torch.zeros_like(losses))).sum().backward()
            stacked.gathered()
            if not everyone:  # a stopped job's weights stay as they are
                flat.grad.masked_fill_(~active.unsqueeze(1), 0.0)
            optimizer.step()
            batches += 1
            train_losses.append(losses.detach() * batch[0].shape[1])
        for j in active.nonzero().flatten().tolist():
            jobs[j].steps += batches
        if not train_losses:
            break
        val_loss = _mean_loss(losses_of, val, eval_batch)
        train_loss = torch.stack(train_losses).sum(0) / n
        for j, job in enumerate(jobs):
            if not bool(active[j]):
                continue
            job.epochs = epoch + 1
            value = float(val_loss[j])
            state = stacked.job_state(j) if job.cfg.get("plots", False) else None  # the pictures' curves need it
            job.history += _epoch_entries(job, state, epoch, value, float(train_loss[j]))
            if math.isfinite(value) and (job.best_score is None or value < job.best_score):
                job.best_score, job.best_epoch, job.best_step = value, epoch, job.steps
                for name, tensor in stacked.params.items():
                    best[name][j] = tensor.detach()[j]
            if job.stopping is not None and _stopping_says_stop(job, value, epoch, optimizer, j):
                active[j] = False
                optimizer.lr[j] = 0.0
        everyone = bool(active.all())
        if not bool(active.any()):
            break
    seconds = time.perf_counter() - started
    for j, job in enumerate(jobs):
        state = stacked.job_state(j)
        job.last_state = {name.removeprefix("task."): value.cpu() for name, value in state.items()}
        best_state = {**state, **{name: value[j].detach().clone() for name, value in best.items()}}
        job.best_state = {name.removeprefix("task."): value.cpu() for name, value in best_state.items()}
        job.seconds = seconds / len(jobs)
        if job.stopping is not None and job.stopping.reason is not None:
            job.stopped, job.stopped_reason = job.stopping.reason, job.stopping.sentence
        else:
            job.stopped, job.stopped_reason = "max_epochs", f"trainer.max_epochs={max_epochs} reached"
    return seconds


def _epoch_entries(job: Job, state: dict[str, torch.Tensor] | None, epoch: int, val_loss: float, train_loss: float
                   ) -> list[dict[str, float]]:  # fmt: skip
    """The history a run alone records after an epoch: validation (with every metric and the weights when its
    pictures are drawn), then training."""
    val: dict[str, float] = {"epoch": epoch, "step": job.steps, "val/loss": val_loss}
    if state is not None:
        task = job.task
        task.load_state_dict({name.removeprefix("task."): value for name, value in state.items()})
        task.eval()
        with torch.no_grad():
            for batch in job.datamodule.split_dataloader("val"):
                task._step("val", batch)
        val |= {key: float(value) for key, value in task.measured("val", "val").items()}
        rule = task.predictor.linear_rule()
        if rule is not None:
            names = task.predictor.feature_names
            val |= {f"weight/{n}": float(w) for n, w in zip(names, rule[0])} | {"bias": rule[1]}
    return [val, {"epoch": epoch, "step": job.steps, "train/loss": train_loss}]


def _stopping_says_stop(job: Job, value: float, epoch: int, optimizer: StackedOptimizer, j: int) -> bool:
    """Run the job's own :class:`Stopping` on its validation loss; apply a lowered learning rate."""
    group = {"lr": float(optimizer.lr[j])}
    trainer = _OneJobTrainer(
        sanity_checking=False, fast_dev_run=False, callback_metrics={job.stopping.monitor: torch.tensor(value)},
        current_epoch=epoch, lr_scheduler_configs=[], optimizers=[SimpleNamespace(param_groups=[group])],
        should_stop=False,
    )  # fmt: skip
    job.stopping.on_validation_end(trainer, job.task)
    optimizer.lr[j] = group["lr"]
    return bool(trainer.should_stop)
