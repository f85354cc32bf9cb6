"""Checks of a config's shape: every interpolation leads somewhere, every ``_target_`` takes its keys and
is installed, and components that say which values they take (``check_arguments``) are asked."""

from __future__ import annotations

import inspect
from typing import Any

from omegaconf import DictConfig, OmegaConf

from catbrain.errors import ConfigError
from catbrain.validation.common import value_at

# Arguments the entry points pass at call time rather than through the config.
SUPPLIED_AT_CALL = {"trainer": {"callbacks", "logger"}}


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


def importable(target: str) -> Any:
    from hydra.utils import get_object

    try:
        return get_object(target)
    except Exception:
        return None  # named by check_signatures in one line


def targets(node: Any, path: str = ""):
    if isinstance(node, dict):
        if "_target_" in node:
            yield path, node
        for key, value in node.items():
            yield from targets(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from targets(value, f"{path}[{i}]")


def check_signatures(cfg: DictConfig) -> int:
    """Bind the keys of every ``_target_`` node to its callable's signature; return how many were checked."""
    from hydra.utils import get_object

    checked = 0
    for path, node in targets(OmegaConf.to_container(cfg, resolve=False)):
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
    for path, node in targets(OmegaConf.to_container(cfg, resolve=False)):
        check = getattr(importable(node["_target_"]), "check_arguments", None)
        if not callable(check):
            continue
        arguments = {key: value_at(cfg, f"{path}.{key}") for key in node if not str(key).startswith("_")}
        # A value only the running app can resolve (${run_dir}) is left to the component's default.
        unresolved = {k for k, raw in node.items() if isinstance(raw, str) and "${" in raw and arguments.get(k) is None}
        check(path, **{key: value for key, value in arguments.items() if key not in unresolved})


# Targets that need an optional extra, and the module that tells whether it is installed.
EXTRAS = {
    "catbrain.run.tracking.mlflow_logger": ("mlflow", "mlflow"),
    "pytorch_lightning.loggers.TensorBoardLogger": ("tensorboard", "tensorboard"),
}


def check_extras(cfg: DictConfig) -> None:
    """A config that needs an optional extra which is not installed is refused before any work, naming the extra."""
    import importlib.util

    for path, node in targets(OmegaConf.to_container(cfg, resolve=False)):
        module, extra = EXTRAS.get(node["_target_"], (None, None))
        if module is not None and importlib.util.find_spec(module) is None:
            raise ConfigError(f"{path}: {node['_target_']} needs {module}, which is not installed: "
                              f"pip install 'catbrain[{extra}]'")  # fmt: skip
