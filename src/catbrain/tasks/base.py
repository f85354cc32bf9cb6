"""What every task shares: input scaling, optimizer and scheduler from configs, metrics per epoch."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim import Optimizer
from torchmetrics import MeanMetric, MetricCollection

from catbrain.errors import diverged
from catbrain.predictor import Head, Predictor
from catbrain.predictor.predictor import SCALING
from catbrain.tasks.closed_form import ClosedForm, check_pairing, solve
from catbrain.tasks.metrics import stage_metrics
from catbrain.tasks.steps import StepsPerCall

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], Any]
STAGES = ("train", "val", "test")


class Task(StepsPerCall, pl.LightningModule):
    """Trains ``model``, inside a :class:`Predictor` that holds its scaling, on batches ``(features, target, ...)``.

    The scaling is fitted on the training split, so the checkpoint carries it. Metrics are updated every call,
    computed once per epoch. ``steps_per_call = K > 1``: K optimizer steps per call (:mod:`catbrain.tasks.steps`);
    ``optimizer=closed_form``: solved exactly, then measured for one epoch (:mod:`.closed_form`).
    """

    head_class: type[Head]  # what the model's output means; its ``target`` says what the task learns from
    model_class: type[nn.Module] = nn.Module  # the models it can train

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        steps_per_call: int = 1,
    ) -> None:
        super().__init__()
        if not isinstance(steps_per_call, int) or steps_per_call < 1:
            raise ValueError(f"task.steps_per_call must be a positive integer, got {steps_per_call!r}")
        self.steps_per_call = steps_per_call
        self.automatic_optimization = steps_per_call == 1
        self._last_logged_step: int | None = None
        self._direct_steps = self._scaling_is_identity = False
        self.predictor = Predictor(model, self.make_head(model))
        check_pairing(optimizer, self.predictor)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        # Keyed "train_" etc.: nn.Module already has an attribute called "train".
        self.losses = nn.ModuleDict({f"{stage}_": MeanMetric() for stage in STAGES})
        self.metrics = stage_metrics(self.make_metrics, STAGES)
        self.history: list[dict[str, float]] = []  # epoch metrics of train and val, for the learning curves

    @property
    def model(self) -> nn.Module:
        return self.predictor.model

    @property
    def head(self) -> Head:
        return self.predictor.head

    @property
    def class_names(self) -> list[str] | None:
        return self.predictor.class_names

    def decide(self, output: torch.Tensor) -> torch.Tensor | None:
        """A class index per output row (from :meth:`forward`), or ``None`` for a task that predicts numbers."""
        return self.predictor.decide(output)

    # What a concrete task defines -------------------------------------------------------------
    def make_head(self, model: nn.Module) -> Head:
        """What the model's output means (a number, a class, ...): see :mod:`catbrain.predictor.heads`."""
        raise NotImplementedError

    def make_metrics(self) -> MetricCollection:
        raise NotImplementedError

    def loss(self, output: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        raise NotImplementedError

    def update_metrics(self, metrics: MetricCollection, output: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> None:
        raise NotImplementedError

    # Shared machinery ------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Take the data's scaling, feature names and ranges (where predictions say a row leaves the training data)."""
        datamodule = getattr(self.trainer, "datamodule", None) if stage == "fit" else None
        if datamodule is not None:
            self.take_data(datamodule)

    def take_data(self, datamodule: Any) -> None:
        """The data's scaling, feature names and ranges (the data set up), as a fit takes them."""
        self.predictor.set_scaling(**{name: getattr(datamodule, name, None) for name in SCALING})
        self.predictor.feature_names = list(datamodule.feature_names)
        self.predictor.target_name = datamodule.target_name
        train = getattr(datamodule, "splits", {}).get("train")
        if train is not None:
            low, high = train["features"].min(0).values.tolist(), train["features"].max(0).values.tolist()
            self.predictor.feature_ranges = {n: [lo, hi] for n, lo, hi in zip(self.predictor.feature_names, low, high)}

    def standardised(self, values: torch.Tensor) -> torch.Tensor:
        """Target-unit numbers in the units losses are computed in: the target standardised on the training split.

        So a learning rate means the same whatever the target's scale (a temperature, a price in
        thousands); metrics stay in the target's own units.
        """
        if self._scaling_is_identity:
            return values
        return (values - self.predictor.target_mean) / self.predictor.target_std

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The model's output in the target's units (the scaling skipped while training when it is the identity)."""
        if self.training and self._scaling_is_identity:  # fixed for the whole fit: see on_train_start
            return self.model(features)
        return self.predictor.output(features)

    def _step(self, stage: str, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        output = self(batch[0])
        loss = self.loss(output, batch)
        self.losses[f"{stage}_"].update(loss.detach(), weight=len(batch[0]))
        self.update_metrics(self.metrics[f"{stage}_"], output.detach(), batch)
        return loss

    def check_finite(self, loss: torch.Tensor, batch_idx: int) -> None:
        if not math.isfinite(loss.item()):  # stop before the optimizer step: the weights and checkpoints stay
            raise diverged(loss.item(), self.global_step, self.current_epoch, batch_idx)

    def log_step_loss(self, loss: torch.Tensor) -> None:
        every = self.trainer.log_every_n_steps
        if self._last_logged_step is None or self.global_step - self._last_logged_step >= every:
            self._last_logged_step = self.global_step
            self.log("train/loss_step", loss.detach(), prog_bar=True)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        if self.automatic_optimization:
            output = self(batch[0])
            loss = self.loss(output, batch)
            self.check_finite(loss, batch_idx)
            self.losses["train_"].update(loss.detach(), weight=len(batch[0]))
            self.update_metrics(self.metrics["train_"], output.detach(), batch)
            self.log_step_loss(loss)
            return loss
        return self.take_steps(batch if isinstance(batch, list) else [batch], batch_idx)

    def on_train_start(self) -> None:
        rule = self.predictor.linear_rule()
        if not self.history and rule is not None:  # where the weights start: the first point of their path
            names = self._feature_names(len(rule[0]))
            weights = {f"weight/{name}": float(w) for name, w in zip(names, rule[0])}
            self.history.append({"epoch": -1, "step": 0, **weights, "bias": rule[1]})
        self._direct_steps = self.can_step_directly()
        # The scaling buffers do not change while training: skip the four no-op operations if they are one.
        self._scaling_is_identity = self.predictor.scaling_is_identity()

    def on_train_end(self) -> None:
        self._scaling_is_identity = False

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._step("val", batch)

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._step("test", batch)

    def _log_epoch(self, stage: str) -> None:
        name = self.tested_split() if stage == "test" else stage  # "shift" while testing on the shifted split
        values = self.measured(stage, name)
        if stage != "test" and not self.trainer.sanity_checking:
            entry = {"epoch": self.current_epoch, "step": self.global_step}
            entry |= {key: float(value) for key, value in values.items()}
            rule = self.predictor.linear_rule() if stage == "val" else None
            if rule is not None:  # where the weights are after each epoch, for the picture of their path
                names = self._feature_names(len(rule[0]))
                entry |= {f"weight/{name}": float(w) for name, w in zip(names, rule[0])} | {"bias": rule[1]}
            self.history.append(entry)
        loss = values.pop(f"{name}/loss")
        self.log(f"{name}/loss", loss, prog_bar=stage == "val")  # the bar shows val/loss, the logs everything
        self.log_dict(values)

    def measured(self, stage: str, name: str) -> dict[str, torch.Tensor]:
        """The epoch's ``stage`` loss and metrics, named ``<name>/...``; reset for the next epoch."""
        values = {f"{name}/loss": self.losses[f"{stage}_"].compute()}
        values.update({name + key.removeprefix(stage): v for key, v in self.metrics[f"{stage}_"].compute().items()})
        self.losses[f"{stage}_"].reset(), self.metrics[f"{stage}_"].reset()
        return values

    def tested_split(self) -> str:
        """The split the running test reads (its loader says so): metrics are named after it."""
        loaders = self.trainer.test_dataloaders
        loader = loaders[0] if isinstance(loaders, (list, tuple)) and loaders else loaders
        return getattr(loader, "split", "test")

    def on_train_epoch_start(self) -> None:
        if isinstance(self.optimizers(), ClosedForm) and self.current_epoch == 0:  # after the clock has started
            train = self.trainer.datamodule.splits["train"]
            solve(self, train["features"], train[self.trainer.datamodule.batch_keys[0]])

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")
        if isinstance(self.optimizers(), ClosedForm):  # the weights are the answer: one epoch measures them
            self.trainer.should_stop = True

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")
        if not self.automatic_optimization and not self.trainer.sanity_checking:
            self.step_epoch_scheduler(after_validation=True)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        if not self.automatic_optimization:  # stepped by the task itself, see StepsPerCall.step_epoch_scheduler
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"}}

    def _feature_names(self, n: int) -> list[str]:
        return self.predictor.feature_names or [str(i) for i in range(n)]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """What the predictor is, as plain values: ``catbrain.predictor.checkpoint`` reads it back."""
        predictor = self.predictor
        checkpoint.setdefault("catbrain", {}).update(
            {
                "kind": predictor.head.kind,
                "head": predictor.head.arguments(),
                "feature_names": predictor.feature_names,
                "target_name": predictor.target_name,
                "class_names": predictor.class_names,
                "feature_ranges": predictor.feature_ranges,
            }
        )
        checkpoint["catbrain_history"] = list(self.history)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = list(checkpoint.get("catbrain_history", []))  # a resumed run's curves start at the beginning
        state = checkpoint.get("state_dict", {})
        if state and not any(key.startswith("predictor.") for key in state):  # written before the predictor existed
            checkpoint["state_dict"] = {
                (f"predictor.{key}" if key.startswith("model.") or key in SCALING else key): value
                for key, value in state.items()
            }
