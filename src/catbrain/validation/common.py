"""Reading a composed config's values for the checks: resolved where they can be, ``None`` where absent."""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from catbrain.errors import ConfigError


def value_at(cfg: DictConfig, key: str) -> Any:
    """The resolved value at ``key``, or ``None`` when the key is absent or cannot be resolved here."""
    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=False)
        return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
    except OmegaConfBaseException:
        return None


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(cfg: DictConfig, key: str) -> None:
    value = value_at(cfg, key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigError(f"{key}={value!r}: must be a positive integer")


def number_at_least(cfg: DictConfig, key: str, low: float, strict: bool) -> None:
    value = value_at(cfg, key)
    if value is None:
        return
    if not is_number(value) or (value <= low if strict else value < low):
        raise ConfigError(f"{key}={value!r}: must be a number {'>' if strict else '>='} {low:g}")
