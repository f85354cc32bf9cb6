"""What every command shares: ``key=value`` arguments, ``--help``, and errors as one line with an exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from catbrain.errors import ConfigError, UsageError, explain


def say_error(prog: str, message: str) -> None:
    """One line on stderr, control characters shown escaped (a message may quote a hostile file)."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in " ".join(str(message).split()))
    print(f"{prog}: error: {text}", file=sys.stderr)


def fail(prog: str, message: str, code: int = 2) -> NoReturn:
    """:func:`say_error`, then exit."""
    say_error(prog, message)
    sys.exit(code)


def command_line(argv: Sequence[str] | None, help_text: str) -> list[str] | None:
    """A plain command's arguments (``sys.argv`` when run as a command, quiet on a closed pipe); ``None`` once
    ``-h``/``--help`` has printed ``help_text``."""
    if argv is None:
        die_quietly_on_broken_pipe()
        argv = sys.argv[1:]
    if any(argument in ("-h", "--help") for argument in argv):
        print(help_text)
        return None
    return list(argv)


def key_value_arguments(argv: Sequence[str], allowed: Mapping[str, str]) -> dict[str, str]:
    """``key=value`` command-line arguments, each key one of ``allowed`` (name -> what it means)."""
    arguments: dict[str, str] = {}
    for argument in argv:
        key, separator, value = argument.partition("=")
        if not separator or key not in allowed:
            raise UsageError(f"unknown argument {argument!r}; expected key=value with key one of {sorted(allowed)}")
        if key in arguments:
            raise UsageError(f"{key} is given twice ({key}={arguments[key]!r} and {argument!r}); give it once")
        arguments[key] = value
    return arguments


def overwrite_flag(value: str | None) -> bool:
    """``overwrite=true|false`` (absent: false)."""
    if value in (None, "false"):
        return False
    if value == "true":
        return True
    raise UsageError(f"overwrite={value!r}: must be true or false")


def refuse_existing(paths: Sequence[Any], key: str, overwrite: bool) -> None:
    """A file a command would write already exists and ``overwrite=true`` was not given: one line, before any work."""
    from pathlib import Path

    existing = [str(path) for path in paths if Path(path).exists()]
    if existing and not overwrite:
        raise UsageError(f"{key}: {', '.join(existing)} exists; give overwrite=true to replace it")


def usage(doc: str, allowed: Mapping[str, str]) -> str:
    """A command's ``--help``: its docstring, then its arguments and what each means."""
    width = max(map(len, allowed)) + 1
    return "\n".join(
        [doc.strip(), "", "Arguments:", *(f"  {key:<{width}} {meaning}" for key, meaning in allowed.items())]
    )


MIN_FREE_BYTES = 16 * 2**20


def check_run_folder(given: str | None, key: str, jobs: int = 0) -> None:
    """The run (``key`` hydra.run.dir) or sweep (hydra.sweep.dir) directory, as ``given`` on the command line or
    the default, can be made: a directory can be created in its nearest existing ancestor. Refused in one line
    otherwise (a path under /proc, a file in the way, no permission, a full disk), before Hydra would fail making
    it with a traceback. A sweep of ``jobs`` jobs in folders ``0`` .. ``jobs - 1`` (Hydra's default subdir): no file
    where a job's folder goes, which Hydra would find only after the jobs before it had trained."""
    import shutil
    import tempfile
    from pathlib import Path

    multirun = key == "hydra.sweep.dir"
    folder = given if given is not None else ("multirun" if multirun else "outputs")
    kind = "sweep" if multirun else "run"
    named = f"{key}={folder}" if given is not None else f"the {kind} directory (under {folder})"
    probe = Path(folder.split("${")[0] or ".").absolute()  # up to the first interpolation
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{named}: {probe} is a file, not a directory")
    if given is not None and "${" not in given:
        for number in range(jobs):
            if (Path(given) / str(number)).exists() and not (Path(given) / str(number)).is_dir():
                raise UsageError(f"{named}: {Path(given) / str(number)} is a file where job {number}'s folder goes")
    try:
        Path(tempfile.mkdtemp(dir=probe, prefix=".catbrain-")).rmdir()
    except OSError as error:
        raise UsageError(f"{named}: no directory can be made in {probe} ({error.strerror})") from None
    free = shutil.disk_usage(probe).free
    if free < MIN_FREE_BYTES:  # Hydra would fail writing the run's config, with a traceback and a half-made folder
        raise UsageError(
            f"{named}: {free / 2**20:.1f} MiB free on the disk of {probe}; a run needs at least "
            f"{MIN_FREE_BYTES / 2**20:.0f} MiB for its config, logs and checkpoints"
        )


VECTORIZED_LAUNCHER = "hydra_plugins.catbrain_vectorized_launcher.vectorized_launcher.VectorizedLauncher"
LAUNCHER_SETTINGS = {  # the vectorized launcher's settings: (may be null, what is allowed)
    "max_jobs_per_group": (False, "a positive integer (the most jobs one stacked model holds)"),
    "memory_bytes": (True, "null or a positive integer of bytes (the memory a group may take; null: half the free)"),
}


def check_launcher_settings(config_name: str, overrides: list[str]) -> None:
    """``hydra/launcher=vectorized``'s settings as Hydra composes them from ``overrides`` (the command's ``hydra``
    ones): a value the launcher would take silently (0, 1.5) or fail on only after making the sweep's directory
    (``abc``) is refused in one line."""
    from catbrain.config import compose

    launcher = compose(config_name, overrides, hydra=True).hydra.launcher
    if launcher.get("_target_") != VECTORIZED_LAUNCHER:
        return
    for key, (nullable, allowed) in LAUNCHER_SETTINGS.items():
        value = launcher.get(key)
        whole = isinstance(value, int) or (nullable and isinstance(value, float) and value.is_integer())  # 8e9 bytes
        if not (value is None and nullable) and (isinstance(value, bool) or not whole or value < 1):
            raise ConfigError(f"hydra.launcher.{key}={value!r}: must be {allowed}")


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


def die_quietly_on_broken_pipe() -> None:
    """``catbrain-... | head`` ends the program the way it ends ``cat``, without a traceback."""
    import signal

    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)


_start_up_frozen = False  # whether the first start-up's objects are out of the collector's passes


@contextmanager
def collector_paused_for_start_up() -> Iterator[None]:
    """No garbage collection while a command starts (its checks import Lightning, torchmetrics, ...: a few million
    objects that live as long as the process, and little garbage): the collector's full passes over them cost
    0.6 s here. Then what the first start-up made is kept out of every later pass (``gc.freeze``, once: a program
    that launches again, as the tests do, keeps no more than one start-up's garbage)."""
    import gc

    global _start_up_frozen
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if not _start_up_frozen:
            gc.freeze()
            _start_up_frozen = True
        if collecting:
            gc.enable()
