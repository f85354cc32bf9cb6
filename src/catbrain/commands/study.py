"""A search's study: Optuna trials that are catbrain runs, stored in SQLite, locked against a second process,
resumed after a crash, and summarised like a sweep."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from catbrain.compat.optuna import trial_id
from catbrain.errors import UsageError, explain
from catbrain.run.summary import Row, write_summary
from catbrain.run.sweep_folders import read_metrics

STATES = {"COMPLETE": "ok", "FAIL": "failed", "PRUNED": "pruned", "RUNNING": "running", "WAITING": "waiting"}


def suggest(trial: Any, name: str, spec: DictConfig) -> Any:
    """The trial's value for option ``name``, drawn from its distribution."""
    if spec.type == "categorical":
        return trial.suggest_categorical(name, list(spec.choices))
    suggest_number = trial.suggest_int if spec.type == "int" else trial.suggest_float
    step = spec.get("step")
    extra = {"step": step} if step is not None else {}
    return suggest_number(name, spec.low, spec.high, log=bool(spec.get("log", False)), **extra)


def as_override(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"{name}={str(value).lower()}"
    return f"{name}={'null' if value is None else value!r}" if isinstance(value, float) else f"{name}={value}"


@contextlib.contextmanager
def trial_output(run_dir: Path) -> Iterator[None]:
    """Send what a trial prints and logs to ``<run_dir>/train.log``: the search itself prints one line a trial."""
    run_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    level = root.level
    with open(run_dir / "train.log", "a") as log, contextlib.redirect_stdout(log):
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        finally:
            root.removeHandler(handler)
            root.setLevel(level)


def trial_config(overrides: list[str], run_dir: Path) -> DictConfig:
    """The trial's training config, composed as catbrain-train would, without a progress bar."""
    from omegaconf import open_dict

    from catbrain.config import compose_config

    cfg = compose_config(overrides, run_dir)
    with open_dict(cfg):
        if cfg.get("callbacks"):
            cfg.callbacks.pop("progress_bar", None)
        cfg.trainer.enable_progress_bar = False
    return cfg


@contextlib.contextmanager
def locked(search_dir: Path) -> Iterator[None]:
    """Hold ``<search_dir>/search.lock`` for the whole search: one process per search directory, so a trial
    left RUNNING in the study when the lock is ours was left by a process that died."""
    search_dir.mkdir(parents=True, exist_ok=True)
    with open(search_dir / "search.lock", "w") as lock:
        try:
            import fcntl
        except ImportError:  # no advisory locks (Windows): trust the user to run one search per directory
            yield
            return
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(f"search.dir={str(search_dir)!r} is in use by another catbrain-search") from None
        yield


def open_study(cfg: DictConfig, search_dir: Path, settings: dict[str, Any]) -> Any:
    """Create the study in ``search.db``, or load it and check it was made with the same settings;
    trials a dead process left RUNNING are marked FAIL."""
    import optuna
    from hydra.utils import instantiate
    from optuna.trial import TrialState

    db = search_dir / "search.db"
    if not db.exists() and any(p.is_dir() and p.name.isdigit() for p in search_dir.iterdir()):
        raise UsageError(
            f"search.dir={str(search_dir)!r} holds trial directories but no search.db: give another search.dir"
        )
    storage = optuna.storages.RDBStorage(f"sqlite:///{db.resolve()}")
    direction = "minimize" if cfg.direction == "min" else "maximize"
    study = optuna.create_study(storage=storage, study_name=str(cfg.name), direction=direction, load_if_exists=True)
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", settings)
    elif stored != settings:
        differ = sorted(k for k in settings if stored.get(k) != settings[k])
        raise UsageError(
            f"search.dir={str(search_dir)!r} holds a study with other {', '.join(differ)} "
            f"({'; '.join(f'{k}: {stored.get(k)}' for k in differ)}): give the same ones or another search.dir"
        )
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        optuna.trial.Trial(study, trial_id(trial)).set_user_attr("error", "interrupted: its search process died")
        study.tell(trial.number, state=TrialState.FAIL)
    # A sampler seeded anew each run would draw the first run's values again: seed it past the trials so far.
    sampler_cfg = cfg.get("sampler") or {"_target_": "optuna.samplers.TPESampler"}
    study.sampler = instantiate(sampler_cfg, seed=int(cfg.get("seed", 0)) + len(study.trials))
    study.pruner = instantiate(cfg.pruner) if cfg.get("pruner") else optuna.pruners.NopPruner()
    return study


def trials_done(study: Any) -> int:
    """The trials that ran to an end (complete, pruned or failed on their own): one its process never finished
    (killed, Ctrl-C) is run again rather than counted towards ``search.n_trials``."""
    return sum(1 for trial in study.trials if not str(trial.user_attrs.get("error", "")).startswith("interrupted"))


def run_trial(study: Any, cfg: DictConfig, overrides: list[str], search_dir: Path, monitor: str) -> str:
    """Ask the study for a trial, train it in its own directory, tell the study how it ended; one line back."""
    import optuna
    from optuna.trial import TrialState

    from catbrain.commands.train import train
    from catbrain.run.callbacks import PruneTrial, SearchStopped

    trial = study.ask()
    params = {str(name): suggest(trial, str(name), spec) for name, spec in cfg.params.items()}
    chosen = [as_override(name, value) for name, value in params.items()]
    run_dir = (search_dir / str(trial.number)).resolve()
    trial.set_user_attr("run_dir", str(run_dir))
    trial.set_user_attr("overrides", [*overrides, *chosen])
    head = f"trial {trial.number}: {' '.join(chosen)}"
    try:
        with trial_output(run_dir):
            trial_cfg = trial_config([*overrides, *chosen], run_dir)
            metrics = train(trial_cfg, overrides=[*overrides, *chosen], callbacks=[PruneTrial(trial, monitor)])
        value = metrics.get(cfg.metric)
        if value is None:
            raise SearchStopped(f"search.metric={cfg.metric!r} is not in the run's metrics ({sorted(metrics)})")
        if not math.isfinite(value):
            raise ValueError(f"{cfg.metric} is {value}")
    except optuna.TrialPruned as pruned:
        trial.set_user_attr("error", str(pruned))
        study.tell(trial, state=TrialState.PRUNED)
        return f"{head} -> {pruned}"
    except BaseException as error:
        reason = explain(error)[0] if isinstance(error, Exception) else "interrupted"
        trial.set_user_attr("error", reason)
        study.tell(trial, state=TrialState.FAIL)
        if not isinstance(error, Exception) or isinstance(error, SearchStopped):
            raise
        return f"{head} -> failed: {reason}"
    study.tell(trial, value)
    return f"{head} -> {cfg.metric} = {value:.6g}"


def summarise(study: Any, cfg: DictConfig, search_dir: Path) -> Any:
    """``summary.csv`` and ``summary.md`` of every trial of the study, and the best one printed."""

    rows = []
    for trial in study.get_trials(deepcopy=False):
        run_dir = trial.user_attrs.get("run_dir", "")
        rows.append(
            Row(
                number=trial.number,
                overrides=list(trial.user_attrs.get("overrides", [])),
                status=STATES.get(trial.state.name, trial.state.name.lower()),
                metrics=read_metrics(Path(run_dir)) if trial.state.name == "COMPLETE" else {},
                run_dir=run_dir,
                error=trial.user_attrs.get("error", ""),
            )
        )
    title = f"catbrain-search: {cfg.name} ({search_dir})"
    return write_summary(search_dir, rows, str(cfg.metric), str(cfg.direction), title, label="trial")
