"""Checks of the values themselves: sizes, fractions, seeds, thresholds and the pairs that must agree."""

from __future__ import annotations

from omegaconf import DictConfig

from catbrain.errors import ConfigError
from catbrain.validation.common import is_number, number_at_least, positive_int, value_at
from catbrain.validation.configs import importable


def check_values(cfg: DictConfig) -> None:
    threads = value_at(cfg, "threads")
    if (
        threads is not None
        and threads != "auto"
        and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1)
    ):
        raise ConfigError(f"threads={threads!r}: must be auto or a positive integer")
    for key in ("data.batch_size", "model.in_features"):
        positive_int(cfg, key)
    number_at_least(cfg, "optimizer.lr", 0.0, strict=True)
    number_at_least(cfg, "data.world.delta", 0.0, strict=False)
    number_at_least(cfg, "data.world.noise_std", 0.0, strict=False)
    for key in ("data.val_fraction", "data.test_fraction"):
        value = value_at(cfg, key)
        if value is not None and not (is_number(value) and 0 <= value < 1):
            raise ConfigError(f"{key}={value!r}: must be a number in [0, 1)")
    max_epochs = value_at(cfg, "trainer.max_epochs")
    if max_epochs is not None and (not isinstance(max_epochs, int) or (max_epochs < 1 and max_epochs != -1)):
        raise ConfigError(f"trainer.max_epochs={max_epochs!r}: must be a positive integer (or -1 for no limit)")

    steps_per_call = value_at(cfg, "task.steps_per_call")
    if steps_per_call is not None and (not isinstance(steps_per_call, int) or steps_per_call < 1):
        raise ConfigError(f"task.steps_per_call={steps_per_call!r}: must be a positive integer")
    if isinstance(steps_per_call, int) and steps_per_call > 1:
        interval = value_at(cfg, "trainer.val_check_interval")
        if isinstance(interval, int) and not isinstance(interval, bool) and interval % steps_per_call:
            raise ConfigError(
                f"trainer.val_check_interval={interval}: must be a multiple of task.steps_per_call={steps_per_call}"
            )
        for key, default in [("trainer.gradient_clip_val", None), ("trainer.accumulate_grad_batches", 1)]:
            value = value_at(cfg, key)
            if value not in (None, default):
                raise ConfigError(f"{key}={value}: needs task.steps_per_call=1 (it is {steps_per_call})")

    thresholds = value_at(cfg, "model.thresholds")
    if thresholds is not None:
        if not isinstance(thresholds, list) or not thresholds or not all(is_number(t) for t in thresholds):
            raise ConfigError(f"model.thresholds={thresholds!r}: must be a list of numbers")
        if any(low >= high for low, high in zip(thresholds, thresholds[1:])):
            raise ConfigError(f"model.thresholds={thresholds}: must be strictly increasing")

    targets, task = value_at(cfg, "data.targets"), value_at(cfg, "task._target_")
    head = getattr(importable(task), "head_class", None) if isinstance(task, str) else None
    if isinstance(targets, list) and targets and head is not None:
        wants_classes = head.target == "class"  # what the task's head says it learns from
        if wants_classes != (targets[0] == "decision"):
            wanted = (
                "class indices (data.targets=[decision])" if wants_classes else "numbers (e.g. data.targets=[score])"
            )
            raise ConfigError(
                f"data.targets={targets}: the task {task.rsplit('.', 1)[-1]} learns from {wanted} as the first target"
            )

    callbacks = cfg.get("callbacks") or {}
    if value_at(cfg, "trainer.enable_progress_bar") is False and callbacks.get("progress_bar") is not None:
        raise ConfigError(
            "trainer.enable_progress_bar=false: the callbacks include a progress bar; choose callbacks without it, "
            "e.g. callbacks=[model_checkpoint,early_stopping]"
        )

    in_features, features = value_at(cfg, "model.in_features"), value_at(cfg, "data.features")
    if isinstance(in_features, int) and isinstance(features, list) and in_features != len(features):
        raise ConfigError(f"model.in_features={in_features}: must equal the {len(features)} data.features {features}")
