"""How a Hydra command starts: compose its config once up front, let the command check it, then run the app.

Every check happens before Hydra makes a run or sweep directory, so bad input leaves nothing behind.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from catbrain.commands.common import (
    check_launcher_settings,
    check_run_folder,
    collector_paused_for_start_up,
    die_quietly_on_broken_pipe,
    errors_as_one_line,
    in_multirun,
)
from catbrain.config import compose_following
from catbrain.errors import UsageError, describe


def override_key(override: str) -> str:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_overrides([override])[0].key_or_group
    except HydraException:
        raise  # Hydra's own message names the override already
    except Exception as error:  # Python's, while Hydra reads a sweep: range(0,3,0)
        raise UsageError(sweep_error(override, error)) from None


def sweep_error(override: str, error: Exception) -> str:
    zero_step = "zero" in str(error) or "step:0)" in str(error)
    return f"{override}: {error}" + ("; range(start, stop, step) needs a step other than 0" if zero_step else "")


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """Each job's overrides of a ``-m`` sweep (``a=1,2 b=x,y``: four jobs), as Hydra's basic sweeper makes them;
    none when another sweeper is chosen, whose sweep syntax is its own. A sweep Hydra cannot expand, or that
    gives no values (``seed=range(0)``: a sweep of no jobs), is named in one line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from catbrain.compat.hydra import sweep_jobs as split

    loader = config_loader() if any("glob(" in o for o in overrides) else None  # a glob lists a group's options
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(overrides)
    if any(o.key_or_group == "hydra/sweeper" for o in parsed):
        return []
    for override in (o for o in parsed if o.is_sweep_override()):
        try:
            values = split([override])
        except Exception as error:
            raise UsageError(sweep_error(override.input_line, error)) from None
        if not values:
            raise UsageError(
                f"{override.input_line}: gives no values, so the sweep has no jobs; a sweep needs at least one "
                "value (seed=range(3) gives 0, 1 and 2)"
            )
    return split(parsed)


def config_loader() -> Any:
    """Hydra's loader of catbrain's configs, which a ``glob()`` sweep of a group's options needs to list them."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from catbrain.config import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return GlobalHydra.instance().config_loader()


def check_buildable(cfg: Any, config_name: str = "train", seen: set[str] | None = None) -> None:
    """Build the data module and the task (cheap: a world draws nothing yet, your own files are read and
    checked once, and kept for the run), so that a value their constructors refuse stops the run before
    Hydra makes its directory."""
    from hydra.utils import instantiate

    data = cfg.get("data", {})
    own_data = data.get("_target_") == "catbrain.data.CsvDataModule"
    if own_data and config_name == "train" and not (data.get("path") or data.get("train_path")):
        raise UsageError(
            "catbrain-train needs training rows: data.path=... (split by data.val_fraction and data.test_fraction) "
            "or data.train_path=...; data.test_path alone is for catbrain-eval"
        )
    for node in ("data",) if own_data else ("data", "task"):  # the task of your own data needs its classes
        if own_data and seen is not None:  # a sweep's jobs on the same files: read and checked once
            from omegaconf import OmegaConf

            files = OmegaConf.to_yaml(cfg.data)
            if files in seen:
                continue
            seen.add(files)
        try:
            instantiate(cfg[node])
        except Exception as error:
            raise UsageError(describe(error)) from None


user_arguments: list[str] | None = None  # the command line as typed, for the run's report


def shown_command(overrides: list[str] | None) -> list[str] | None:
    """The arguments a run's report shows: as typed for a single run, the job's own overrides in a sweep."""
    return user_arguments if user_arguments is not None and not in_multirun() else overrides


def launch(
    app: Callable[[], Any],
    prog: str,
    config_name: str,
    required: tuple[str, ...] = (),
    prepare: Callable[[Any, dict[str, Any]], Any] | None = None,
) -> None:
    """Run a ``@hydra.main`` app after :func:`preflight` has turned any bad input into one line."""
    die_quietly_on_broken_pipe()
    argv = sys.argv[1:]
    if "--version" in argv:  # catbrain's version (and its stack's), not Hydra's alone
        from catbrain.commands.cli import version_line

        print(version_line())
        return
    with collector_paused_for_start_up(), errors_as_one_line(prog):
        injected = preflight(config_name, argv, required, prepare)
    global user_arguments
    user_arguments = list(argv)
    sys.argv = [sys.argv[0], *argv, *injected]
    app()


def preflight(
    config_name: str,
    argv: list[str],
    required: tuple[str, ...] = (),
    prepare: Callable[[Any, dict[str, Any]], Any] | None = None,
) -> list[str]:
    """Every check of a command line before any work; the overrides to add to it.

    With ``ckpt_path=...`` the checkpoint's stored overrides are added (the user's own win), so
    evaluating or resuming a run needs no repetition of how it was configured; only the run's own
    data, model, task and training choices are ever stored or replayed (no ``hydra.*``, no paths).
    A resumed run continues in its own run directory unless ``hydra.run.dir`` says otherwise. Then
    the config (of each job, for a sweep) is composed, handed with the checkpoint to the entry
    point's ``prepare`` (its own pre-flight), and validated, so an unknown option, a bad value or a
    refused checkpoint fails before any work and before the run or sweep directory is made; last,
    that directory's parent must be one a directory can be made in.
    """
    from catbrain.compat.hydra import parse_command_line

    args = parse_command_line(argv)
    overrides = list(args.overrides)
    user_keys = {override_key(o) for o in overrides}
    asks_for_help = args.help or args.hydra_help or args.info or args.shell_completion
    flags = {"--run": args.run, "--multirun": args.multirun, "--cfg": args.cfg, "--info": args.info,
             "--shell-completion": args.shell_completion}  # fmt: skip
    if sum(bool(on) for on in flags.values()) > 1:  # Hydra would say so with a traceback
        given = " and ".join(flag for flag, on in flags.items() if on)
        raise UsageError(f"{given}: give only one of {', '.join(flags)}")
    for key in required:
        if key not in user_keys and not asks_for_help:
            raise UsageError(f"{key}=... is required")
    if config_name == "eval" and any(key == "model" or key.startswith("model.") for key in user_keys):
        raise UsageError("catbrain-eval tests the checkpoint's own model: model overrides are not allowed")
    ckpt_values = [o.split("=", 1)[1] for o in overrides if override_key(o) == "ckpt_path"]
    injected: list[str] = []
    checkpoint: dict[str, Any] | None = None
    if ckpt_values and ckpt_values[-1] not in ("", "null"):
        from catbrain.predictor.checkpoint import check_resumable, read_checkpoint, refusing
        from catbrain.predictor.contents import describe as describe_checkpoint

        checkpoint = read_checkpoint(ckpt_values[-1])
        with refusing(ckpt_values[-1]):
            stored = describe_checkpoint(checkpoint)["overrides"]  # only the run's own choices: see replayable()
            if config_name == "train":
                check_resumable(checkpoint)
        # A group the user chose anew (data=csv) takes none of the stored values below it (data.n_train=...).
        replaced = tuple(f"{key}." for key in user_keys)
        injected = [o for o in stored if override_key(o) not in user_keys and not override_key(o).startswith(replaced)]
        # "+key=" added a key the configs then lacked; a later catbrain's may have it (optimizer.eps): add or set it.
        injected = ["+" + o if o.startswith("+") and not o.startswith("++") else o for o in injected]
        checkpoint_dir = Path(ckpt_values[-1]).resolve().parent
        if config_name == "train" and "hydra.run.dir" not in user_keys and checkpoint_dir.name == "checkpoints":
            # Resume in the run's own directory, so its best checkpoint and logs carry on.
            injected.append(f"hydra.run.dir={checkpoint_dir.parent}")
    special = args.help or args.hydra_help or args.cfg or args.info or args.shell_completion
    if not special and not args.config_dir and not args.config_name:
        from hydra.errors import HydraException

        from catbrain.compat.hydra import derive_job_config
        from catbrain.validation import validate

        # Validation imports Lightning, which would give itself a stderr handler if logging had
        # none yet; with one in place its messages reach the run's log once Hydra sets it up.
        if not logging.getLogger().handlers:
            logging.getLogger().addHandler(logging.NullHandler())
        # A sweep: every job's config, so that a misspelt option or a bad value stops it before any job.
        jobs = sweep_jobs(overrides + injected) if args.multirun else [overrides + injected]
        following: set[tuple[str, ...]] = set()
        seen: set[str] = set()
        first: tuple[list[str], Any] | None = None
        for job in jobs:
            # A job that differs from the first only in seeds or optimizer numbers: the first's config with those
            # values set (composing costs about 0.1 s a job); its values are validated all the same.
            composed = derive_job_config(first[1], first[0], job, copy=False) if first is not None else None
            if composed is None:
                try:
                    composed, added = compose_following(config_name, job)
                except HydraException as error:
                    from catbrain.commands.hints import unknown_key_message

                    raise UsageError(unknown_key_message(config_name, job, error)) from None
                following.add(tuple(added))
            if prepare is not None and checkpoint is not None:
                prepare(composed, checkpoint)
            validate(composed)
            if first is None or composed is not first[1]:
                check_buildable(composed, config_name, seen)
                first = first or (job, composed)  # derived jobs set their values in it, each one all of them
        if len(following) > 1:
            raise UsageError("the sweep's jobs hold data of different kinds (data.task): name the task")
        injected += list(following.pop()) if following else []
        if any(key.startswith(("hydra/launcher", "hydra.launcher")) for key in user_keys):
            check_launcher_settings(config_name, [o for o in overrides if override_key(o).startswith("hydra")])
        key = "hydra.sweep.dir" if args.multirun else "hydra.run.dir"
        given = [o.split("=", 1)[1] for o in overrides + injected if override_key(o) == key]
        check_run_folder(given[-1] if given else None, key, len(jobs) if "hydra.sweep.subdir" not in user_keys else 0)
    return injected
