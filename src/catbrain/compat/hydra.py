"""Hydra's private members used to check a command line before Hydra runs it.

- ``hydra._internal.utils.get_args_parser``: Hydra's own argv parser, so flags such as ``--cfg``
  and ``-m`` mean what they mean to the app.
- ``BasicSweeper.split_arguments``: how the basic sweeper expands ``a=1,2 b=x,y`` into jobs, so
  every job of a sweep is checked before any runs.
- ``JobReturn._return_value``: a failed job's exception, without re-raising it.
"""

from __future__ import annotations

from typing import Any


def parse_command_line(argv: list[str]) -> Any:
    from hydra._internal.utils import get_args_parser

    return get_args_parser().parse_args(argv)


def sweep_jobs(parsed_overrides: list[Any]) -> list[list[str]]:
    """Each job's overrides, as the basic sweeper makes them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return [job for batch in BasicSweeper.split_arguments(parsed_overrides, None) for job in batch]


def job_error(job_return: Any) -> BaseException | None:
    value = getattr(job_return, "_return_value", None)
    return value if isinstance(value, BaseException) else None
