"""What the entry points share: one-line errors, checkpoint reading, Hydra launching."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from catbrain.config import config_dir


class UsageError(ValueError):
    """Bad input from the user: its message is the whole story, no traceback needed."""


def fail(prog: str, message: str, code: int = 2) -> NoReturn:
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(code)


def key_value_arguments(argv: Sequence[str], allowed: Mapping[str, str]) -> dict[str, str]:
    """``key=value`` command-line arguments, each key one of ``allowed`` (name -> what it means)."""
    arguments: dict[str, str] = {}
    for argument in argv:
        key, separator, value = argument.partition("=")
        if not separator or key not in allowed:
            raise UsageError(f"unknown argument {argument!r}; expected key=value with key one of {sorted(allowed)}")
        arguments[key] = value
    return arguments


def usage(doc: str, allowed: Mapping[str, str]) -> str:
    """A command's ``--help``: its docstring, then its arguments and what each means."""
    width = max(map(len, allowed)) + 1
    return "\n".join(
        [doc.strip(), "", "Arguments:", *(f"  {key:<{width}} {meaning}" for key, meaning in allowed.items())]
    )


def describe(error: BaseException) -> str:
    """``Type: message`` of the error that matters: Hydra's instantiation wrapper gives way to its cause."""
    from hydra.errors import InstantiationException

    if isinstance(error, InstantiationException) and error.__cause__ is not None:
        cause = error.__cause__
        where = str(error).rsplit("full_key:", 1)[-1].strip() if "full_key:" in str(error) else ""
        return (f"{where}: " if where else "") + describe(cause)
    from catbrain.data.table import TableError
    from catbrain.predictor import CheckpointError
    from catbrain.validation import ConfigError

    if isinstance(error, (UsageError, TableError, ConfigError, CheckpointError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


def in_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:
        return False


@contextmanager
def errors_as_one_line(prog: str) -> Iterator[None]:
    """Turn any exception into one line on stderr and a non-zero exit (``HYDRA_FULL_ERROR=1`` shows tracebacks).

    Bad input exits with 2, any other failure with 1. In a sweep the job's error is printed and
    raised on, so that Hydra runs the other jobs and reports the failure at the end.
    """
    try:
        yield
    except Exception as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        reason, bad_input = explain(error)
        if in_multirun():
            print(f"{prog}: error: {reason}", file=sys.stderr)
            raise
        fail(prog, reason, code=2 if bad_input else 1)


def explain(error: BaseException) -> tuple[str, bool]:
    """The one-line reason for ``error``, and whether it is bad input (exit 2) rather than a failure (exit 1)."""
    from hydra.errors import ConfigCompositionException, OverrideParseException

    from catbrain.data.table import TableError
    from catbrain.predictor import CheckpointError
    from catbrain.validation import ConfigError

    instantiating = error.__cause__ is not None and "Instantiation" in type(error).__name__
    root = error.__cause__ if instantiating else error
    # A constructor refusing its arguments is bad input too, and so is a config Hydra cannot compose.
    bad_input = isinstance(root, (UsageError, TableError, ConfigError, CheckpointError)) or (
        instantiating and isinstance(root, (ValueError, TypeError))
    )
    if isinstance(error, (ConfigCompositionException, OverrideParseException)):
        return " ".join(str(error).split("Config search path")[0].split()), True
    return " ".join(describe(error).split()), bad_input


def die_quietly_on_broken_pipe() -> None:
    """``catbrain-... | head`` ends the program the way it ends ``cat``, without a traceback."""
    import signal

    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A catbrain checkpoint's contents, safely: tensors and plain containers only (``weights_only=True``)."""
    from catbrain.predictor import read_checkpoint

    return read_checkpoint(path)


def override_key(override: str) -> str:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides([override])[0].key_or_group


def compose(config_name: str, overrides: list[str]) -> Any:
    """Compose a config the way the entry point's Hydra app would (used to check it before any work)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return hydra_compose(config_name, overrides=overrides)


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
            from catbrain.predictor.checkpoint import describe, read_checkpoint, refusing

            checkpoint = read_checkpoint(ckpt_values[-1])
            with refusing(ckpt_values[-1]):
                stored = describe(checkpoint)["overrides"]  # only the run's own choices: see replayable()
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
            for job in jobs:
                try:
                    composed = compose(config_name, job)
                except HydraException as error:
                    raise UsageError(unknown_key_message(config_name, job, error)) from None
                if prepare is not None and checkpoint is not None:
                    prepare(composed, checkpoint)
                validate(composed)
                check_buildable(composed)
    global user_arguments
    user_arguments = list(argv)
    sys.argv = [sys.argv[0], *argv, *injected]
    app()
