"""What every task shares: input scaling, optimizer and scheduler from configs, metrics per epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim import Optimizer
from torchmetrics import MeanMetric, MetricCollection

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], Any]
STAGES = ("train", "val", "test")


class DivergenceError(ArithmeticError):
    """The training loss stopped being a finite number."""


class Task(pl.LightningModule):
    """Trains ``model`` on batches ``(features, target, ...)``.

    Features (and a numeric target) are standardised inside the task (``input_mean``,
    ``input_std``, ``target_mean``, ``target_std``, fitted on the training split when the data
    module offers them), so the checkpoint carries the scaling and a trained task always takes
    raw features and predicts in the target's own units. Metrics are updated every step and computed, logged
    and reset once per epoch; the step loss is logged every ``trainer.log_every_n_steps`` steps.
    """

    kind = "task"

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        in_features = model.in_features
        self.register_buffer("input_mean", torch.zeros(in_features))
        self.register_buffer("input_std", torch.ones(in_features))
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))
        # Keyed "train_" etc.: nn.Module already has an attribute called "train".
        self.losses = nn.ModuleDict({f"{stage}_": MeanMetric() for stage in STAGES})
        self.metrics = nn.ModuleDict({f"{stage}_": self.make_metrics().clone(prefix=f"{stage}/") for stage in STAGES})
        self.run_info: dict[str, Any] = {}

    # What a concrete task defines -------------------------------------------------------------
    def make_metrics(self) -> MetricCollection:
        raise NotImplementedError

    def loss(self, output: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        raise NotImplementedError

    def update_metrics(self, metrics: MetricCollection, output: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> None:
        raise NotImplementedError

    # Shared machinery ------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        for name in ("input_mean", "input_std", "target_mean", "target_std"):
            value = getattr(datamodule, name, None)
            if value is not None:
                getattr(self, name).copy_(value)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        output = self.model((features - self.input_mean) / self.input_std)
        return output * self.target_std + self.target_mean

    def _step(self, stage: str, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        output = self(batch[0])
        loss = self.loss(output, batch)
        self.losses[f"{stage}_"].update(loss.detach(), weight=len(batch[0]))
        self.update_metrics(self.metrics[f"{stage}_"], output.detach(), batch)
        return loss

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss = self._step("train", batch)
        if not torch.isfinite(loss):
            # Stop before the optimizer step: the weights and the last checkpoint stay as they were.
            raise DivergenceError(
                f"train/loss became {loss.item()} at step {self.global_step} (epoch {self.current_epoch}, "
                f"batch {batch_idx}); training stopped with the earlier checkpoints kept. "
                f"Try a smaller optimizer.lr."
            )
        if self.global_step % self.trainer.log_every_n_steps == 0:
            self.log("train/loss_step", loss.detach(), prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._step("val", batch)

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._step("test", batch)

    def _log_epoch(self, stage: str) -> None:
        values = {f"{stage}/loss": self.losses[f"{stage}_"].compute(), **self.metrics[f"{stage}_"].compute()}
        self.log_dict(values, prog_bar=stage == "val")
        self.losses[f"{stage}_"].reset()
        self.metrics[f"{stage}_"].reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["catbrain"] = self.run_info

    def linear_rule(self) -> tuple[torch.Tensor, float] | None:
        """Weights and bias of a single-output linear model in raw feature units, else ``None``."""
        weight, bias = getattr(self.model, "weight", None), getattr(self.model, "bias", None)
        if weight is None or bias is None or weight.numel() != self.input_mean.numel():
            return None
        weight, bias = weight.detach().flatten().cpu(), float(bias.detach().flatten()[0])
        mean, std = self.input_mean.cpu(), self.input_std.cpu()
        scale, shift = float(self.target_std), float(self.target_mean)
        return scale * weight / std, scale * (bias - float((weight * mean / std).sum())) + shift
