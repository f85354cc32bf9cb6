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

import functools
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
    from hydra.core.override_parser.types import OverrideType

    before, after = parsed(tuple(base)), parsed(tuple(job))
    if [o.key_or_group for o in before] != [o.key_or_group for o in after]:
        return None
    changed = [new for old, new in zip(before, after) if old.input_line != new.input_line]
    for override in changed:
        if (override.type != OverrideType.CHANGE or override.package is not None or override.is_sweep_override()
                or not per_job_key(override.key_or_group)):  # fmt: skip
            return None
    return changed


@functools.lru_cache(maxsize=8192)
def parsed(overrides: tuple[str, ...]) -> tuple[Any, ...]:
    """Hydra's parse of ``overrides`` (``OverridesParser``), once per sweep job: grouping, deriving and the sweeper's
    check each read it."""
    return tuple(_parser().parse_overrides(list(overrides)))


@functools.cache
def _parser() -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def derive_job_config(config: Any, base: list[str], job: list[str], copy: bool = True) -> Any:
    """``job``'s config from ``config`` (composed for the overrides ``base``) by setting the values that differ, or
    ``None`` when they differ in more than per-job values. A config with a ``hydra`` node gets the job's
    ``hydra.overrides.task`` and ``hydra.job.override_dirname`` as Hydra's config loader sets them.
    ``copy=False`` sets every per-job value of ``job`` in ``config`` itself (a check that keeps no config)."""
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from omegaconf import OmegaConf, open_dict, read_write

    changed = value_changes(base, job)
    if changed is None:
        return None
    for override in changed:
        node = OmegaConf.select(config, override.key_or_group, throw_on_missing=False)
        if OmegaConf.is_config(node) or override.key_or_group not in _leaf_keys(config, override.key_or_group):
            return None  # not a value of the composed config: compose it
    if not copy:  # every per-job value, so that what an earlier job set is set again
        changed = [o for o in parsed(tuple(job)) if per_job_key(o.key_or_group)]
    derived = copied(config) if copy else config
    with read_write(derived), open_dict(derived):
        for override in changed:
            OmegaConf.update(derived, override.key_or_group, override.value(), merge=False)
        if "hydra" in derived:
            derived.hydra.overrides.task = list(job)
            job_settings = derived.hydra.job.config.override_dirname
            derived.hydra.job.override_dirname = get_overrides_dirname(
                overrides=[o for o in parsed(tuple(job)) if not o.is_hydra_override()],
                kv_sep=job_settings.kv_sep, item_sep=job_settings.item_sep, exclude_keys=job_settings.exclude_keys,
            )  # fmt: skip
    return derived


def copied(config: Any) -> Any:
    """A deep copy of an OmegaConf config through ``pickle``, which OmegaConf supports and which keeps its types,
    flags and metadata as ``copy.deepcopy`` does, 5x faster (a sweep job's config: 1 ms instead of 5); ``deepcopy``
    where a value does not pickle."""
    import copy
    import pickle

    try:
        return pickle.loads(pickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # a value of the user's own that does not pickle
        return copy.deepcopy(config)


def _leaf_keys(config: Any, key: str) -> set[str]:
    parent, _, leaf = key.rpartition(".")
    from omegaconf import OmegaConf

    node = OmegaConf.select(config, parent) if parent else config
    return {f"{parent}.{name}" if parent else name for name in (node.keys() if OmegaConf.is_dict(node) else [])}


def basic_sweeper() -> type:
    """Hydra's basic sweeper, for the vectorized launcher's sweeper to build on."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return BasicSweeper


def task_container(config: Any) -> Any:
    """A job's config less ``hydra``, unresolved, as plain containers: what its ``.hydra/config.yaml`` shows."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(config, enum_to_str=True)
    plain.pop("hydra", None)
    return plain


def run_own_job(hydra_context: Any, task_function: Any, config: Any, job_dir_key: str, job_subdir_key: str,
                composed: dict[str, Any] | None = None) -> Any:  # fmt: skip
    """Hydra's ``run_job`` (``hydra.core.utils``, 1.3) for a job config that no one else holds (the vectorized
    launcher derives one per job): the same steps, files, logging and callbacks, in the same order, without its
    copies of the config (the task's config is made once; ``HydraConfig`` holds the job's own hydra node, as
    ``HydraConfig.set_config`` would hold a copy of it, ``hydra.*`` read-only and its parent the job's config) and
    with the three ``.hydra/*.yaml`` written by libyaml in OmegaConf's text. About 30 ms a job less, which a sweep
    of 64 small jobs trained at once pays 64 times. Uses ``DictConfig._set_parent`` and ``_set_flag`` as
    ``set_config`` does. ``composed``: the job's config (less ``hydra``) as plain containers, taken
    before anything resolved parts of it in place (Hydra's ``instantiate`` resolves the nodes a ``${model}`` points
    to), for ``.hydra/config.yaml``. Uses ``JobReturn``, ``JobRuntime``, ``configure_log``, ``env_override`` and
    ``_flush_loggers`` of ``hydra.core.utils``."""
    import os
    from pathlib import Path

    from hydra.core import utils
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig, OmegaConf, open_dict, read_write

    from catbrain.compat.omegaconf import config_yaml

    callbacks = hydra_context.callbacks
    old_cwd, original = os.getcwd(), HydraConfig.instance().cfg
    HydraConfig.instance().cfg = config  # the job's hydra node, for interpolations of the sweep directory
    output_dir = str(OmegaConf.select(config, job_dir_key))
    output_dir = os.path.join(output_dir, str(OmegaConf.select(config, job_subdir_key)))
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    # HydraConfig.set_config, less its copy of the hydra node: the node is this job's alone, read-only from here on.
    OmegaConf.set_readonly(config.hydra, True)
    hydra_cfg = DictConfig({"hydra": config.hydra}, flags={"no_deepcopy_set_nodes": True})
    hydra_cfg._set_flag("no_deepcopy_set_nodes", None)
    hydra_cfg.hydra._set_parent(config)  # as set_config: interpolations from hydra.* reach the job's config
    HydraConfig.instance().cfg = hydra_cfg
    chdir = False
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        chdir = bool(hydra_cfg.hydra.job.chdir)  # catbrain's configs say false; Hydra 1.2+'s default is false
        if chdir:
            os.chdir(output_dir)
        utils.configure_log(config.hydra.job_logging, config.hydra.verbose)
        overrides = OmegaConf.to_container(config.hydra.overrides.task)
        if config.hydra.output_subdir is not None:
            folder = Path(config.hydra.runtime.output_dir) / str(config.hydra.output_subdir)
            folder.mkdir(parents=True, exist_ok=True)
            written = {
                "config.yaml": composed if composed is not None else task_container(config),
                "hydra.yaml": OmegaConf.to_container(hydra_cfg, enum_to_str=True),
                "overrides.yaml": overrides,
            }
            for name, plain in written.items():
                (folder / name).write_text(config_yaml(plain), encoding="utf-8")
        task_cfg = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])  # the callbacks see both
        OmegaConf.set_struct(task_cfg, OmegaConf.is_struct(config))  # as a copy of the config would keep them
        OmegaConf.set_readonly(task_cfg, OmegaConf.is_readonly(config))
        ret = utils.JobReturn(cfg=task_cfg, hydra_cfg=hydra_cfg, overrides=overrides,
                              working_dir=output_dir if chdir else os.getcwd())  # fmt: skip
        with utils.env_override(hydra_cfg.hydra.job.env_set):
            callbacks.on_job_start(config=config, task_function=task_function)
            try:
                ret.return_value = task_function(task_cfg)
                ret.status = utils.JobStatus.COMPLETED
            except Exception as error:
                ret.return_value = error
                ret.status = utils.JobStatus.FAILED
        ret.task_name = utils.JobRuntime.instance().get("name")
        utils._flush_loggers()
        callbacks.on_job_end(config=config, job_return=ret)
        return ret
    finally:
        HydraConfig.instance().cfg = original
        if chdir:
            os.chdir(old_cwd)
