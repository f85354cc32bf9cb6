"""Seeds as statistics: the jobs of a sweep that differ only in their seeds are one setting measured several times.

``-m optimizer.lr=0.01,0.1 seed=range(8)`` asks which learning rate is best; one seed each would
answer by luck. Grouped, each setting gets each metric's mean, standard deviation (n - 1), min and
max over its seeds, and its regret: how far each job lies from the Bayes-optimal on its own test
data (``mse - bayes_mse``; ``bayes_acc - acc`` for a score where higher is better), so that a
difference between settings can be read against the spread within each.

A setting is named alike in ``summary.md``, on the console and in ``seeds.csv``: by the overrides in which the
settings differ (seeds left out), as the jobs' table names its rows; the overrides every job shares are listed
once in ``summary.md`` and in full for each job in ``summary.csv`` (``seeds.csv``'s ``jobs`` says which jobs).
A sweep over seeds alone has one setting, named :data:`ALL_JOBS`. The best setting, in bold, is the one of the
best mean of the summary's metric in the summary's direction (``min`` or ``max``).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

SEED_KEYS = ("seed", "data.seed")
HIGHER_IS_BETTER = ("acc", "decision_acc", "f1_macro", "r2")
ALL_JOBS = "(all jobs)"  # the name of the one setting of a sweep over seeds alone


@dataclass
class SeedGroup:
    """The jobs of one setting (the overrides other than seeds), over their seeds."""

    setting: list[str]
    numbers: list[int]
    stats: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> mean, std, min, max


def _is_seed(override: str) -> bool:
    return override.partition("=")[0].lstrip("+~") in SEED_KEYS


def regret(metrics: dict[str, float], name: str) -> float | None:
    """How far ``name`` (``test/mse``) lies from its Bayes-optimal (``test/bayes_mse``), in the worse direction."""
    split, _, metric = name.partition("/")
    reference = metrics.get(f"{split}/bayes_{metric}")
    if reference is None or name not in metrics:
        return None
    if metric.startswith("coverage/"):  # a coverage is good where it equals the Bayes-optimal one
        return abs(metrics[name] - reference)
    higher = metric in HIGHER_IS_BETTER
    return reference - metrics[name] if higher else metrics[name] - reference


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else math.nan,
        "min": min(values),
        "max": max(values),
    }


def seed_groups(rows: Sequence[Any], names: Sequence[str]) -> list[SeedGroup]:
    """The settings that were run with two or more seeds, each metric of ``names`` summarised over its ok jobs
    (and ``regret:<name>`` for each with a Bayes-optimal reference)."""
    by_setting: dict[tuple[str, ...], list[Any]] = {}
    for row in rows:
        if row.status == "ok" and any(_is_seed(o) for o in row.overrides):
            setting = tuple(o for o in row.overrides if not _is_seed(o))
            by_setting.setdefault(setting, []).append(row)
    groups = []
    for setting, members in by_setting.items():
        if len(members) < 2:
            continue
        group = SeedGroup(list(setting), [r.number for r in members])
        for name in names:
            values = [r.metrics[name] for r in members if math.isfinite(r.metrics.get(name, math.nan))]
            if values:
                group.stats[name] = _summary(values)
            regrets = [value for r in members if (value := regret(r.metrics, name)) is not None]
            if regrets:
                group.stats[f"regret:{name}"] = _summary(regrets)
        groups.append(group)
    return groups


def shown(stats: dict[str, float]) -> str:
    """``0.0103 ± 0.0004 [0.0098, 0.0110]``."""
    spread = "" if math.isnan(stats["std"]) else f" ± {stats['std']:.3g}"
    return f"{stats['mean']:.4g}{spread} [{stats['min']:.4g}, {stats['max']:.4g}]"


def setting_label(group: SeedGroup, varying: Collection[str], form: Callable[[str], str] = str) -> str:
    """The setting's name: its overrides among ``varying`` (those that differ between jobs), each through ``form``,
    or :data:`ALL_JOBS` when it has none (every job has this setting)."""
    return " ".join(form(o) for o in group.setting if o in varying) or ALL_JOBS


def best_group(groups: Sequence[SeedGroup], metric: str, direction: str) -> SeedGroup | None:
    """The setting of the lowest (``min``) or highest (``max``) finite mean of ``metric``; the first of a tie."""
    scored = [g for g in groups if metric in g.stats and math.isfinite(g.stats[metric]["mean"])]
    sign = 1.0 if direction == "min" else -1.0
    return min(scored, key=lambda g: sign * g.stats[metric]["mean"], default=None)


def seeds_markdown(groups: Sequence[SeedGroup], varying: Collection[str], metric: str, direction: str) -> list[str]:
    """The section of ``summary.md``: one row per setting, a column per metric, the best mean of ``metric`` in bold."""
    if not groups:
        return []
    names = [name for name in dict.fromkeys(k for g in groups for k in g.stats)]
    best = best_group(groups, metric, direction)
    lines = ["## Seeds as statistics", "",
             "Jobs that differ only in `seed` / `data.seed`, one row per setting: mean ± standard deviation "
             "[min, max] over the seeds; `regret:` is each job's distance from the Bayes-optimal on its own test data "
             "(0 is the best possible).", ""]  # fmt: skip
    header = ["setting", "seeds", *names]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group in groups:
        setting = setting_label(group, varying, lambda o: f"`{o}`")
        cells = [shown(group.stats[n]) if n in group.stats else "" for n in names]
        name = f"**{setting}**" if group is best else setting
        lines.append("| " + " | ".join([name, str(len(group.numbers)), *cells]) + " |")
    return [*lines, ""]


def seeds_csv(groups: Sequence[SeedGroup], varying: Collection[str]) -> str:
    """``seeds.csv``: one line per setting and metric, the setting named as in ``summary.md`` (every digit)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["setting", "jobs", "metric", "seeds", "mean", "std", "min", "max"])
    for group in groups:
        for name, stats in group.stats.items():
            writer.writerow([setting_label(group, varying), " ".join(map(str, group.numbers)), name, len(group.numbers),
                             *(f"{stats[k]:.10g}" for k in ("mean", "std", "min", "max"))])  # fmt: skip
    return text.getvalue()
