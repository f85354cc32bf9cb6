"""catbrain-search: an Optuna search over catbrain-train's options that resumes, prunes and survives crashing trials.

catbrain-search search=cat_threat_lr                        # conf/search/cat_threat_lr.yaml
catbrain-search search=cat_threat_lr search.n_trials=30     # again: the same study goes on up to 30 trials
catbrain-search search=my_search.yaml optimizer=sgd         # a search file of your own; train overrides for all

The study lives in ``<search.dir>/search.db`` (SQLite), so running the same command again continues
it; each trial trains in ``<search.dir>/<trial number>/`` by calling ``catbrain.train.train``, reports
its validation metric each epoch to the pruner, and ends COMPLETE, PRUNED or FAIL (with its one-line
reason); the search goes on either way and ends with ``summary.csv`` and ``summary.md``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from catbrain import _cli
from catbrain.compat.optuna import trial_id
from catbrain.config import config_dir

PROG = "catbrain-search"
KEYS = {
    "name": "names the study and the default directory",
    "dir": "the search directory: search.db, one run directory per trial, summary.csv, summary.md",
    "n_trials": "trials in all, those of earlier runs of the same search included",
    "metric": "the trial's value, from its metrics.json (e.g. val/loss: a test/ metric would tune on the test data)",
    "direction": "min or max",
    "monitor": "the validation metric reported each epoch for pruning; null: metric with test/ -> val/",
    "seed": "the sampler's seed",
    "sampler": "an Optuna sampler (_target_ and its arguments)",
    "pruner": "an Optuna pruner (_target_ and its arguments), or null for none",
    "overrides": "catbrain-train overrides for every trial (yours on the command line come after)",
    "params": "option -> {type: float|int|categorical, low, high, log, step, choices}",
}
PARAM_KEYS = {
    "float": {"low", "high", "log", "step"},
    "int": {"low", "high", "log", "step"},
    "categorical": {"choices"},
}
STATES = {"COMPLETE": "ok", "FAIL": "failed", "PRUNED": "pruned", "RUNNING": "running", "WAITING": "waiting"}
USAGE = f"""{PROG}: search catbrain-train's options with Optuna; resumable, with pruning.
Usage: {PROG} search=NAME|FILE.yaml [search.KEY=VALUE ...] [catbrain-train overrides ...]

NAME is a config in conf/search/ (NAMES), or give the path of a YAML file of your own.
Keys of a search config (search.KEY=VALUE on the command line replaces one):
""" + "\n".join(f"  {key:10} {text}" for key, text in KEYS.items())


def search_configs() -> list[str]:
    return sorted(p.stem for p in (Path(config_dir()) / "search").glob("*.yaml"))


def load_search_config(choice: str, overrides: Sequence[str]) -> DictConfig:
    """The search config ``choice`` (a name in ``conf/search/`` or a YAML file) with ``search.KEY=VALUE`` applied."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    path = Path(choice)
    if not (choice.endswith((".yaml", ".yml")) and path.is_file()):
        path = Path(config_dir()) / "search" / f"{choice}.yaml"
    if not path.is_file():
        if choice.endswith((".yaml", ".yml")):
            raise _cli.UsageError(f"search={choice!r}: no such file ({Path(choice).resolve()})")
        raise _cli.UsageError(
            f"search={choice!r}: no such search config (one of {search_configs()}, or the path of a .yaml file)"
        )
    cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig):
        raise _cli.UsageError(f"search={choice!r}: {path} is not a mapping of search keys")
    cfg.setdefault("name", path.stem)
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group.removeprefix("search.")
        if key.split(".")[0] not in KEYS:
            raise _cli.UsageError(f"search.{key}: unknown search key (allowed: {sorted(KEYS)})")
        value = None if override.is_delete() else override.value()
        if key.startswith("params."):
            set_param(cfg, key.removeprefix("params."), value, override.is_delete())
        elif override.is_delete():
            cfg.pop(key, None)
        else:
            OmegaConf.update(cfg, key, value, merge=False, force_add=True)
    unknown = sorted(set(cfg) - set(KEYS))
    if unknown:
        raise _cli.UsageError(f"search={choice!r}: unknown search keys {unknown} (allowed: {sorted(KEYS)})")
    check_search_config(cfg)
    return cfg


def set_param(cfg: DictConfig, path: str, value: Any, delete: bool) -> None:
    """``search.params.optimizer.lr.high=0.5`` on the command line: option names hold dots themselves, so the
    longest option name ``path`` starts with is the option, the rest its key; a path that names no option
    adds one (``search.params.model.hidden={type: categorical, ...}``); ``~search.params.NAME`` removes one."""
    if cfg.get("params") is None:
        cfg.params = {}
    name = next((n for n in sorted(cfg.params, key=len, reverse=True) if path.startswith(f"{n}.")), path)
    key = path[len(name) + 1 :]
    if delete:
        (cfg.params[name] if key else cfg.params).pop(key or name, None)
    elif key:
        cfg.params[name][key] = value
    else:
        cfg.params[name] = value


def check_search_config(cfg: DictConfig) -> None:
    """Refuse a search config that cannot work, naming the key, its value and what is allowed."""
    from catbrain.sweeps import check_choice

    n_trials = cfg.get("n_trials")
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        raise _cli.UsageError(f"search.n_trials={n_trials!r}: must be a positive integer")
    if cfg.get("direction") is None or cfg.get("metric") is None:
        raise _cli.UsageError("search.metric and search.direction must be given (e.g. val/loss and min)")
    check_choice(cfg.metric, cfg.direction, "search.")
    seed = cfg.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise _cli.UsageError(f"search.seed={seed!r}: must be a non-negative integer")
    if not isinstance(cfg.get("params"), DictConfig) or not cfg.params:
        raise _cli.UsageError(
            "search.params: give at least one option to search, e.g. optimizer.lr: {type: float, ...}"
        )
    for name, spec in cfg.params.items():
        where = f"search.params.{name}"
        kind = spec.get("type") if isinstance(spec, DictConfig) else None
        if kind not in PARAM_KEYS:
            raise _cli.UsageError(f"{where}.type={kind!r}: must be one of {sorted(PARAM_KEYS)}")
        extra = sorted(set(spec) - PARAM_KEYS[kind] - {"type"})
        if extra:
            raise _cli.UsageError(
                f"{where}: unknown keys {extra} for type {kind} (allowed: {sorted(PARAM_KEYS[kind])})"
            )
        if kind == "categorical":
            choices = spec.get("choices")
            if (
                not isinstance(choices, ListConfig)
                or not choices
                or any(isinstance(c, (DictConfig, ListConfig)) for c in choices)
            ):
                raise _cli.UsageError(f"{where}.choices={choices!r}: must be a non-empty list of numbers or strings")
            continue
        low, high = spec.get("low"), spec.get("high")
        number = int if kind == "int" else (int, float)
        if not all(isinstance(v, number) and not isinstance(v, bool) for v in (low, high)) or not low < high:
            raise _cli.UsageError(f"{where}: low={low!r}, high={high!r}: must be {kind} numbers with low < high")
        if spec.get("log") and low <= 0:
            raise _cli.UsageError(f"{where}: low={low!r}: must be > 0 with log: true")


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


def check_training_overrides(overrides: list[str], params: DictConfig, search_dir: Path) -> None:
    """Compose and validate the trials' shared config once, before any trial: bad input fails at once."""
    from hydra.errors import HydraException

    from catbrain.validation import validate

    try:
        cfg = trial_config(overrides, search_dir)
    except HydraException as error:
        raise _cli.UsageError(str(error).split("Config search path")[0]) from None
    validate(cfg)
    missing = object()
    for name in params:
        key = str(name).lstrip("+~")
        if not str(name).startswith("+") and OmegaConf.select(cfg, key, default=missing) is missing:
            raise _cli.UsageError(f"search.params.{name}: {key!r} is not an option of the training config")


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
            raise _cli.UsageError(f"search.dir={str(search_dir)!r} is in use by another {PROG}") from None
        yield


def open_study(cfg: DictConfig, search_dir: Path, settings: dict[str, Any]) -> Any:
    """Create the study in ``search.db``, or load it and check it was made with the same settings;
    trials a dead process left RUNNING are marked FAIL."""
    import optuna
    from hydra.utils import instantiate
    from optuna.trial import TrialState

    db = search_dir / "search.db"
    if not db.exists() and any(p.is_dir() and p.name.isdigit() for p in search_dir.iterdir()):
        raise _cli.UsageError(
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
        raise _cli.UsageError(
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


def run_trial(study: Any, cfg: DictConfig, overrides: list[str], search_dir: Path, monitor: str) -> str:
    """Ask the study for a trial, train it in its own directory, tell the study how it ended; one line back."""
    import optuna
    from optuna.trial import TrialState

    from catbrain.callbacks import PruneTrial, SearchStopped
    from catbrain.train import train

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
        reason = _cli.explain(error)[0] if isinstance(error, Exception) else "interrupted"
        trial.set_user_attr("error", reason)
        study.tell(trial, state=TrialState.FAIL)
        if not isinstance(error, Exception) or isinstance(error, SearchStopped):
            raise
        return f"{head} -> failed: {reason}"
    study.tell(trial, value)
    return f"{head} -> {cfg.metric} = {value:.6g}"


def summarise(study: Any, cfg: DictConfig, search_dir: Path) -> Any:
    """``summary.csv`` and ``summary.md`` of every trial of the study, and the best one printed."""
    from catbrain.sweeps import Row, read_metrics, write_summary

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
    title = f"{PROG}: {cfg.name} ({search_dir})"
    return write_summary(search_dir, rows, str(cfg.metric), str(cfg.direction), title, label="trial")


def run_search(argv: Sequence[str]) -> int:
    """Run (or continue) the search that ``argv`` describes; return the exit code."""
    chosen = [a for a in argv if a.startswith("search=")]
    search_overrides = [a for a in argv if a.startswith("search.")]
    train_overrides = [a for a in argv if not a.startswith(("search=", "search."))]
    if not chosen:
        raise _cli.UsageError(f"search=NAME is required (one of {search_configs()}, or the path of a .yaml file)")
    cfg = load_search_config(chosen[-1].split("=", 1)[1], search_overrides)
    search_dir = Path(str(cfg.get("dir") or f"searches/{cfg.name}"))
    overrides = [str(o) for o in cfg.get("overrides") or []] + train_overrides
    monitor = str(cfg.get("monitor") or str(cfg.metric).replace("test/", "val/", 1))
    params = OmegaConf.to_container(cfg.params, resolve=True)
    settings = {"overrides": overrides, "params": params, "metric": str(cfg.metric), "direction": str(cfg.direction)}

    if not logging.getLogger().handlers:  # before Lightning's import, which would add a console handler of its own
        logging.getLogger().addHandler(logging.NullHandler())
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_training_overrides(overrides, cfg.params, search_dir)
    with locked(search_dir):
        study = open_study(cfg, search_dir, settings)
        done = len(study.trials)
        print(f"{PROG}: {cfg.name}: {done} of {cfg.n_trials} trials done; study in {search_dir / 'search.db'}")
        try:
            while len(study.trials) < cfg.n_trials:
                print(run_trial(study, cfg, overrides, search_dir, monitor), flush=True)
        finally:
            if study.trials:
                summarise(study, cfg, search_dir)
    if not any(t.state.name == "COMPLETE" for t in study.trials):
        _cli.fail(PROG, f"no trial of {cfg.name} completed (see {search_dir / 'summary.md'})", code=1)
    return 0


def main() -> None:
    _cli.die_quietly_on_broken_pipe()
    argv = sys.argv[1:]
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE.replace("NAMES", ", ".join(search_configs())))
        return
    try:
        with _cli.errors_as_one_line(PROG):
            sys.exit(run_search(argv))
    except KeyboardInterrupt:
        _cli.fail(PROG, "interrupted; run the same command again to continue the search", code=130)


if __name__ == "__main__":
    main()
