"""A command line Hydra cannot compose, in one line that names what is there: the nearest option, key or group to
a misspelt one, and the extra to install for an option that comes with one."""

from __future__ import annotations

import re

from catbrain.commands.launcher import override_key
from catbrain.config import compose
from catbrain.errors import install_hint


def unknown_key_message(config_name: str, overrides: list[str], error: Exception) -> str:
    """Hydra's composition error in one line; for a key that does not exist, the keys that do (Hydra's
    own hint, to add the key with ``+``, would only move the error to the constructor)."""
    text = str(error).split("Config search path")[0]
    missing = re.search(r"Could not find '([\w/.-]+)/([\w.-]+)'", text)
    if missing:  # an option misspelt: the nearest, then what there is
        from catbrain.commands.cli import did_you_mean, groups

        group, option = missing.groups()
        listed = text.split(f"Available options in '{group}':")  # Hydra's list holds your search path's too
        options = listed[1].split() if len(listed) > 1 else groups().get(group, [])
        hint = f"; {option} needs {install}" if (install := install_hint(f"{group}/{option}")) else ""
        listing = f"{group} has {', '.join(options)}"
        return f"{group}={option}: no such option{did_you_mean(option, options)}; {listing}{hint}"
    if not text.startswith("Could not override '"):  # Could not load 'hydra/launcher/submitit_slurm'
        install = install_hint(next(iter(re.findall(r"Could not load '([\w/.-]+)'", text)), ""))
        return f"{text.strip().rstrip('.')}: it needs {install}" if install else text
    key = text.split("'")[1]
    parent, _, name = key.rpartition(".")
    others = [o for o in overrides if override_key(o) != key]
    from catbrain.commands.cli import HYDRA_GROUPS, did_you_mean, groups

    if "/" in key and "." not in key:  # a config group that does not exist: the nearest of those that do
        known = sorted({*groups(), *HYDRA_GROUPS})
        return f"{key}: no such config group{did_you_mean(key, known)}; the groups: {', '.join(known)}"
    try:
        from omegaconf import OmegaConf

        composed = compose(config_name, others, hydra=key.startswith("hydra."))
        node = OmegaConf.select(composed, parent) if parent else composed
    except Exception:
        node = None
    if node is None or not hasattr(node, "keys"):
        return f"{key}: no such key in the config"
    parent = parent or "the config"

    keys = sorted(k for k in node if not k.startswith("_"))
    return f"{key}: {parent} has no key {name!r}{did_you_mean(name, keys)}; it has {keys}"
