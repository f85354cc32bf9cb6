"""One rule per key a run reads: what values it may hold, checked before any work, named in one line.

Each rule says in words what is allowed (``must be an integer >= 1``), so that a bad value is
refused as ``trainer.max_steps=-5: must be -1 (no limit) or an integer >= 1`` before the run
directory exists, rather than as a ZeroDivisionError, an untrained model or a silent surprise
after it. The optimizer and scheduler are also built on a stand-in parameter, so that torch's own
checks (a negative momentum, ``betas`` outside [0, 1)) speak before the data is drawn.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from catbrain.errors import ConfigError
from catbrain.validation.common import is_number, value_at

Rule = Callable[[Any], bool]
SEED_LIMIT = 2**32 - 1  # NumPy's seeds are 32-bit
WORLD_LIMIT = 1e9  # a world's numbers: squares of the data stay finite in float32
PRECISIONS = ["32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "64", "16", "bf16",
              "transformer-engine", "transformer-engine-float16"]  # fmt: skip
ACCELERATORS = ["auto", "cpu", "gpu", "cuda", "mps"]


def integer(low: int, high: int | None = None, also: tuple[int, ...] = ()) -> tuple[Rule, str]:
    def rule(value: Any) -> bool:
        if not isinstance(value, int) or isinstance(value, bool):
            return False
        return (low <= value and (high is None or value <= high)) or value in also

    words = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    return rule, (" or ".join([*(_also_words(v) for v in also), words]))


def _also_words(value: int) -> str:
    return f"{value} (no limit)" if value == -1 else str(value)


def number(low: float, high: float | None = None, low_open: bool = False, high_open: bool = False) -> tuple[Rule, str]:
    def rule(value: Any) -> bool:
        above = value > low if low_open else value >= low
        below = high is None or (value < high if high_open else value <= high)
        return is_number(value) and above and below

    if high is None:
        return rule, f"a finite number {'>' if low_open else '>='} {low:g}"
    return rule, f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def one_of(*choices: Any) -> tuple[Rule, str]:
    return (lambda value: value in choices), f"one of {list(choices)}"


def interval(value: Any) -> bool:
    """``trainer.val_check_interval``: optimizer steps (an integer >= 1) or a fraction of an epoch in (0, 1]."""
    if isinstance(value, bool):
        return False
    return (isinstance(value, int) and value >= 1) or (isinstance(value, float) and 0 < value <= 1)


def devices(value: Any) -> bool:
    """``trainer.devices``: auto, -1 (all), a count >= 1, or a list of device indices."""
    if value == "auto" or value == -1 or (isinstance(value, str) and value.isdigit() and int(value) >= 1):
        return True
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


RULES: dict[str, tuple[Rule, str]] = {
    "seed": integer(0, SEED_LIMIT),
    "data.seed": integer(0, SEED_LIMIT),
    "data.n_train": (integer(2)[0], "an integer >= 2 (a standard deviation and r2 need two rows)"),
    "data.n_val": (integer(2)[0], "an integer >= 2 (a standard deviation and r2 need two rows)"),
    "data.n_test": (integer(2)[0], "an integer >= 2 (a standard deviation and r2 need two rows)"),
    "plots": (lambda value: isinstance(value, bool), "true or false"),
    "trainer.max_steps": integer(1, also=(-1,)),
    "trainer.min_epochs": integer(0),
    "trainer.log_every_n_steps": integer(1),
    "trainer.check_val_every_n_epoch": integer(1),
    "trainer.val_check_interval": (interval, "an integer >= 1 (optimizer steps) or a fraction of an epoch in (0, 1]"),
    "trainer.accumulate_grad_batches": integer(1),
    "trainer.gradient_clip_val": number(0),
    "trainer.num_sanity_val_steps": integer(0, also=(-1,)),
    "trainer.devices": (devices, "auto, -1 (every device), an integer >= 1 or a list of device indices"),
    "trainer.num_nodes": integer(1),
    "trainer.accelerator": one_of(*ACCELERATORS),
    "trainer.precision": one_of(*PRECISIONS, 16, 32, 64),
    "callbacks.model_checkpoint.save_top_k": integer(0, also=(-1,)),
    "callbacks.model_checkpoint.every_n_epochs": integer(0),
    "scheduler.T_max": (integer(1)[0], "an integer >= 1 (epochs: the cosine's half period)"),
    "scheduler.eta_min": number(0),
    "scheduler.factor": number(0, 1, low_open=True, high_open=True),
    "scheduler.patience": integer(0),
    "optimizer.weight_decay": number(0),
    "optimizer.momentum": number(0),
}


def check_rules(cfg: DictConfig) -> None:
    """Each key of :data:`RULES` that the config holds (and that is not null) has a value its rule allows."""
    for key, (rule, allowed) in RULES.items():
        value = value_at(cfg, key)
        if value is not None and not rule(value):
            raise ConfigError(f"{key}={value!r}: must be {allowed}")
    accelerator = value_at(cfg, "trainer.accelerator")
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={accelerator}: torch sees no GPU here (torch.cuda.is_available() is False, "
                f"torch {torch.__version__}); use trainer=cpu or trainer.accelerator=auto"
            )
    for node in ("data.world", "data.shift"):
        for where, number_found in _numbers(value_at(cfg, node), node):
            if not math.isfinite(number_found) or abs(number_found) > WORLD_LIMIT:
                raise ConfigError(f"{where}={number_found!r}: must be a finite number within +-{WORLD_LIMIT:g}")


def _numbers(node: Any, where: str):
    if isinstance(node, dict):
        for key, value in node.items():
            if not str(key).startswith("_"):
                yield from _numbers(value, f"{where}.{key}")
    elif isinstance(node, list):
        for position, value in enumerate(node):
            yield from _numbers(value, f"{where}[{position}]")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield where, float(node)


# torch's words for its optimizer arguments, and the key each names
TORCH_WORDS = {"Nesterov": "nesterov", "learning rate": "lr", "epsilon": "eps", "beta parameter": "betas",
               "weight_decay": "weight_decay", "momentum": "momentum"}  # fmt: skip


def check_optimizer(cfg: DictConfig) -> None:
    """Build the optimizer (and scheduler) on a stand-in parameter: torch's own refusals, named by their key."""
    import torch
    from hydra.utils import instantiate

    if not isinstance(cfg.get("optimizer"), DictConfig) or "_target_" not in cfg.optimizer:
        return
    try:
        make = instantiate(cfg.optimizer)
        optimizer = make([torch.nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError, RuntimeError) as error:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        key = next((k for words, k in TORCH_WORDS.items() if words in text), None)
        shown = f"optimizer.{key}={value_at(cfg, f'optimizer.{key}')!r}" if key else "optimizer"
        raise ConfigError(f"{shown}: {cfg.optimizer._target_} refuses it ({text})") from None
    scheduler = cfg.get("scheduler")
    if isinstance(scheduler, DictConfig) and "_target_" in scheduler:
        try:
            instantiate(scheduler)(optimizer)
        except (ValueError, TypeError, RuntimeError, ZeroDivisionError) as error:
            found = re.findall(r"\b[a-zA-Z_]+\b", str(error))
            key = next((k for k in scheduler if k in found and not k.startswith("_")), None)
            shown = f"scheduler.{key}={value_at(cfg, f'scheduler.{key}')!r}" if key else "scheduler"
            raise ConfigError(f"{shown}: {scheduler._target_} refuses it ({str(error).splitlines()[0]})") from None
