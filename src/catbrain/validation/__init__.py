"""Check a composed config before any work: each problem is one line naming the key, its value and what is allowed.

Values are checked where a typo would otherwise cost a run (non-positive sizes and rates,
unordered thresholds, a model whose input size disagrees with the data), and every ``_target_``
node is bound to its callable's signature, without building anything, so a misspelt argument
fails here rather than after the data is generated.
"""

from __future__ import annotations

from omegaconf import DictConfig

from catbrain.errors import ConfigError
from catbrain.validation.configs import check_arguments, check_extras, check_resolvable, check_signatures
from catbrain.validation.rules import check_optimizer, check_rules
from catbrain.validation.values import check_values

__all__ = ["ConfigError", "check_arguments", "check_extras", "check_resolvable", "check_signatures", "check_values",
           "validate"]  # fmt: skip


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first problem found in ``cfg``."""
    check_resolvable(cfg)
    check_rules(cfg)
    check_values(cfg)
    check_signatures(cfg)
    check_arguments(cfg)
    check_optimizer(cfg)
    check_extras(cfg)
