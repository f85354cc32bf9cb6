"""``hydra/launcher=vectorized``: train the jobs of a sweep that can share one stacked model at once.

The grouping and the training live in catbrain (:mod:`catbrain.run.grouping`, :mod:`catbrain.commands.vectorized`,
:mod:`catbrain.run.vectorized`); this module is the launcher Hydra instantiates, which must live in the
``hydra_plugins`` package. Each part of a group is written as soon as it has trained (each job through Hydra's own
``run_job`` steps, in job order), then the jobs that run alone run as the basic launcher runs them. A job already
finished in the sweep directory by the same overrides (a sweep run again after a kill or Ctrl-C) is kept; a folder
holding a job of another sweep is refused before anything trains.
"""

from __future__ import annotations

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
        self.max_jobs_per_group = int(max_jobs_per_group)
        self.memory_bytes = int(memory_bytes) if memory_bytes is not None else None  # 8e9 (checked in pre-flight)
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from catbrain.commands import vectorized
        from catbrain.run.grouping import plan

        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = str(self.config.hydra.sweep.dir)
        Path(sweep_dir).mkdir(parents=True, exist_ok=True)
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
        earlier = [_earlier(config) for config in configs]
        for config, (ran, _) in zip(configs, earlier):
            ours = list(config.hydra.overrides.task)
            if ran is not None and ran != ours:
                theirs, mine = [o for o in ran if o not in ours], [o for o in ours if o not in ran]
                raise Refused(f"hydra.sweep.dir={sweep_dir} holds job {config.hydra.job.num} of another sweep "
                              f"({' '.join(theirs) or 'no more overrides'} where this one has "
                              f"{' '.join(mine) or 'no more overrides'}): give this sweep a hydra.sweep.dir of its "
                              "own, or remove that folder", first_batch=initial_job_idx == 0)  # fmt: skip
        finished = {i: done for i, (_, done) in enumerate(earlier) if done is not None}
        if finished:
            vectorized.say(f"{len(finished)} jobs already finished in {sweep_dir}: kept")
        todo = [i for i in range(len(configs)) if i not in finished]
        # What each job's .hydra/config.yaml holds, taken before training: building a job resolves parts in place.
        composed = {i: task_container(configs[i]) for i in todo}
        groups, alone = plan([configs[i] for i in todo], {p for p, i in enumerate(todo) if i in derived})
        runs: dict[int, JobReturn] = {
            i: JobReturn(overrides=list(job_overrides[i]), cfg=configs[i], status=JobStatus.COMPLETED,
                         _return_value=done)
            for i, done in finished.items()
        }  # fmt: skip
        try:
            parts = vectorized.train_groups([[todo[i] for i in g] for g in groups], configs, self.max_jobs_per_group,
                                            self.memory_bytes)  # fmt: skip
            for part, jobs in parts:  # each part written before the next is built: a kill keeps what is written
                for position, job in zip(part, jobs):
                    runs[position] = run_own_job(self.hydra_context, vectorized.finishing(job), configs[position],
                                                 "hydra.sweep.dir", "hydra.sweep.subdir",
                                                 composed[position])  # fmt: skip
                    configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
                del jobs, job  # let go of the part before the next is built
            for position, reason in sorted(alone.items()):
                config = configs[todo[position]]
                vectorized.say(f"job {config.hydra.job.num} runs alone: {reason}")
                runs[todo[position]] = run_job(hydra_context=self.hydra_context, task_function=self.task_function,
                                               config=config, job_dir_key="hydra.sweep.dir",
                                               job_subdir_key="hydra.sweep.subdir")  # fmt: skip
                configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        except (KeyboardInterrupt, SystemExit) as stop:
            if isinstance(stop, SystemExit) and stop.code != 130:  # 130: Ctrl-C in a job that ran alone
                raise
            done = sum(1 for r in runs.values() if _ended_well(r))
            vectorized.say(f"interrupted: {done} of {len(configs)} jobs finished in {sweep_dir}; run the same "
                           "command again to train the others (the finished ones are kept)")  # fmt: skip
            raise SystemExit(130) from None
        return [runs[i] for i in range(len(configs))]


def _ended_well(run: JobReturn) -> bool:
    """A job that completed and returned its metrics (a job that failed in its task returns ``{"failed": ...}``)."""
    value = run._return_value  # never re-raises a failed job's error
    return run.status == JobStatus.COMPLETED and not (isinstance(value, dict) and "failed" in value)


def _earlier(config: DictConfig) -> tuple[list[str] | None, dict[str, Any] | None]:
    """What the job's folder holds from an earlier run of a sweep (one killed, run again): the overrides that job ran
    with (``None``: no job there) and, if it ended well, its metrics."""
    from catbrain.run.sweep_folders import outcome_of, overrides_of, read_metrics

    folder = Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)
    found = overrides_of(folder, config.hydra.output_subdir)
    if found is None:
        return None, None
    metrics = read_metrics(folder)
    return found[0], metrics if outcome_of(folder).get("status") == "ok" and metrics else None


class Refused(SystemExit):
    """A sweep refused before any of its jobs ran: one line on stderr, exit 2; in the sweep's first batch, the sweeper
    puts back the sweep directory's ``multirun.yaml`` as it was."""

    def __init__(self, message: str, first_batch: bool) -> None:
        from catbrain.commands.common import say_error

        say_error("catbrain-train", message)
        super().__init__(2)
        self.first_batch = first_batch


class PrecheckedSweeper(basic_sweeper()):  # type: ignore[misc]
    """Hydra's basic sweeper, less its second composition of every job before launching (catbrain's pre-flight
    has composed and checked each one, whatever the launcher): a job that differs from the batch's first in
    seeds and optimizer numbers alone is not composed again here. A sweep the launcher refuses leaves the sweep
    directory's ``multirun.yaml`` (which the basic sweeper writes first) as it found it."""

    def sweep(self, arguments: list[str]) -> Any:
        from catbrain.commands.sweeps import record_launched

        record_launched(str(self.config.hydra.sweep.dir))  # the summary reads the jobs as launched
        saved = Path(str(self.config.hydra.sweep.dir)) / "multirun.yaml"
        try:
            before: bytes | None = saved.read_bytes()
        except OSError:
            before = None
        try:
            return super().sweep(arguments)
        except Refused as refused:
            from catbrain.run.files import atomic_path

            if not refused.first_batch:  # an earlier batch's jobs ran: the file is theirs
                raise
            if before is None:
                saved.unlink(missing_ok=True)
            else:
                with atomic_path(saved) as temporary:
                    temporary.write_bytes(before)
            raise

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        from catbrain.commands.sweeps import record_launched

        record_launched(str(self.config.hydra.sweep.dir), batch)
        for overrides in batch:
            if batch and overrides is not batch[0] and value_changes(list(batch[0]), list(overrides)) is not None:
                continue
            self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
