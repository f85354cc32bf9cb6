"""catbrain-search: an Optuna search over catbrain-train's options that resumes, prunes and survives crashing trials.

catbrain-search search=cat_threat_lr                        # conf/search/cat_threat_lr.yaml
catbrain-search search=cat_threat_lr search.n_trials=30     # again: the same study goes on up to 30 trials
catbrain-search search=my_search.yaml optimizer=sgd         # a search file of your own; train overrides for all

The study lives in ``<search.dir>/search.db`` (SQLite), so running the same command again continues
it; each trial trains in ``<search.dir>/<trial number>/`` by calling ``catbrain.commands.train.train``, reports
its validation metric each epoch to the pruner, and ends COMPLETE, PRUNED or FAIL (with its one-line
reason); the search goes on either way and ends with ``summary.csv`` and ``summary.md``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from catbrain.commands import common
from catbrain.commands.study import locked, open_study, run_trial, summarise, trial_config, trials_done
from catbrain.config import config_dir
from catbrain.errors import UsageError

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
            raise UsageError(f"search={choice!r}: no such file ({Path(choice).resolve()})")
        raise UsageError(
            f"search={choice!r}: no such search config (one of {search_configs()}, or the path of a .yaml file)"
        )
    cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig):
        raise UsageError(f"search={choice!r}: {path} is not a mapping of search keys")
    cfg.setdefault("name", path.stem)
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group.removeprefix("search.")
        if key.split(".")[0] not in KEYS:
            raise UsageError(f"search.{key}: unknown search key (allowed: {sorted(KEYS)})")
        value = None if override.is_delete() else override.value()
        if key.startswith("params."):
            set_param(cfg, key.removeprefix("params."), value, override.is_delete())
        elif override.is_delete():
            cfg.pop(key, None)
        else:
            OmegaConf.update(cfg, key, value, merge=False, force_add=True)
    unknown = sorted(set(cfg) - set(KEYS))
    if unknown:
        raise UsageError(f"search={choice!r}: unknown search keys {unknown} (allowed: {sorted(KEYS)})")
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
    from catbrain.commands.sweeps import check_choice

    n_trials = cfg.get("n_trials")
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        raise UsageError(f"search.n_trials={n_trials!r}: must be a positive integer")
    if cfg.get("direction") is None or cfg.get("metric") is None:
        raise UsageError("search.metric and search.direction must be given (e.g. val/loss and min)")
    check_choice(cfg.metric, cfg.direction, "search.")
    seed = cfg.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UsageError(f"search.seed={seed!r}: must be a non-negative integer")
    if not isinstance(cfg.get("params"), DictConfig) or not cfg.params:
        raise UsageError("search.params: give at least one option to search, e.g. optimizer.lr: {type: float, ...}")
    for name, spec in cfg.params.items():
        where = f"search.params.{name}"
        kind = spec.get("type") if isinstance(spec, DictConfig) else None
        if kind not in PARAM_KEYS:
            raise UsageError(f"{where}.type={kind!r}: must be one of {sorted(PARAM_KEYS)}")
        extra = sorted(set(spec) - PARAM_KEYS[kind] - {"type"})
        if extra:
            raise UsageError(f"{where}: unknown keys {extra} for type {kind} (allowed: {sorted(PARAM_KEYS[kind])})")
        if kind == "categorical":
            choices = spec.get("choices")
            if (
                not isinstance(choices, ListConfig)
                or not choices
                or any(isinstance(c, (DictConfig, ListConfig)) for c in choices)
            ):
                raise UsageError(f"{where}.choices={choices!r}: must be a non-empty list of numbers or strings")
            continue
        low, high = spec.get("low"), spec.get("high")
        number = int if kind == "int" else (int, float)
        if not all(isinstance(v, number) and not isinstance(v, bool) for v in (low, high)) or not low < high:
            raise UsageError(f"{where}: low={low!r}, high={high!r}: must be {kind} numbers with low < high")
        if spec.get("log") and low <= 0:
            raise UsageError(f"{where}: low={low!r}: must be > 0 with log: true")


def check_training_overrides(overrides: list[str], params: DictConfig, search_dir: Path) -> None:
    """Compose and validate the trials' shared config once, before any trial: bad input fails at once."""
    from hydra.errors import HydraException

    from catbrain.validation import validate

    try:
        cfg = trial_config(overrides, search_dir)
    except HydraException as error:
        raise UsageError(str(error).split("Config search path")[0]) from None
    validate(cfg)
    missing = object()
    for name in params:
        key = str(name).lstrip("+~")
        exists = OmegaConf.select(cfg, key, default=missing) is not missing
        if not str(name).startswith("+") and not exists:
            raise UsageError(f"search.params.{name}: {key!r} is not an option of the training config")
        if str(name).startswith("+") and not str(name).startswith("++") and exists:  # every trial would fail on it
            raise UsageError(f"search.params.{name}: {key!r} is an option of the training config already: name it "
                             f"{key} (without the +)")  # fmt: skip


def run_search(argv: Sequence[str]) -> int:
    """Run (or continue) the search that ``argv`` describes; return the exit code."""
    chosen = [a for a in argv if a.startswith("search=")]
    search_overrides = [a for a in argv if a.startswith("search.")]
    train_overrides = [a for a in argv if not a.startswith(("search=", "search."))]
    if not chosen:
        raise UsageError(f"search=NAME is required (one of {search_configs()}, or the path of a .yaml file)")
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
        done = trials_done(study)
        print(f"{PROG}: {cfg.name}: {done} of {cfg.n_trials} trials done; study in {search_dir / 'search.db'}")
        try:
            while trials_done(study) < cfg.n_trials:
                print(run_trial(study, cfg, overrides, search_dir, monitor), flush=True)
        finally:
            if study.trials:
                summarise(study, cfg, search_dir)
    if not any(t.state.name == "COMPLETE" for t in study.trials):
        common.fail(PROG, f"no trial of {cfg.name} completed (see {search_dir / 'summary.md'})", code=1)
    return 0


def main() -> None:
    common.die_quietly_on_broken_pipe()
    argv = sys.argv[1:]
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE.replace("NAMES", ", ".join(search_configs())))
        return
    try:
        with common.errors_as_one_line(PROG):
            sys.exit(run_search(argv))
    except KeyboardInterrupt:
        common.fail(PROG, "interrupted; run the same command again to continue the search", code=130)


if __name__ == "__main__":
    main()
