"""What every world shares: its constructor arguments, and a copy of itself with some of them changed."""

from __future__ import annotations

import inspect
from typing import Any

import torch


class World:
    """A synthetic world; subclasses keep each constructor argument as an attribute of the same name."""

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
