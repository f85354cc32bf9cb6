"""Each stage's metrics (train, val, test), named ``<stage>/<metric>``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn
from torchmetrics import MetricCollection


def stage_metrics(make: Callable[[], MetricCollection], stages: Sequence[str]) -> nn.ModuleDict:
    """``make()`` once per stage, keyed ``"<stage>_"`` (``nn.Module`` has an attribute called ``train``) and named
    ``<stage>/<metric>``: made anew, a third of the cost of deep copies (``clone``), which a sweep of many small
    jobs pays per job; copies where ``make`` gives one collection each time, so that no two stages share a state."""
    made = [make() for _ in stages]
    if len({id(metrics) for metrics in made}) < len(made):
        made = [made[0].clone() for _ in stages]
    for stage, metrics in zip(stages, made):
        metrics.prefix = f"{stage}/"
    return nn.ModuleDict({f"{stage}_": metrics for stage, metrics in zip(stages, made)})
