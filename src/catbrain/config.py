"""Where the configs live, and the resolvers they use."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent


def config_dir() -> str:
    """The packaged configs (an installed wheel), else the repository's ``conf/`` (a source checkout)."""
    for candidate in (PACKAGE_DIR / "conf", PACKAGE_DIR.parents[1] / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"catbrain's configs are missing: looked in {PACKAGE_DIR / 'conf'} and the repository")


def compose(config_name: str = "train", overrides: list[str] | None = None) -> DictConfig:
    """Compose ``config_name`` with ``overrides`` as the command's Hydra app would: the one composition."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides or []))


def compose_config(
    overrides: list[str] | None = None, run_dir: str | Path | None = None, config_name: str = "train"
) -> DictConfig:
    """The config an entry point would compose for ``overrides``, for use from Python.

    ``run_dir`` replaces Hydra's run directory (which only exists inside a Hydra app), e.g.
    ``catbrain.commands.train.train(compose_config(["experiment=weather_3pm"], "runs/first"))``.
    """
    overrides = list(overrides or [])
    if run_dir is not None:
        overrides.append(f"run_dir={Path(run_dir).resolve()}")
    return compose(config_name, overrides)


def model_outputs(*, _root_: DictConfig) -> int:
    """``${outputs:}``: how many outputs the configured task's model needs: one per class for a softmax
    classifier, one per quantile for a quantile regressor, else one. One source of truth: the data's
    classes and the task's quantiles, never typed twice."""
    from hydra.utils import get_object

    task = _root_.get("task") or {}
    head = getattr(get_object(task["_target_"]), "head_class", None) if task.get("_target_") else None
    kind = getattr(head, "kind", None)
    if kind == "classification":
        return len(task.class_names)
    if kind == "quantile":
        return len(task.quantiles)
    return 1


def register_resolvers() -> None:
    """``${outputs:}`` (see :func:`model_outputs`), ``${len:list}`` and ``${neg:number}``, so counts and
    thresholds flow from the data and task configs;
    ``${pid:}``, the process id, so that runs started in the same second get their own directories (cached with
    the config, as Hydra caches ``${now:}``, so that a sweep's jobs in other processes share their launcher's);
    ``${cwd:}``, the working directory, for paths that must be absolute (also outside a Hydra app), cached alike."""
    if not OmegaConf.has_resolver("outputs"):
        OmegaConf.register_new_resolver("outputs", model_outputs)
    if not OmegaConf.has_resolver("len"):
        OmegaConf.register_new_resolver("len", lambda items: len(items))
    if not OmegaConf.has_resolver("neg"):
        OmegaConf.register_new_resolver("neg", lambda value: -value)
    if not OmegaConf.has_resolver("pid"):
        OmegaConf.register_new_resolver("pid", lambda: os.getpid(), use_cache=True)
    if not OmegaConf.has_resolver("cwd"):
        OmegaConf.register_new_resolver("cwd", lambda: os.getcwd(), use_cache=True)


register_resolvers()
