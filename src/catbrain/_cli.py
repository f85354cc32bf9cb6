"""What the entry points share: one-line errors, checkpoint reading, Hydra launching."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from catbrain.config import config_dir


class UsageError(ValueError):
    """Bad input from the user: its message is the whole story, no traceback needed."""


def fail(prog: str, message: str, code: int = 2) -> NoReturn:
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(code)


@contextmanager
def errors_as_one_line(prog: str) -> Iterator[None]:
    """Turn any exception into one line on stderr and a non-zero exit (``HYDRA_FULL_ERROR=1`` shows tracebacks)."""
    from catbrain.data.table import TableError
    from catbrain.validation import ConfigError

    try:
        yield
    except (UsageError, TableError, ConfigError) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        fail(prog, str(error), code=2)
    except Exception as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        fail(prog, f"{type(error).__name__}: {error}", code=1)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a catbrain checkpoint safely: tensors and plain containers only (``weights_only=True``)."""
    import pickle

    import torch

    file = Path(path)
    if not file.is_file():
        raise UsageError(f"ckpt_path={str(path)!r} does not exist or is not a file")
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "unsafe content"
        raise UsageError(f"ckpt_path={str(path)!r} was refused: it holds more than weights ({first_line})") from error
    except Exception as error:
        raise UsageError(f"ckpt_path={str(path)!r} is not a readable checkpoint ({error})") from error
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("catbrain"), dict):
        raise UsageError(f"ckpt_path={str(path)!r} is not a catbrain checkpoint (no 'catbrain' entry)")
    return checkpoint


def override_key(override: str) -> str:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides([override])[0].key_or_group


def compose(config_name: str, overrides: list[str]) -> Any:
    """Compose a config the way the entry point's Hydra app would (used to check it before any work)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return hydra_compose(config_name, overrides=overrides)


def launch(app: Callable[[], Any], prog: str, config_name: str, required: tuple[str, ...] = ()) -> None:
    """Run a ``@hydra.main`` app after two checks that turn bad input into one line.

    With ``ckpt_path=...`` the checkpoint's training overrides are added (the user's own win), so
    evaluating or resuming a run needs no repetition of how it was configured. Then, for a single
    run, the config is composed and validated once up front, so an unknown option or a bad value
    fails before any work and before the run directory is made.
    """
    from hydra._internal.utils import get_args_parser

    argv = sys.argv[1:]
    args = get_args_parser().parse_args(argv)
    with errors_as_one_line(prog):
        overrides = list(args.overrides)
        user_keys = {override_key(o) for o in overrides}
        for key in required:
            if key not in user_keys:
                raise UsageError(f"{key}=... is required")
        ckpt_values = [o.split("=", 1)[1] for o in overrides if override_key(o) == "ckpt_path"]
        injected: list[str] = []
        if ckpt_values and ckpt_values[-1] not in ("", "null"):
            stored = load_checkpoint(ckpt_values[-1])["catbrain"].get("overrides", [])
            # A group the user chose anew (data=csv) takes none of the stored values below it (data.n_train=...).
            replaced = tuple(f"{key}." for key in user_keys)
            injected = [
                o
                for o in stored
                if override_key(o) not in user_keys | {"ckpt_path"} and not override_key(o).startswith(replaced)
            ]
        special = args.multirun or args.help or args.hydra_help or args.cfg or args.info or args.shell_completion
        if not special and not args.config_dir and not args.config_name:
            from hydra.errors import HydraException

            from catbrain.validation import validate

            # Validation imports Lightning, which would give itself a stderr handler if logging had
            # none yet; with one in place its messages reach the run's log once Hydra sets it up.
            if not logging.getLogger().handlers:
                logging.getLogger().addHandler(logging.NullHandler())
            try:
                composed = compose(config_name, overrides + injected)
            except HydraException as error:
                raise UsageError(str(error).split("Config search path")[0]) from None
            validate(composed)
    sys.argv = [sys.argv[0], *argv, *injected]
    app()
