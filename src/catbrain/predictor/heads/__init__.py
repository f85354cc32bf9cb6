"""What a model's output means: one small head per kind of output (see ``base.Head``)."""

from catbrain.predictor.heads.base import Head
from catbrain.predictor.heads.classes import ClassHead, OrdinalHead, SoftmaxHead, ThresholdHead
from catbrain.predictor.heads.numbers import NumberHead, QuantileHead, format_level

HEADS: dict[str, type[Head]] = {
    head.kind: head for head in (NumberHead, ThresholdHead, SoftmaxHead, OrdinalHead, QuantileHead)
}

__all__ = [
    "HEADS",
    "ClassHead",
    "Head",
    "NumberHead",
    "OrdinalHead",
    "QuantileHead",
    "SoftmaxHead",
    "ThresholdHead",
    "format_level",
]
