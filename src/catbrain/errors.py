"""Every error catbrain raises on purpose, in one place, and how any error reads as one line.

``BadInput`` and its kinds are input a person can fix: the entry points print their message as
one line on stderr and exit with 2. A ``DivergenceError`` is a run that failed (exit 1).
"""

from __future__ import annotations


class BadInput(ValueError):
    """Input that cannot work; the message is the whole story (the value, and what is allowed)."""


class UsageError(BadInput):
    """A bad command line or argument."""


class ConfigError(BadInput):
    """A config value that cannot work; the message names the key, the value and what is allowed."""


class TableError(BadInput):
    """A CSV file that cannot be used; the message names the file, line and column."""


class CheckpointError(BadInput):
    """A checkpoint that cannot be used as it is; the message says which file and why."""


class SearchStopped(UsageError):
    """A problem every further trial of a search would meet too (a metric the runs do not log): the search stops."""


class DivergenceError(ArithmeticError):
    """The training loss stopped being a finite number."""


def diverged(loss: float, step: int, epoch: int, batch: int) -> DivergenceError:
    """The error of a training loss that is no longer a finite number, found before the optimizer step."""
    return DivergenceError(
        f"train/loss became {loss} at step {step} (epoch {epoch}, batch {batch}); training stopped with the "
        "earlier checkpoints kept. Try a smaller optimizer.lr."
    )


def describe(error: BaseException) -> str:
    """``Type: message`` of the error that matters: Hydra's instantiation wrapper gives way to its cause."""
    from hydra.errors import InstantiationException

    if isinstance(error, InstantiationException) and error.__cause__ is not None:
        cause = error.__cause__
        where = str(error).rsplit("full_key:", 1)[-1].strip() if "full_key:" in str(error) else ""
        return (f"{where}: " if where else "") + describe(cause)
    if isinstance(error, BadInput):
        return str(error)
    return f"{type(error).__name__}: {error}"


# What an optional extra brings: its modules and Hydra config options, and the extra that installs them.
EXTRAS = {
    "optuna": "sweep", "hydra_plugins.hydra_joblib_launcher": "sweep", "hydra/launcher/joblib": "sweep",
    "submitit": "slurm", "hydra_plugins.hydra_submitit_launcher": "slurm", "hydra/launcher/submitit_local": "slurm",
    "hydra/launcher/submitit_slurm": "slurm", "onnx": "export", "onnxscript": "export", "onnxruntime": "export",
    "tensorboard": "tensorboard", "mlflow": "mlflow", "starlette": "serve", "uvicorn": "serve", "sklearn": "bench",
}  # fmt: skip


def install_hint(name: str) -> str:
    """``pip install 'catbrain[sweep]'`` for a module or config option of an optional extra, else ''."""
    for known, extra in EXTRAS.items():
        if name == known or name.startswith(f"{known}."):
            return f"pip install 'catbrain[{extra}]'"
    return ""


def explain(error: BaseException) -> tuple[str, bool]:
    """The one-line reason for ``error``, and whether it is bad input (exit 2) rather than a failure (exit 1)."""
    from hydra.errors import ConfigCompositionException, OverrideParseException

    instantiating = error.__cause__ is not None and "Instantiation" in type(error).__name__
    root = error.__cause__ if instantiating else error
    if isinstance(root, ModuleNotFoundError) and install_hint(root.name or ""):  # an extra not installed
        return f"{root.name} is not installed: {install_hint(root.name or '')}", True
    # A constructor refusing its arguments is bad input too, and so is a config Hydra cannot compose.
    bad_input = isinstance(root, BadInput) or (instantiating and isinstance(root, (ValueError, TypeError)))
    if isinstance(error, (ConfigCompositionException, OverrideParseException)):
        return " ".join(str(error).split("Config search path")[0].split()), True
    return " ".join(describe(error).split()), bad_input
