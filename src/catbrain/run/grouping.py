"""Which jobs of a sweep can train together as one stacked model (:mod:`catbrain.run.vectorized`), and why a job
cannot: jobs share a group when their configs differ only in the seeds and the optimizer's numbers
(:data:`catbrain.compat.hydra.PER_JOB_KEYS`) and every setting of their trainer and callbacks is one the group's loop
does as a run alone does it."""

from __future__ import annotations

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


# Trainer settings a stacked group trains as a run alone would, whatever their value (they change no number), and
# those it does only at the values given (the group's loop validates each epoch, runs every batch, stops by
# max_epochs or its callbacks). Any other setting, or another value, and the job runs alone.
TRAINER_FREE = {"_target_", "default_root_dir", "accelerator", "log_every_n_steps", "enable_model_summary",
                "enable_progress_bar", "use_distributed_sampler", "deterministic", "plugins", "num_sanity_val_steps",
                "benchmark", "inference_mode", "detect_anomaly", "limit_predict_batches", "gradient_clip_algorithm",
                "sync_batchnorm"}  # fmt: skip
TRAINER_AT = {
    "max_steps": (-1, None), "max_time": (None,), "min_epochs": (None, 0), "min_steps": (None, 0),
    "check_val_every_n_epoch": (1,), "accumulate_grad_batches": (1,), "gradient_clip_val": (None, 0, 0.0),
    "precision": ("32", "32-true", 32), "devices": (1,), "num_nodes": (1,), "strategy": (None, "auto"),
    "enable_checkpointing": (None, True), "barebones": (None, False),
    "fast_dev_run": (False, 0), "overfit_batches": (0, 0.0), "profiler": (None,),
    "reload_dataloaders_every_n_epochs": (0,), "limit_train_batches": (None, 1.0), "limit_val_batches": (None, 1.0),
    "limit_test_batches": (None, 1.0),
}  # fmt: skip
# Callbacks a group does as a run alone does them: (the values they must have, with the class's own default where
# unset; the settings they may have).
CALLBACKS = {
    "ModelCheckpoint": ({"monitor": ("val/loss", None), "mode": ("min", "min"), "save_top_k": (1, 1),
                         "save_last": (False, None), "filename": ("best", None)},
                        {"dirpath", "auto_insert_metric_name", "enable_version_counter", "verbose"}),
    "LastCheckpoint": ({}, {"dirpath", "every_n_train_steps"}),
    "Stopping": ({"monitor": ("val/loss", "val/loss"), "mode": ("min", "min")},
                 {"patience", "rel_tol", "min_delta", "lr_factor", "lr_reductions"}),
}  # fmt: skip
PROGRESS_BARS = ("RichProgressBar", "TQDMProgressBar")
RUN_CHECKPOINTS = "${run_dir}/checkpoints"  # where a group writes each job's checkpoints


def _values(node: DictConfig) -> dict[str, Any]:
    """A config node's settings, each resolved where it can be before a job runs (the run's directory cannot: it is
    Hydra's job folder), else as written."""
    values = {}
    for key in node:
        try:
            value = node[key]
            values[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        except Exception:  # an interpolation of the job's Hydra settings
            values[key] = node._get_node(key)._value()
    return values


STOPPING = "stopping.Stopping"  # catbrain.run.stopping.Stopping, the one stopping rule a group applies per job


def stopping_rules(cfg: DictConfig) -> dict[str, Any]:
    """The job's :class:`~catbrain.run.stopping.Stopping` callbacks by name, whatever they are called."""
    return {
        name: c
        for name, c in (cfg.get("callbacks") or {}).items()
        if c and str(c.get("_target_", "")).endswith(STOPPING)
    }


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
    trainer = _values(cfg.trainer)
    if trainer.get("max_epochs") in (None, -1):
        return "trainer.max_epochs is not set"
    interval = trainer.get("val_check_interval")
    if not (interval is None or (isinstance(interval, float) and interval == 1.0)):
        return "trainer.val_check_interval validates within epochs"
    for key, value in trainer.items():
        if key in TRAINER_FREE or key == "max_epochs" or key == "val_check_interval":
            continue
        if key not in TRAINER_AT or not any(value == v and type(value) is type(v) for v in TRAINER_AT[key]):
            return f"trainer.{key}={value} is not vectorized (a group trains every batch, each epoch validated)"
    if len(stopping := stopping_rules(cfg)) > 1:
        return f"callbacks {', '.join(stopping)}: more than one stopping rule"
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        callback = _values(node)
        kind = str(callback.get("_target_", "")).rsplit(".", 1)[-1]
        if kind in PROGRESS_BARS:
            continue
        if kind not in CALLBACKS:
            return f"callbacks.{name} ({kind or 'no _target_'}) is not vectorized"
        needed, free = CALLBACKS[kind]
        for key, value in callback.items():
            if key != "_target_" and key not in free and key not in needed:
                return f"callbacks.{name}.{key}={value} is not vectorized"
        for key, (wanted, default) in needed.items():
            value = callback.get(key, default)
            if value != wanted and not (key == "save_last" and value is None):
                return f"callbacks.{name}.{key}={value} is not vectorized (it must be {wanted})"
        if "dirpath" in node and node._get_node("dirpath")._value() != RUN_CHECKPOINTS:  # where the group writes
            return f"callbacks.{name}.dirpath is not the run's checkpoints folder ({RUN_CHECKPOINTS})"
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
