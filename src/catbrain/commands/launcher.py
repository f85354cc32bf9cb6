"""How a Hydra command starts: compose its config once up front, let the command check it, then run the app.

Every check happens before Hydra makes a run or sweep directory, so bad input leaves nothing behind.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from catbrain.commands.common import die_quietly_on_broken_pipe, errors_as_one_line, in_multirun
from catbrain.config import compose, compose_following
from catbrain.errors import UsageError, describe


def override_key(override: str) -> str:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides([override])[0].key_or_group


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """Each job's overrides of a ``-m`` sweep (``a=1,2 b=x,y``: four jobs), as Hydra's basic sweeper makes them;
    none when another sweeper is chosen, whose sweep syntax is its own."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from catbrain.compat.hydra import sweep_jobs as split

    parsed = OverridesParser.create().parse_overrides(overrides)
    if any(o.key_or_group == "hydra/sweeper" for o in parsed):
        return []
    return split(parsed)


def unknown_key_message(config_name: str, overrides: list[str], error: Exception) -> str:
    """Hydra's composition error in one line; for a key that does not exist, the keys that do (Hydra's
    own hint, to add the key with ``+``, would only move the error to the constructor)."""
    text = str(error).split("Config search path")[0]
    if not text.startswith("Could not override '"):
        return text
    key = text.split("'")[1]
    parent, _, name = key.rpartition(".")
    others = [o for o in overrides if override_key(o) != key]
    try:
        from omegaconf import OmegaConf

        node = OmegaConf.select(compose(config_name, others), parent) if parent else None
    except Exception:
        node = None
    if node is None or not hasattr(node, "keys"):
        return f"{key}: no such key in the config"
    return f"{key}: {parent} has no key {name!r}; it has {sorted(k for k in node if not k.startswith('_'))}"


def check_buildable(cfg: Any) -> None:
    """Build a synthetic world's data module and the task (cheap: no data drawn, nothing trained), so that a
    value their constructors refuse stops the run before Hydra makes its directory."""
    from hydra.utils import instantiate

    if cfg.get("data", {}).get("_target_") != "catbrain.data.WorldDataModule":
        return  # your own data: its classes and columns come from the file, read when the run starts
    for node in ("data", "task"):
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
    """Run a ``@hydra.main`` app after two checks that turn bad input into one line.

    With ``ckpt_path=...`` the checkpoint's stored overrides are added (the user's own win), so
    evaluating or resuming a run needs no repetition of how it was configured; only the run's own
    data, model, task and training choices are ever stored or replayed (no ``hydra.*``, no paths).
    A resumed run continues in its own run directory unless ``hydra.run.dir`` says otherwise. Then
    the config (of each job, for a sweep) is composed, handed with the checkpoint to the entry
    point's ``prepare`` (its own pre-flight), and validated, so an unknown option, a bad value or a
    refused checkpoint fails before any work and before the run or sweep directory is made.
    """
    from catbrain.compat.hydra import parse_command_line

    die_quietly_on_broken_pipe()
    argv = sys.argv[1:]
    args = parse_command_line(argv)
    with errors_as_one_line(prog):
        overrides = list(args.overrides)
        user_keys = {override_key(o) for o in overrides}
        asks_for_help = args.help or args.hydra_help or args.info or args.shell_completion
        for key in required:
            if key not in user_keys and not asks_for_help:
                raise UsageError(f"{key}=... is required")
        if config_name == "eval" and any(key == "model" or key.startswith("model.") for key in user_keys):
            raise UsageError("catbrain-eval tests the checkpoint's own model: model overrides are not allowed")
        ckpt_values = [o.split("=", 1)[1] for o in overrides if override_key(o) == "ckpt_path"]
        injected: list[str] = []
        checkpoint: dict[str, Any] | None = None
        if ckpt_values and ckpt_values[-1] not in ("", "null"):
            from catbrain.predictor.checkpoint import read_checkpoint, refusing
            from catbrain.predictor.contents import describe as describe_checkpoint

            checkpoint = read_checkpoint(ckpt_values[-1])
            with refusing(ckpt_values[-1]):
                stored = describe_checkpoint(checkpoint)["overrides"]  # only the run's own choices: see replayable()
            # A group the user chose anew (data=csv) takes none of the stored values below it (data.n_train=...).
            replaced = tuple(f"{key}." for key in user_keys)
            injected = [
                o for o in stored if override_key(o) not in user_keys and not override_key(o).startswith(replaced)
            ]
            checkpoint_dir = Path(ckpt_values[-1]).resolve().parent
            if config_name == "train" and "hydra.run.dir" not in user_keys and checkpoint_dir.name == "checkpoints":
                # Resume in the run's own directory, so its best checkpoint and logs carry on.
                injected.append(f"hydra.run.dir={checkpoint_dir.parent}")
        special = args.help or args.hydra_help or args.cfg or args.info or args.shell_completion
        if not special and not args.config_dir and not args.config_name:
            from hydra.errors import HydraException

            from catbrain.validation import validate

            # Validation imports Lightning, which would give itself a stderr handler if logging had
            # none yet; with one in place its messages reach the run's log once Hydra sets it up.
            if not logging.getLogger().handlers:
                logging.getLogger().addHandler(logging.NullHandler())
            # A sweep: every job's config, so that a misspelt option or a bad value stops it before any job.
            jobs = sweep_jobs(overrides + injected) if args.multirun else [overrides + injected]
            following: set[tuple[str, ...]] = set()
            for job in jobs:
                try:
                    composed, added = compose_following(config_name, job)
                except HydraException as error:
                    raise UsageError(unknown_key_message(config_name, job, error)) from None
                following.add(tuple(added))
                if prepare is not None and checkpoint is not None:
                    prepare(composed, checkpoint)
                validate(composed)
                check_buildable(composed)
            if len(following) > 1:
                raise UsageError("the sweep's jobs hold data of different kinds (data.task): name the task")
            injected += list(following.pop()) if following else []
    global user_arguments
    user_arguments = list(argv)
    sys.argv = [sys.argv[0], *argv, *injected]
    app()
