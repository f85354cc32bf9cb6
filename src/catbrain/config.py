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


def compose(config_name: str = "train", overrides: list[str] | None = None, hydra: bool = False) -> DictConfig:
    """Compose ``config_name`` with ``overrides`` as the command's Hydra app would: the one composition (``hydra``:
    with Hydra's own settings, ``hydra.*``, as the app sees them)."""
    if hydra:
        from hydra import compose as hydra_compose
        from hydra import initialize_config_dir

        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return hydra_compose(config_name, overrides=list(overrides or []), return_hydra_config=True)
    return compose_following(config_name, overrides)[0]


def compose_following(config_name: str = "train", overrides: list[str] | None = None) -> tuple[DictConfig, list[str]]:
    """The composed config, and the overrides added so that the task and model follow the data (see
    :func:`following_the_data`), which a Hydra app must be given too."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    overrides = list(overrides or [])
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = hydra_compose(config_name, overrides=overrides)
        added = following_the_data(cfg, overrides) if config_name == "train" else []
        return (hydra_compose(config_name, overrides=overrides + added) if added else cfg), added


def following_the_data(cfg: DictConfig, overrides: list[str]) -> list[str]:
    """``task=...`` (and ``model=linear``) when the data says what it holds and the command names no task.

    Your own data says whether its target is a number or a label (``data.task``); the experiment's task
    may learn the other (``data=csv data.task=classification`` on the default experiment, whose
    threshold task learns a score), or need a model the command replaced (``model=linear`` on the
    threshold task). Unless the command names a task, the task becomes the data's (a regression when
    ``data.task`` is not given), and a ``ThresholdedLinear`` it cannot use, unless named, a ``Linear``.
    Without ``data.task`` the data follows the task instead (``${target_kind:}``).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.utils import get_object

    named = {o.key_or_group for o in OverridesParser.create().parse_overrides(overrides)}
    data, task, model = (cfg.get(node) or {} for node in ("data", "task", "model"))
    try:  # unless given, data.task follows the task (${target_kind:}): then only the model may not fit
        kind = data.get("task") if isinstance(data, DictConfig) else None
    except Exception:
        return []  # named by validation in one line
    if "task" in named or kind not in ("regression", "classification") or not task.get("_target_"):
        return []
    try:
        task_class = get_object(task["_target_"])
        model_class = get_object(model["_target_"]) if model.get("_target_") else None
    except Exception:
        return []  # named by validation in one line
    head = getattr(task_class, "head_class", None)
    fits_data = head is None or head.target == ("class" if kind == "classification" else "number")
    wanted = getattr(task_class, "model_class", object)
    fits_model = model_class is None or not isinstance(model_class, type) or issubclass(model_class, wanted)
    if fits_data and fits_model:
        return []
    threshold = isinstance(model_class, type) and model_class.__name__ == "ThresholdedLinear"
    return [f"task={kind}"] + (["model=linear"] if "model" not in named and threshold else [])


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


def target_kind(*, _root_: DictConfig) -> str:
    """``${target_kind:}``: ``classification`` when the configured task learns from labels, else ``regression``:
    what a CSV's target column holds unless ``data.task`` says (then the task follows it instead)."""
    from hydra.utils import get_object

    task = _root_.get("task") or {}
    head = getattr(get_object(task["_target_"]), "head_class", None) if task.get("_target_") else None
    return "classification" if getattr(head, "target", None) == "class" else "regression"


def register_resolvers() -> None:
    """``${outputs:}`` (see :func:`model_outputs`), ``${target_kind:}`` (:func:`target_kind`), ``${len:list}``
    and ``${neg:number}``, so counts and thresholds flow from the data and task configs;
    ``${pid:}``, the process id, so that runs started in the same second get their own directories (cached with
    the config, as Hydra caches ``${now:}``, so that a sweep's jobs in other processes share their launcher's);
    ``${cwd:}``, the working directory, for paths that must be absolute (also outside a Hydra app), cached alike."""
    if not OmegaConf.has_resolver("outputs"):
        OmegaConf.register_new_resolver("outputs", model_outputs)
    if not OmegaConf.has_resolver("target_kind"):
        OmegaConf.register_new_resolver("target_kind", target_kind)
    if not OmegaConf.has_resolver("len"):
        OmegaConf.register_new_resolver("len", lambda items: len(items))
    if not OmegaConf.has_resolver("neg"):
        OmegaConf.register_new_resolver("neg", lambda value: -value)
    if not OmegaConf.has_resolver("pid"):
        OmegaConf.register_new_resolver("pid", lambda: os.getpid(), use_cache=True)
    if not OmegaConf.has_resolver("cwd"):
        OmegaConf.register_new_resolver("cwd", lambda: os.getcwd(), use_cache=True)


register_resolvers()
