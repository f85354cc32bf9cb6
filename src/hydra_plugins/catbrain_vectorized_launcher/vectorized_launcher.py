"""``hydra/launcher=vectorized``: train the jobs of a sweep that can share one stacked model at once.

The grouping and the training live in catbrain (:mod:`catbrain.commands.vectorized`,
:mod:`catbrain.run.vectorized`); this module is the launcher Hydra instantiates, which must live in the
``hydra_plugins`` package. Jobs are run in order as Hydra's basic launcher runs them, through Hydra's own
``run_job``; a job already finished in the sweep directory (a sweep run again after a kill) is kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from catbrain.compat.hydra import basic_sweeper, derive_job_config, run_own_job, task_container, value_changes

log = logging.getLogger(__name__)


class VectorizedLauncher(Launcher):
    """``max_jobs_per_group`` and ``memory_bytes`` (``null``: half the memory available) bound each stacked group."""

    def __init__(self, max_jobs_per_group: int = 4096, memory_bytes: int | None = None) -> None:
        super().__init__()
        self.max_jobs_per_group, self.memory_bytes = int(max_jobs_per_group), memory_bytes
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from catbrain.commands import vectorized

        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        configs: list[DictConfig] = []
        derived: set[int] = set()
        for number, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{number} : {' '.join(filter_overrides(overrides))}")
            # Seeds and optimizer numbers only: the first job's config with them set, as Hydra would compose it.
            config = derive_job_config(configs[0], list(job_overrides[0]), list(overrides)) if configs else None
            if config is not None:
                derived.add(len(configs))
            else:
                config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(config):
                config.hydra.job.id = config.hydra.job.num = number
            configs.append(config)
        finished = {i: done for i, c in enumerate(configs) if (done := _finished(c)) is not None}
        todo = [i for i in range(len(configs)) if i not in finished]
        # What each job's .hydra/config.yaml holds, taken before training: building a job resolves parts in place.
        composed = {i: task_container(configs[i]) for i in todo}
        groups, alone = vectorized.plan([configs[i] for i in todo], {p for p, i in enumerate(todo) if i in derived})
        trained = vectorized.train_groups([[todo[i] for i in g] for g in groups], configs, self.max_jobs_per_group,
                                          self.memory_bytes)  # fmt: skip
        if finished:
            vectorized.say(f"{len(finished)} jobs already finished in {self.config.hydra.sweep.dir}: kept")
        runs: list[JobReturn] = []
        for position, (overrides, config) in enumerate(zip(job_overrides, configs)):
            if position in finished:
                runs.append(JobReturn(overrides=list(overrides), cfg=config, status=JobStatus.COMPLETED,
                                      _return_value=finished[position]))  # fmt: skip
                continue
            if position in trained:  # a config of its own (derived or composed for this launch): no copies needed
                runs.append(run_own_job(self.hydra_context, vectorized.finishing(trained[position]), config,
                                        "hydra.sweep.dir", "hydra.sweep.subdir", composed[position]))  # fmt: skip
            else:
                vectorized.say(f"job {config.hydra.job.num} runs alone: {alone[todo.index(position)]}")
                runs.append(run_job(hydra_context=self.hydra_context, task_function=self.task_function, config=config,
                                    job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir"))  # fmt: skip
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return runs


def _finished(config: DictConfig) -> dict[str, Any] | None:
    """The metrics of a job that already ended well in its directory (a sweep run again), else ``None``."""
    from catbrain.run.summary import OUTCOME_FILE, read_metrics

    folder = Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)
    try:
        outcome = json.loads((folder / OUTCOME_FILE).read_text())
    except (OSError, ValueError):
        return None
    metrics = read_metrics(folder)
    return metrics if isinstance(outcome, dict) and outcome.get("status") == "ok" and metrics else None


class PrecheckedSweeper(basic_sweeper()):  # type: ignore[misc]
    """Hydra's basic sweeper, less its second composition of every job before launching (catbrain's pre-flight
    has composed and checked each one, whatever the launcher): a job that differs from the batch's first in
    seeds and optimizer numbers alone is not composed again here."""

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        for overrides in batch:
            if batch and overrides is not batch[0] and value_changes(list(batch[0]), list(overrides)) is not None:
                continue
            self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
