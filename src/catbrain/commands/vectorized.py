"""``hydra/launcher=vectorized``: how the jobs of a sweep that train together do, and how each one ends as a run of
its own.

Jobs share a group when their configs differ only in what a stacked model can hold per job: the seeds
(``seed``, ``data.seed``: own weights, own draw of the data, own shuffle) and the optimizer's numbers
(``lr``, ``momentum``, ``dampening``, ``betas``, ``eps``, ``weight_decay``); :mod:`catbrain.run.grouping` decides.
A group trains at once (:mod:`catbrain.run.vectorized`); then each job goes through Hydra's own ``run_job`` (its
numbered directory, ``.hydra/``, the sweep's callbacks) with a task that writes what a run alone writes:
``config.yaml``, ``checkpoints/best.ckpt`` and ``last.ckpt``, ``metrics.json``, ``report.md``, pictures and
``explore.html``. A job that cannot join a group runs as the basic launcher would run it, and says why.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from omegaconf import DictConfig


def finish(job: Any, cfg: DictConfig, overrides: list[str]) -> dict[str, Any]:
    """Write what a run of ``job`` alone writes into its run directory; its metrics (raises a job's divergence)."""
    from catbrain.commands import launcher
    from catbrain.commands.train import report_run
    from catbrain.predictor.contents import stored_overrides
    from catbrain.run import files
    from catbrain.run.trainer import threads
    from catbrain.run.vectorized_outcome import test_job, write_checkpoint

    run_dir = Path(cfg.run_dir)
    resolved = files.save_config(cfg, run_dir)
    stored = stored_overrides(overrides)
    kinds = {str((c or {}).get("_target_", "")).rsplit(".", 1)[-1] for c in (cfg.get("callbacks") or {}).values()}
    keeps_best = "ModelCheckpoint" in kinds  # else, as a run alone, no best.ckpt and the last weights are tested
    if job.epochs:
        # Written at the end of training, where Lightning's epoch count has passed the last epoch.
        folder = run_dir / "checkpoints"
        if "LastCheckpoint" in kinds:
            write_checkpoint(folder / "last.ckpt", job, job.last_state, job.epochs, job.steps, resolved, stored)
        if keeps_best and job.best_epoch >= 0:
            write_checkpoint(folder / "best.ckpt", job, job.best_state, job.best_epoch, job.best_step, resolved, stored)
    log = logging.getLogger(__name__)  # the job's train.log, as Hydra's job logging sets it up
    log.info(
        f"trained with the other jobs of its group as one stacked model: {job.epochs} epochs, {job.steps} "
        f"steps in {job.seconds:.2f} s (its share); stopped: {job.stopped_reason or job.stopped}"
    )
    if job.error is not None:
        raise job.error
    with_best = keeps_best and job.best_epoch >= 0  # else, as a run alone whose val/loss was never finite: the last
    with threads(cfg.get("threads", "auto"), job.task.model):  # as a run alone tests: see run.trainer.threads
        metrics = test_job(job, job.best_state if with_best else job.last_state)
    tested = f"the weights of epoch {job.best_epoch} (best.ckpt)" if with_best else "the last weights"
    log.info(f"tested {tested}: " + ", ".join(f"{k} = {v:.6g}" for k, v in metrics.items() if k.startswith("test/")
                                              and "/bayes_" not in k and "/confusion/" not in k))  # fmt: skip
    metrics.update({"fit_seconds": job.seconds, "train_seconds": job.seconds, "epochs": job.epochs,
                    "steps": job.steps, "stopped": job.stopped, "stopped_reason": job.stopped_reason})  # fmt: skip
    lightning = SimpleNamespace(loggers=[], global_step=job.steps)
    report_run(cfg, lightning, job.task, job.datamodule, job.history, metrics, resolved,
               launcher.shown_command(overrides), console=False)  # fmt: skip
    return metrics


def job_bytes(job: Any) -> int:
    """About how much memory a job takes in a stacked group: its data twice (its own and the stacked copy), its
    weights with their gradients and optimizer state, and a batch's activations."""
    data = sum(t.numel() * t.element_size() for split in job.datamodule.splits.values() for t in split.values())
    params = sum(p.numel() * p.element_size() for p in job.task.parameters())
    widest = max([p.shape[0] for p in job.task.parameters() if p.dim() == 2] + [job.datamodule.num_features])
    return 2 * data + 6 * params + 8 * 4 * job.datamodule.batch_size * widest


def free_bytes(device: Any) -> int:
    """What a group may take: half the memory free on ``device``."""
    import torch

    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] // 2
    try:
        with open("/proc/meminfo") as file:
            found = dict(line.split(":", 1) for line in file)
        return int(found["MemAvailable"].split()[0]) * 1024 // 2
    except (OSError, KeyError, ValueError):
        return 2**31


def device_of(cfg: DictConfig) -> Any:
    import torch

    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    wants_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if wants_gpu else "cpu")


def train_groups(groups: list[list[int]], configs: list[DictConfig], max_jobs: int, memory_bytes: int | None
                 ) -> Iterator[tuple[list[int], list[Any]]]:  # fmt: skip
    """Train each group, split to fit ``max_jobs`` and the memory, one part at a time: yields each part's positions
    and trained jobs, for the caller to write (and let go of) before the next part is built, so that a split group
    takes one part's memory and a killed sweep keeps every part written. Jobs are built and trained with the
    intra-op threads a run alone trains with (``threads``; one for a small model), which on a busy machine also
    spares every small op of each build a wait for a second thread (a 64-job sweep: about 10%)."""
    from catbrain.run.trainer import quiet_lightning, thread_count, threads
    from catbrain.run.vectorized import build, fit_together

    quiet_lightning()
    for members in groups:
        device = device_of(configs[members[0]])
        first = build(configs[members[0]])
        count = thread_count(configs[members[0]].get("threads", "auto"), first.task.model)  # the same for the group
        budget = memory_bytes if memory_bytes is not None else free_bytes(device)
        fits = max(1, int(budget // max(job_bytes(first), 1)))
        size = min(max_jobs, fits)
        numbers = [int(configs[i].hydra.job.num) for i in members]
        why = "memory" if fits < max_jobs else "hydra.launcher.max_jobs_per_group"
        split = f", in groups of {size} ({why})" if size < len(members) else ""
        say(
            f"jobs {_ranges(numbers)} train together as one stacked model{split}; each job's run directory holds its "
            "results, the sweep's summary shows them all"
        )
        for start in range(0, len(members), size):
            part = members[start : start + size]
            with threads(count, None):
                jobs = [first if i == members[0] else build(configs[i]) for i in part]
                first = None  # written with its part, not kept for the next
                fit_together(jobs, device)
            yield part, jobs
            del jobs


def finishing(job: Any) -> Any:
    """The task function Hydra's ``run_job`` calls for a trained job: write its run, as the training app would."""

    def task_function(cfg: DictConfig) -> Any:
        from hydra.core.hydra_config import HydraConfig

        from catbrain.commands.sweeps import run_job

        overrides = list(HydraConfig.get().overrides.task)
        return run_job("catbrain-train", lambda: finish(job, cfg, overrides))

    return task_function


def _ranges(numbers: list[int]) -> str:
    """``0-3, 7``."""
    parts, start = [], None
    for position, number in enumerate(numbers):
        if start is None:
            start = number
        if position + 1 == len(numbers) or numbers[position + 1] != number + 1:
            parts.append(str(start) if start == number else f"{start}-{number}")
            start = None
    return ", ".join(parts)


def say(message: str) -> None:
    print(f"catbrain-train: {message}", file=sys.stderr, flush=True)
