"""``hydra/launcher=vectorized``: which jobs of a sweep train together, and how each one ends as a run of its own.

Jobs share a group when their configs differ only in what a stacked model can hold per job: the seeds
(``seed``, ``data.seed``: own weights, own draw of the data, own shuffle) and the optimizer's numbers
(``lr``, ``momentum``, ``dampening``, ``betas``, ``eps``, ``weight_decay``). A group trains at once
(:mod:`catbrain.run.vectorized`); then each job goes through Hydra's own ``run_job`` (its numbered
directory, ``.hydra/``, the sweep's callbacks) with a task that writes what a run alone writes:
``config.yaml``, ``checkpoints/best.ckpt`` and ``last.ckpt``, ``metrics.json``, ``report.md``, pictures and
``explore.html``. A job that cannot join a group runs as the basic launcher would run it, and says why.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from omegaconf import DictConfig, OmegaConf

from catbrain.compat.hydra import PER_JOB_KEYS


def group_key(cfg: DictConfig) -> str:
    """What jobs of one group share: the config without the per-job keys (and without ``hydra``)."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra", None)
    for key in (*PER_JOB_KEYS, "run_dir"):
        parent, _, leaf = key.rpartition(".")
        node = plain.get(parent, {}) if parent else plain
        if isinstance(node, dict):
            node.pop(leaf, None)
    return OmegaConf.to_yaml(OmegaConf.create(plain), sort_keys=True)


def why_alone(cfg: DictConfig) -> str | None:
    """Why a job cannot train in a stacked group (one short clause), or ``None`` when it can."""
    from catbrain.run.vectorized import OPTIMIZERS

    optimizer = str((cfg.get("optimizer") or {}).get("_target_", ""))
    if optimizer not in OPTIMIZERS:
        name = optimizer.rsplit(".", 1)[-1] or "none"
        return f"its optimizer ({name}) is not one the stacked optimizer has (SGD, Adam, AdamW)"
    if cfg.get("scheduler"):
        return "a learning-rate scheduler is not vectorized"
    if cfg.get("ckpt_path"):
        return "it resumes a checkpoint"
    trainer = cfg.trainer
    rules = [
        (trainer.get("max_steps", -1) in (-1, None), "trainer.max_steps is set"),
        (trainer.get("check_val_every_n_epoch", 1) == 1, "trainer.check_val_every_n_epoch is not 1"),
        (trainer.get("val_check_interval") in (None, 1.0, 1), "trainer.val_check_interval validates within epochs"),
        (trainer.get("accumulate_grad_batches", 1) == 1, "trainer.accumulate_grad_batches is not 1"),
        (not trainer.get("gradient_clip_val"), "gradients are clipped"),
        (str(trainer.get("precision", "32")) in ("32", "32-true"), "its precision is not 32-true"),
        (trainer.get("devices", 1) in (1, "auto") and trainer.get("num_nodes", 1) == 1, "it trains on several devices"),
        (trainer.get("max_time") is None, "trainer.max_time is set"),
        (trainer.get("max_epochs") not in (None, -1), "trainer.max_epochs is not set"),
    ]
    for holds, reason in rules:
        if not holds:
            return reason
    for name, callback in (cfg.get("callbacks") or {}).items():
        target = str((callback or {}).get("_target_", ""))
        if target.endswith("ModelCheckpoint"):
            if callback.get("monitor", "val/loss") != "val/loss" or callback.get("mode", "min") != "min":
                return f"callbacks.{name} keeps the best by another metric than the lowest val/loss"
        elif target.endswith("stopping.Stopping"):
            if callback.get("monitor", "val/loss") != "val/loss" or callback.get("mode", "min") != "min":
                return f"callbacks.{name} watches another metric than val/loss"
        elif not target.endswith(("LastCheckpoint", "RichProgressBar", "TQDMProgressBar")):
            return f"callbacks.{name} ({target.rsplit('.', 1)[-1]}) is not vectorized"
    return None


def plan(configs: list[DictConfig], derived: set[int] = frozenset()) -> tuple[list[list[int]], dict[int, str]]:
    """The groups of job positions that train together (two or more), and each job that runs alone with why.
    A job ``derived`` from the first (its seeds and optimizer numbers set in a copy) shares its group, if any."""
    alone: dict[int, str] = {}
    groups: dict[str, list[int]] = {}
    derived_key = None  # the group of the jobs derived from one config: the first of them decides it
    for position, cfg in enumerate(configs):
        if position in derived and derived_key is not None:
            groups[derived_key].append(position)
            continue
        reason = why_alone(cfg)
        if reason is not None:
            alone[position] = reason
            continue
        key = group_key(cfg)
        groups.setdefault(key, []).append(position)
        derived_key = key if position in derived else derived_key
    together = [members for members in groups.values() if len(members) > 1]
    for members in groups.values():
        if len(members) == 1:
            alone[members[0]] = "no other job of the sweep shares its settings (they differ in more than seeds "
            alone[members[0]] += "and optimizer numbers)"
    return together, alone


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
    if job.epochs:
        # Written at the end of training, where Lightning's epoch count has passed the last epoch.
        folder = run_dir / "checkpoints"
        write_checkpoint(folder / "last.ckpt", job, job.last_state, job.epochs, job.steps, resolved, stored)
        if job.best_epoch >= 0:
            write_checkpoint(folder / "best.ckpt", job, job.best_state, job.best_epoch, job.best_step, resolved, stored)
    if job.error is not None:
        raise job.error
    with threads(cfg.get("threads", "auto"), job.task.model):  # as a run alone tests: see run.trainer.threads
        metrics = test_job(job)
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
                 ) -> dict[int, Any]:  # fmt: skip
    """Train each group (split to fit ``max_jobs`` and the memory): position -> its trained job. Jobs are built and
    trained with the intra-op threads a run alone trains with (``threads``; one for a small model), which on a busy
    machine also spares every small op of each build a wait for a second thread (a 64-job sweep: about 10%)."""
    from catbrain.run.trainer import quiet_lightning, threads
    from catbrain.run.vectorized import build, fit_together

    quiet_lightning()
    trained: dict[int, Any] = {}
    for members in groups:
        device = device_of(configs[members[0]])
        first = build(configs[members[0]])
        budget = memory_bytes if memory_bytes is not None else free_bytes(device)
        size = max(1, min(max_jobs, int(budget // max(job_bytes(first), 1))))
        numbers = [int(configs[i].hydra.job.num) for i in members]
        split = f", in groups of {size} (memory)" if size < len(members) else ""
        say(
            f"jobs {_ranges(numbers)} train together as one stacked model{split}; each job's run directory holds its "
            "results, the sweep's summary shows them all"
        )
        for start in range(0, len(members), size):
            part = members[start : start + size]
            with threads(configs[part[0]].get("threads", "auto"), first.task.model):
                jobs = [first if i == members[0] else build(configs[i]) for i in part]
                fit_together(jobs, device)
            trained.update(zip(part, jobs))
    return trained


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
