"""Tomorrow's temperature at 3 pm, from today's observations.

The process, per day ``d`` (0 = 1 January) with angle ``theta = 2 pi d / 365``:

    seasonal_mean(d) = mean_temp + amplitude * cos(theta - 2 pi peak_day / 365)
    temp_today       = seasonal_mean(d) + anomaly,          anomaly ~ N(0, anomaly_std)
    pressure         ~ N(1013, pressure_std)                (hPa: the weather system)
    humidity         = 60 - 1.5 (pressure - 1013) + N(0, 10), clipped to [5, 100]   (%)
    temp_tomorrow    = seasonal_mean(d + 1) + persistence * anomaly
                       + pressure_effect * (pressure - 1013) + humidity_effect * (humidity - 60)
                       + N(0, noise_std)

Because ``cos(theta + c)`` is linear in ``(sin theta, cos theta)``, the best possible prediction of
``temp_tomorrow`` is linear in the features ``temp_today, pressure, humidity, day_sin, day_cos``:
a linear regressor can reach the Bayes-optimal error ``noise_std ** 2``.
"""

from __future__ import annotations

import math

import torch

from catbrain.worlds.base import World

DAYS_PER_YEAR = 365.0
REFERENCE_PRESSURE = 1013.0
REFERENCE_HUMIDITY = 60.0


class WeatherWorld(World):
    """Daily 3 pm observations; target: the 3 pm temperature of the next day (degrees Celsius)."""

    feature_names = ("temp_today", "pressure", "humidity", "day_sin", "day_cos")
    target_name = "temp_tomorrow"
    units = {"temp_today": "°C", "pressure": "hPa", "humidity": "%", "temp_tomorrow": "°C"}

    def __init__(
        self,
        mean_temp: float = 12.0,
        amplitude: float = 9.0,
        peak_day: float = 200.0,
        anomaly_std: float = 4.0,
        pressure_std: float = 8.0,
        persistence: float = 0.7,
        pressure_effect: float = 0.15,
        humidity_effect: float = -0.03,
        noise_std: float = 2.0,
        day_range: tuple[float, float] = (0.0, DAYS_PER_YEAR),
    ) -> None:
        for name, value in [("anomaly_std", anomaly_std), ("pressure_std", pressure_std), ("noise_std", noise_std)]:
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        low, high = (float(d) for d in day_range)
        if not 0 <= low < high <= DAYS_PER_YEAR:
            raise ValueError(f"day_range must satisfy 0 <= start < end <= 365, got {[low, high]}")
        self.mean_temp, self.amplitude, self.peak_day = float(mean_temp), float(amplitude), float(peak_day)
        self.anomaly_std, self.pressure_std = float(anomaly_std), float(pressure_std)
        self.persistence, self.pressure_effect = float(persistence), float(pressure_effect)
        self.humidity_effect, self.noise_std = float(humidity_effect), float(noise_std)
        self.day_range = (low, high)

    def seasonal_mean(self, day: torch.Tensor) -> torch.Tensor:
        return self.mean_temp + self.amplitude * torch.cos(2 * math.pi * (day - self.peak_day) / DAYS_PER_YEAR)

    def sample(self, n: int, generator: torch.Generator, truth: bool = True) -> dict[str, torch.Tensor]:
        """``features (n, 5)``, the noisy ``temp_tomorrow`` and (with ``truth``) its Bayes-optimal prediction."""
        low, high = self.day_range
        day = low + (high - low) * torch.rand(n, generator=generator)
        anomaly = self.anomaly_std * torch.randn(n, generator=generator)
        pressure = REFERENCE_PRESSURE + self.pressure_std * torch.randn(n, generator=generator)
        humidity_noise = 10.0 * torch.randn(n, generator=generator)
        humidity = (REFERENCE_HUMIDITY - 1.5 * (pressure - REFERENCE_PRESSURE) + humidity_noise).clamp(5.0, 100.0)
        temp_today = self.seasonal_mean(day) + anomaly
        bayes_target = (
            self.seasonal_mean(day + 1)
            + self.persistence * anomaly
            + self.pressure_effect * (pressure - REFERENCE_PRESSURE)
            + self.humidity_effect * (humidity - REFERENCE_HUMIDITY)
        )
        target = bayes_target + self.noise_std * torch.randn(n, generator=generator)
        theta = 2 * math.pi * day / DAYS_PER_YEAR
        features = torch.stack([temp_today, pressure, humidity, torch.sin(theta), torch.cos(theta)], dim=-1)
        sample = {"features": features, "temp_tomorrow": target}
        if truth:
            sample["bayes_temp_tomorrow"] = bayes_target
        return sample

    def teacher(self) -> tuple[torch.Tensor, float]:
        """Weights and bias of the linear rule that equals ``bayes_temp_tomorrow``: the regressor to recover."""
        phase = 2 * math.pi * self.peak_day / DAYS_PER_YEAR
        step = 2 * math.pi / DAYS_PER_YEAR
        a, rho = self.amplitude, self.persistence
        # seasonal_mean(d) = mean + a cos(phase) cos(theta) + a sin(phase) sin(theta)
        # seasonal_mean(d+1) = mean + a cos(step - phase) cos(theta) - a sin(step - phase) sin(theta)
        weights = torch.tensor(
            [
                rho,
                self.pressure_effect,
                self.humidity_effect,
                -a * math.sin(step - phase) - rho * a * math.sin(phase),
                a * math.cos(step - phase) - rho * a * math.cos(phase),
            ]
        )
        bias = (
            self.mean_temp * (1 - rho)
            - self.pressure_effect * REFERENCE_PRESSURE
            - self.humidity_effect * REFERENCE_HUMIDITY
        )
        return weights, bias
