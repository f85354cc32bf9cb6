"""OmegaConf's private members catbrain uses.

- ``omegaconf._utils.OmegaConfDumper.str_representer``: how ``OmegaConf.to_yaml`` writes a string (quoted where it
  would read back as a bool, an int or a float), so :func:`config_yaml` writes the same text with libyaml.
"""

from __future__ import annotations

import functools
import re
from typing import Any


def config_yaml(config: dict[str, Any] | list[Any]) -> str:
    """A config as plain containers (resolved or not) as YAML, the text ``OmegaConf.to_yaml`` writes (its quoting of
    strings that would read back as other types, the order of the keys), by libyaml's emitter where PyYAML has it:
    several times faster, which a sweep of many small jobs pays per job."""
    import yaml

    dumper = _yaml_dumper(_libyaml_escapes(config))
    return yaml.dump(config, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


_ESCAPED_BY_LIBYAML = re.compile("[\U00010000-\U0010ffff\x85\u2028\u2029]")


def _libyaml_escapes(value: Any) -> bool:
    """Whether a string in ``value`` holds a character libyaml writes as an escape where PyYAML's own emitter (and
    so OmegaConf) writes it as it is: beyond the Basic Multilingual Plane (an emoji), NEL, line or paragraph
    separator."""
    if isinstance(value, str):
        return _ESCAPED_BY_LIBYAML.search(value) is not None
    if isinstance(value, dict):
        return any(_libyaml_escapes(key) or _libyaml_escapes(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(_libyaml_escapes(item) for item in value)
    return False


@functools.cache
def _yaml_dumper(python_emitter: bool = False) -> type:
    import yaml
    from omegaconf._utils import OmegaConfDumper

    base = yaml.SafeDumper if python_emitter else getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class Dumper(base):  # type: ignore[misc,valid-type]
        """A safe dumper (libyaml's where it writes the same text) with OmegaConf's way of writing strings."""

    Dumper.add_representer(str, OmegaConfDumper.str_representer)
    return Dumper
