"""Hydra's private members used to check a command line before Hydra runs it.

- ``hydra._internal.utils.get_args_parser``: Hydra's own argv parser, so flags such as ``--cfg``
  and ``-m`` mean what they mean to the app.
- ``BasicSweeper.split_arguments``: how the basic sweeper expands ``a=1,2 b=x,y`` into jobs, so
  every job of a sweep is checked before any runs.
- ``JobReturn._return_value``: a failed job's exception, without re-raising it.
- ``BasicSweeper`` (subclassed by the vectorized launcher's sweeper) and ``get_overrides_dirname``: a sweep
  job's config derived from another's without composing it again (:func:`derive_job_config`).
"""

from __future__ import annotations

from typing import Any


def parse_command_line(argv: list[str]) -> Any:
    from hydra._internal.utils import get_args_parser

    return get_args_parser().parse_args(argv)


def sweep_jobs(parsed_overrides: list[Any]) -> list[list[str]]:
    """Each job's overrides, as the basic sweeper makes them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return [job for batch in BasicSweeper.split_arguments(parsed_overrides, None) for job in batch]


def job_error(job_return: Any) -> BaseException | None:
    value = getattr(job_return, "_return_value", None)
    return value if isinstance(value, BaseException) else None


# What a job of a sweep may change in a copy of another job's config, and a stacked group may hold per job: the
# seeds and the optimizer's numbers (never a group, a choice such as nesterov, a path or ``hydra.*``).
PER_JOB_KEYS = ("seed", "data.seed") + tuple(
    f"optimizer.{name}" for name in ("lr", "momentum", "dampening", "betas", "eps", "weight_decay")
)


def per_job_key(key: str) -> bool:
    """Whether ``key`` is one of :data:`PER_JOB_KEYS`."""
    return key in PER_JOB_KEYS


def value_changes(base: list[str], job: list[str]) -> list[Any] | None:
    """The parsed overrides by which ``job`` differs from ``base`` when each is ``key=value`` of a per-job key
    (the same keys in the same order), else ``None``: then the job's config must be composed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    parser = OverridesParser.create()
    before, after = parser.parse_overrides(list(base)), parser.parse_overrides(list(job))
    if [o.key_or_group for o in before] != [o.key_or_group for o in after]:
        return None
    changed = [new for old, new in zip(before, after) if old.input_line != new.input_line]
    for override in changed:
        if (override.type != OverrideType.CHANGE or override.package is not None or override.is_sweep_override()
                or not per_job_key(override.key_or_group)):  # fmt: skip
            return None
    return changed


def derive_job_config(config: Any, base: list[str], job: list[str], copy: bool = True) -> Any:
    """``job``'s config from ``config`` (composed for the overrides ``base``) by setting the values that differ, or
    ``None`` when they differ in more than per-job values. A config with a ``hydra`` node gets the job's
    ``hydra.overrides.task`` and ``hydra.job.override_dirname`` as Hydra's config loader sets them.
    ``copy=False`` sets every per-job value of ``job`` in ``config`` itself (a check that keeps no config)."""
    from copy import deepcopy

    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf, open_dict, read_write

    changed = value_changes(base, job)
    if changed is None:
        return None
    for override in changed:
        node = OmegaConf.select(config, override.key_or_group, throw_on_missing=False)
        if OmegaConf.is_config(node) or override.key_or_group not in _leaf_keys(config, override.key_or_group):
            return None  # not a value of the composed config: compose it
    if not copy:  # every per-job value, so that what an earlier job set is set again
        changed = [o for o in OverridesParser.create().parse_overrides(list(job)) if per_job_key(o.key_or_group)]
    derived = deepcopy(config) if copy else config
    with read_write(derived), open_dict(derived):
        for override in changed:
            OmegaConf.update(derived, override.key_or_group, override.value(), merge=False)
        if "hydra" in derived:
            derived.hydra.overrides.task = list(job)
            job_settings = derived.hydra.job.config.override_dirname
            derived.hydra.job.override_dirname = get_overrides_dirname(
                overrides=[o for o in OverridesParser.create().parse_overrides(list(job)) if not o.is_hydra_override()],
                kv_sep=job_settings.kv_sep, item_sep=job_settings.item_sep, exclude_keys=job_settings.exclude_keys,
            )  # fmt: skip
    return derived


def _leaf_keys(config: Any, key: str) -> set[str]:
    parent, _, leaf = key.rpartition(".")
    from omegaconf import OmegaConf

    node = OmegaConf.select(config, parent) if parent else config
    return {f"{parent}.{name}" if parent else name for name in (node.keys() if OmegaConf.is_dict(node) else [])}


def basic_sweeper() -> type:
    """Hydra's basic sweeper, for the vectorized launcher's sweeper to build on."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return BasicSweeper
