"""OmegaConf's private members catbrain uses.

- ``omegaconf._utils.OmegaConfDumper.str_representer``: how ``OmegaConf.to_yaml`` writes a string (quoted where it
  would read back as a bool, an int or a float), so :func:`config_yaml` writes the same text with libyaml.
"""

from __future__ import annotations

import functools
from typing import Any


def config_yaml(config: dict[str, Any] | list[Any]) -> str:
    """A config as plain containers (resolved or not) as YAML, the text ``OmegaConf.to_yaml`` writes (its quoting of
    strings that would read back as other types, the order of the keys), by libyaml's emitter where PyYAML has it:
    several times faster, which a sweep of many small jobs pays per job."""
    import yaml

    return yaml.dump(config, Dumper=_yaml_dumper(), sort_keys=False, default_flow_style=False, allow_unicode=True)


@functools.cache
def _yaml_dumper() -> type:
    import yaml
    from omegaconf._utils import OmegaConfDumper

    class Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
        """libyaml's safe dumper with OmegaConf's way of writing strings."""

    Dumper.add_representer(str, OmegaConfDumper.str_representer)
    return Dumper
