"""Check a composed config before any work: each problem is one line naming the key, its value and what is allowed.

Values are checked where a typo would otherwise cost a run (non-positive sizes and rates,
unordered thresholds, a model whose input size disagrees with the data), and every ``_target_``
node is bound to its callable's signature, without building anything, so a misspelt argument
fails here rather than after the data is generated.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from catbrain.errors import ConfigError

# Arguments the entry points pass at call time rather than through the config.
SUPPLIED_AT_CALL = {"trainer": {"callbacks", "logger"}}


def _value(cfg: DictConfig, key: str) -> Any:
    """The resolved value at ``key``, or ``None`` when the key is absent or cannot be resolved here."""
    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=False)
        return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
    except OmegaConfBaseException:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(cfg: DictConfig, key: str) -> None:
    value = _value(cfg, key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigError(f"{key}={value!r}: must be a positive integer")


def _number_at_least(cfg: DictConfig, key: str, low: float, strict: bool) -> None:
    value = _value(cfg, key)
    if value is None:
        return
    if not _is_number(value) or (value <= low if strict else value < low):
        raise ConfigError(f"{key}={value!r}: must be a number {'>' if strict else '>='} {low:g}")


def check_resolvable(cfg: DictConfig) -> None:
    """Each interpolation in the data, model and task configs leads somewhere (a model that fits the data)."""
    from omegaconf.errors import InterpolationKeyError, InterpolationResolutionError, MissingMandatoryValue

    for node in ("data", "model", "task"):
        if node not in cfg:
            continue
        try:
            OmegaConf.to_container(cfg[node], resolve=True, throw_on_missing=True)
        except MissingMandatoryValue as error:
            text = str(error)
            key = text.split("Missing mandatory value:")[-1].split()[0] if "Missing mandatory value:" in text else node
            raise ConfigError(f"{key}: must be given (it has no default), e.g. {key}=...") from None
        except InterpolationKeyError as error:
            full_key = getattr(error, "full_key", None) or node
            missing = str(error).split("'")[1] if "'" in str(error) else str(error)
            if str(full_key).startswith("model.thresholds") and missing.startswith("data.world"):
                raise ConfigError(
                    f"{full_key}: refers to {missing!r}, which data without a world does not have: give the "
                    "thresholds and their classes, e.g. model.thresholds=[-0.25,0.25] "
                    "model.class_names=[approach,ignore,run_away]"
                ) from None
            raise ConfigError(
                f"{full_key}: refers to {missing!r}, which this config does not have; "
                f"do the model and task fit the data (e.g. the threshold task and ThresholdedLinear need data=cat)?"
            ) from None
        except InterpolationResolutionError:
            continue  # a value the data supplies later (class names read from a CSV file)


def check_values(cfg: DictConfig) -> None:
    threads = _value(cfg, "threads")
    if (
        threads is not None
        and threads != "auto"
        and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1)
    ):
        raise ConfigError(f"threads={threads!r}: must be auto or a positive integer")
    seed = _value(cfg, "seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ConfigError(f"seed={seed!r}: must be a non-negative integer")
    for key in ("data.n_train", "data.n_val", "data.n_test", "data.batch_size", "model.in_features"):
        _positive_int(cfg, key)
    _number_at_least(cfg, "optimizer.lr", 0.0, strict=True)
    _number_at_least(cfg, "data.world.delta", 0.0, strict=False)
    _number_at_least(cfg, "data.world.noise_std", 0.0, strict=False)
    for key in ("data.val_fraction", "data.test_fraction"):
        value = _value(cfg, key)
        if value is not None and not (_is_number(value) and 0 <= value < 1):
            raise ConfigError(f"{key}={value!r}: must be a number in [0, 1)")
    max_epochs = _value(cfg, "trainer.max_epochs")
    if max_epochs is not None and (not isinstance(max_epochs, int) or (max_epochs < 1 and max_epochs != -1)):
        raise ConfigError(f"trainer.max_epochs={max_epochs!r}: must be a positive integer (or -1 for no limit)")

    steps_per_call = _value(cfg, "task.steps_per_call")
    if steps_per_call is not None and (not isinstance(steps_per_call, int) or steps_per_call < 1):
        raise ConfigError(f"task.steps_per_call={steps_per_call!r}: must be a positive integer")
    if isinstance(steps_per_call, int) and steps_per_call > 1:
        interval = _value(cfg, "trainer.val_check_interval")
        if isinstance(interval, int) and not isinstance(interval, bool) and interval % steps_per_call:
            raise ConfigError(
                f"trainer.val_check_interval={interval}: must be a multiple of task.steps_per_call={steps_per_call}"
            )
        for key, default in [("trainer.gradient_clip_val", None), ("trainer.accumulate_grad_batches", 1)]:
            value = _value(cfg, key)
            if value not in (None, default):
                raise ConfigError(f"{key}={value}: needs task.steps_per_call=1 (it is {steps_per_call})")

    thresholds = _value(cfg, "model.thresholds")
    if thresholds is not None:
        if not isinstance(thresholds, list) or not thresholds or not all(_is_number(t) for t in thresholds):
            raise ConfigError(f"model.thresholds={thresholds!r}: must be a list of numbers")
        if any(low >= high for low, high in zip(thresholds, thresholds[1:])):
            raise ConfigError(f"model.thresholds={thresholds}: must be strictly increasing")

    targets, task = _value(cfg, "data.targets"), _value(cfg, "task._target_")
    head = getattr(_importable(task), "head_class", None) if isinstance(task, str) else None
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
    if _value(cfg, "trainer.enable_progress_bar") is False and callbacks.get("progress_bar") is not None:
        raise ConfigError(
            "trainer.enable_progress_bar=false: the callbacks include a progress bar; choose callbacks without it, "
            "e.g. callbacks=[model_checkpoint,early_stopping]"
        )

    in_features, features = _value(cfg, "model.in_features"), _value(cfg, "data.features")
    if isinstance(in_features, int) and isinstance(features, list) and in_features != len(features):
        raise ConfigError(f"model.in_features={in_features}: must equal the {len(features)} data.features {features}")


def _importable(target: str) -> Any:
    from hydra.utils import get_object

    try:
        return get_object(target)
    except Exception:
        return None  # named by check_signatures in one line


def _targets(node: Any, path: str = ""):
    if isinstance(node, dict):
        if "_target_" in node:
            yield path, node
        for key, value in node.items():
            yield from _targets(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _targets(value, f"{path}[{i}]")


def check_signatures(cfg: DictConfig) -> int:
    """Bind the keys of every ``_target_`` node to its callable's signature; return how many were checked."""
    from hydra.utils import get_object

    checked = 0
    for path, node in _targets(OmegaConf.to_container(cfg, resolve=False)):
        target = node["_target_"]
        try:
            call = get_object(target)
        except Exception as error:
            raise ConfigError(f"{path}._target_={target!r}: cannot be imported ({error})") from None
        arguments = {key: None for key in node if not key.startswith("_")}
        arguments.update(dict.fromkeys(SUPPLIED_AT_CALL.get(path, ())))
        try:
            signature = inspect.signature(call)
        except (TypeError, ValueError):
            continue
        try:
            (signature.bind_partial if node.get("_partial_") else signature.bind)(**arguments)
        except TypeError as error:
            raise ConfigError(f"{path}: {target} does not take these arguments ({error})") from None
        checked += 1
    return checked


def check_arguments(cfg: DictConfig) -> None:
    """A component that says which values of its arguments it takes (a ``check_arguments(path, **arguments)``
    classmethod, raising :class:`ConfigError` naming ``path.argument``) checks them here, before any work."""
    for path, node in _targets(OmegaConf.to_container(cfg, resolve=False)):
        check = getattr(_importable(node["_target_"]), "check_arguments", None)
        values = _value(cfg, path)
        if callable(check) and isinstance(values, dict):
            check(path, **{key: value for key, value in values.items() if not key.startswith("_")})


# Targets that need an optional extra, and the module that tells whether it is installed.
EXTRAS = {
    "catbrain.run.tracking.mlflow_logger": ("mlflow", "mlflow"),
    "pytorch_lightning.loggers.TensorBoardLogger": ("tensorboard", "tensorboard"),
}


def check_extras(cfg: DictConfig) -> None:
    """A config that needs an optional extra which is not installed is refused before any work, naming the extra."""
    import importlib.util

    for path, node in _targets(OmegaConf.to_container(cfg, resolve=False)):
        module, extra = EXTRAS.get(node["_target_"], (None, None))
        if module is not None and importlib.util.find_spec(module) is None:
            raise ConfigError(f"{path}: {node['_target_']} needs {module}, which is not installed: "
                              f"pip install 'catbrain[{extra}]'")  # fmt: skip


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first problem found in ``cfg``."""
    check_resolvable(cfg)
    check_values(cfg)
    check_signatures(cfg)
    check_arguments(cfg)
    check_extras(cfg)
