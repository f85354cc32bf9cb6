"""A trained model as plain torch: scaling, model and a head that says what the output means.

Used by the tasks (training), catbrain-predict, catbrain-eval, catbrain-export and the pictures.
Imports torch only (no Lightning, no Hydra), so loading a predictor is quick.
"""

from catbrain.errors import CheckpointError
from catbrain.predictor.checkpoint import load_predictor, read_checkpoint
from catbrain.predictor.heads import HEADS, Head, NumberHead, OrdinalHead, QuantileHead, SoftmaxHead, ThresholdHead
from catbrain.predictor.predictor import Predictor

__all__ = [
    "HEADS",
    "CheckpointError",
    "Head",
    "NumberHead",
    "OrdinalHead",
    "Predictor",
    "QuantileHead",
    "SoftmaxHead",
    "ThresholdHead",
    "load_predictor",
    "read_checkpoint",
]
