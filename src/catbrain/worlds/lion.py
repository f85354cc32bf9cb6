"""How far a lion must leap to reach its prey: a regression whose answer is nonlinear in what the lion senses.

The lion crouches ``distance`` metres from its prey. The prey runs at ``prey_speed`` m/s with heading
``phi`` (0: straight away from the lion, 180: towards it). The lion reacts after ``reaction_time``
seconds, then leaps in a straight line at ``leap_speed`` m/s (horizontally) to where the prey will
be when it lands. With the prey at ``p(t) = (distance + v t cos phi, v t sin phi)``, the landing
time ``t`` solves ``|p(t)| = leap_speed * (t - reaction_time)``:

    (v^2 - u^2) t^2 + 2 (d v cos phi + u^2 r) t + d^2 - u^2 r^2 = 0

and the leap is ``u (t - r)`` metres. The observed leap carries noise ``noise_std`` (metres);
the physics answer is the Bayes-optimal prediction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from catbrain.worlds.base import World


def _range(name: str, values: Sequence[float], low: float = 0.0) -> tuple[float, float]:
    if len(values) != 2 or not low <= float(values[0]) <= float(values[1]):
        raise ValueError(f"{name} must be [min, max] with {low} <= min <= max, got {list(values)}")
    return float(values[0]), float(values[1])


class LionWorld(World):
    """A lion's view of its prey; target: the length of the leap that lands on it (metres)."""

    feature_names = ("distance", "prey_speed", "heading_cos", "heading_sin", "reaction_time")
    target_name = "leap"
    units = {"distance": "m", "prey_speed": "m/s", "reaction_time": "s", "leap": "m"}

    def __init__(
        self,
        leap_speed: float = 12.0,
        distance_range: Sequence[float] = (1.0, 6.0),
        prey_speed_range: Sequence[float] = (0.0, 5.0),
        reaction_time_range: Sequence[float] = (0.1, 0.4),
        noise_std: float = 0.3,
    ) -> None:
        self.distance_range = _range("distance_range", distance_range, low=0.1)
        self.prey_speed_range = _range("prey_speed_range", prey_speed_range)
        self.reaction_time_range = _range("reaction_time_range", reaction_time_range)
        if not leap_speed > self.prey_speed_range[1]:
            raise ValueError(
                f"leap_speed={leap_speed} must exceed the fastest prey ({self.prey_speed_range[1]} m/s), "
                "or the lion never lands on it"
            )
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.leap_speed, self.noise_std = float(leap_speed), float(noise_std)

    def leap(self, features: torch.Tensor) -> torch.Tensor:
        """The noiseless leap (metres) for rows ``(distance, prey_speed, heading_cos, heading_sin, reaction_time)``."""
        d, v, cos_phi, _, r = features.double().unbind(-1)
        u = self.leap_speed
        a = v * v - u * u  # < 0: the lion is faster
        b = 2 * (d * v * cos_phi + u * u * r)
        c = d * d - u * u * r * r
        landing = (-b - torch.sqrt(b * b - 4 * a * c)) / (2 * a)  # the positive root, since a < 0
        return (u * (landing - r)).to(features.dtype)

    def sample(self, n: int, generator: torch.Generator, truth: bool = True) -> dict[str, torch.Tensor]:
        """``features (n, 5)``, the observed ``leap`` and (with ``truth``) its noiseless value."""

        def uniform(bounds: tuple[float, float]) -> torch.Tensor:
            return bounds[0] + (bounds[1] - bounds[0]) * torch.rand(n, generator=generator)

        distance, speed = uniform(self.distance_range), uniform(self.prey_speed_range)
        heading = 2 * math.pi * torch.rand(n, generator=generator)
        reaction = uniform(self.reaction_time_range)
        features = torch.stack([distance, speed, heading.cos(), heading.sin(), reaction], dim=-1)
        best = self.leap(features)
        sample = {"features": features, "leap": best + self.noise_std * torch.randn(n, generator=generator)}
        if truth:
            sample["bayes_leap"] = best
        return sample
