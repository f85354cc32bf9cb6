"""Synthetic worlds: seeded, vectorised generators that know their own ground truth.

A world draws ``features`` and noisy ``targets``; it also knows the noiseless teacher and so the
Bayes-optimal prediction, against which a trained model is judged.
"""

from catbrain.worlds.base import World
from catbrain.worlds.cat import CatWorld
from catbrain.worlds.lion import LionWorld
from catbrain.worlds.weather import WeatherWorld

__all__ = ["CatWorld", "LionWorld", "WeatherWorld", "World"]
