"""LightningModules: what to learn (loss, metrics) around a plain ``nn.Module``."""

from catbrain.errors import DivergenceError
from catbrain.tasks.base import Task
from catbrain.tasks.classification import ClassificationTask
from catbrain.tasks.ordinal import OrdinalTask
from catbrain.tasks.quantile import QuantileTask
from catbrain.tasks.regression import RegressionTask
from catbrain.tasks.threshold import ThresholdTask

__all__ = [
    "ClassificationTask",
    "DivergenceError",
    "OrdinalTask",
    "QuantileTask",
    "RegressionTask",
    "Task",
    "ThresholdTask",
]
