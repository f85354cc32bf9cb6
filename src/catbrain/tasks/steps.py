"""K optimizer steps per Lightning call: the same steps on the same batches as one per call, cheaper.

A tiny model's step costs less than Lightning's fixed cost per call (its loop, hooks, logging and
metrics). With ``steps_per_call = K > 1`` the loader hands the task a list of K batches, and the
task takes K optimizer steps in one ``training_step`` (manual optimisation): epoch schedulers,
``max_steps``, the divergence check and the loggers' step count behave as with ``K = 1``. On one
device in full precision with no gradient-watching callback, the optimizer is stepped directly,
skipping Lightning's per-step wrapping; otherwise every step goes through Lightning's own path.

Every Lightning private member this touches lives in :mod:`catbrain.compat.lightning`.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from catbrain.compat import lightning as private


class StepsPerCall:
    """The part of a :class:`~catbrain.tasks.Task` that takes ``steps_per_call`` optimizer steps per call."""

    steps_per_call: int
    _direct_steps: bool

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Batches from catbrain's loaders already live on the device: skip Lightning's walk through them."""
        first = batch[0][0] if isinstance(batch, list) and batch and isinstance(batch[0], tuple) else None
        if first is None and isinstance(batch, tuple) and batch:
            first = batch[0]
        if isinstance(first, torch.Tensor) and first.device == device:
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def take_steps(self, batches: list[tuple[torch.Tensor, ...]], batch_idx: int) -> None:
        """One optimizer step per batch; metrics and logging once for all of them."""
        optimizer = self.optimizers()
        direct = self._direct_steps
        max_steps = self.trainer.max_steps
        outputs, losses, taken = [], [], []
        for position, batch in enumerate(batches):
            if 0 <= max_steps <= self.global_step:
                break
            evaluated: list[tuple[torch.Tensor, torch.Tensor]] = []

            def closure(batch=batch, evaluated=evaluated, number=batch_idx * self.steps_per_call + position):
                output = self(batch[0])
                loss = self.loss(output, batch)
                self.check_finite(loss, number)
                optimizer.zero_grad(set_to_none=True)
                if direct:
                    loss.backward()
                else:
                    self.manual_backward(loss)
                evaluated.append((output.detach(), loss.detach()))
                return loss

            if direct:  # Lightning's step counter kept, its per-step wrapping skipped
                private.step_optimizer_directly(optimizer, closure)
            else:
                optimizer.step(closure=closure)
            outputs.append(evaluated[0][0])
            losses.append(evaluated[0][1])
            taken.append(batch)
        if not taken:
            return
        sizes = torch.tensor([len(batch[0]) for batch in taken], device=losses[0].device)
        self.losses["train_"].update(torch.stack(losses), weight=sizes)
        self.update_metrics(self.metrics["train_"], torch.cat(outputs), tuple(map(torch.cat, zip(*taken))))
        self.log_step_loss(losses[-1])
        # Lightning's logging step counts calls that stepped (it adds the last one itself): count optimizer steps.
        private.count_extra_logged_steps(self.trainer, len(taken) - 1)
        if batch_idx + 1 == self.trainer.num_training_batches:
            self.step_epoch_scheduler(after_validation=False)

    def can_step_directly(self) -> bool:
        """Whether optimizer steps may skip Lightning's per-step wrapping without changing any behaviour.

        They may on one device in full precision when no callback (nor the task) listens to the
        backward and optimizer-step hooks: then Lightning's wrapping does nothing but cost time.
        """
        from pytorch_lightning.strategies import SingleDeviceStrategy

        trainer = self.trainer
        if self.automatic_optimization or not isinstance(trainer.strategy, SingleDeviceStrategy):
            return False
        if str(trainer.precision) not in ("32-true", "32"):
            return False
        hooks = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
        bases = {id(self): pl.LightningModule}
        for listener in [*trainer.callbacks, self]:
            base = bases.get(id(listener), pl.Callback)
            if any(getattr(type(listener), hook) is not getattr(base, hook) for hook in hooks):
                return False
        return private.can_step_directly(self.optimizers())

    def step_epoch_scheduler(self, after_validation: bool) -> None:
        """Step an epoch scheduler where Lightning's automatic loop would (it does not in manual mode)."""
        scheduler = self.lr_schedulers()
        if scheduler is None:
            return
        plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        if plateau and after_validation and "val/loss" in self.trainer.callback_metrics:
            scheduler.step(self.trainer.callback_metrics["val/loss"])
        elif not plateau and not after_validation:
            scheduler.step()
