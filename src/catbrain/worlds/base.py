"""The World contract: what every synthetic world offers, and a copy of itself with some arguments changed."""

from __future__ import annotations

import inspect
from typing import Any

import torch


class World:
    """A synthetic world that knows its own ground truth.

    A world subclass provides:

    - ``feature_names``: the names of the feature columns, in order;
    - ``sample(n, generator, truth=True)``: a dict with ``features`` ``(n, len(feature_names))`` float32, one
      entry per target (numbers as float32 ``(n,)``, classes as int64 indices), and with ``truth`` the
      Bayes-optimal prediction of each target as ``bayes_<target>``; a world whose ``sample`` also takes
      ``targets`` (the names a run keeps) may leave the other targets out, to save their memory;
    - each constructor argument kept as an attribute of the same name (so :meth:`shifted` can rebuild it);
    - ``noise_std``, if its numeric targets are the Bayes-optimal ones plus Gaussian noise of that deviation
      (then :meth:`noise_quantiles` gives the Bayes-optimal quantiles).

    Optional: ``teacher()`` (weights and bias of a linear ground truth), ``boundaries()``, ``units``.
    """

    feature_names: tuple[str, ...]

    def noise_quantiles(self, levels: list[float]) -> torch.Tensor | None:
        """The ``levels``-quantiles of the target noise (Gaussian, ``noise_std``), or ``None`` if not known."""
        std = getattr(self, "noise_std", None)
        return None if std is None else std * torch.special.ndtri(torch.tensor(levels, dtype=torch.float64)).float()

    def arguments(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this world, as plain numbers and lists."""
        names = [name for name in inspect.signature(type(self).__init__).parameters if name != "self"]
        values = {name: getattr(self, name) for name in names}
        return {
            name: value.tolist()
            if isinstance(value, torch.Tensor)
            else list(value)
            if isinstance(value, tuple)
            else value
            for name, value in values.items()
        }

    def shifted(self, **changes: Any) -> World:
        """The same world with some arguments changed: a test-time distribution shift, e.g. ``skew=[4, 4]``."""
        unknown = sorted(set(changes) - set(self.arguments()))
        if unknown:
            raise ValueError(
                f"data.shift names {unknown}, which {type(self).__name__} does not have; "
                f"it takes {sorted(self.arguments())}"
            )
        return type(self)(**{**self.arguments(), **changes})
