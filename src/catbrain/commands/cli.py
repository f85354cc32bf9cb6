"""catbrain: one command for all of catbrain (also ``python -m catbrain``).

    catbrain train experiment=weather_3pm          # = catbrain-train ...; eval, predict, export, data, serve...
    catbrain ls                                    # the config groups, each option with its one-line description
    catbrain ls experiment                         # one group's options
    catbrain cp experiment/cat_threat my_configs/experiment/mine.yaml   # copy a config to edit
    catbrain --version                             # catbrain's version, and torch's, Lightning's and Hydra's

``--help``, ``--version``, ``ls`` and ``cp`` read files only: they answer without importing torch or
Lightning. A misspelt command, group or option gets the nearest names ("did you mean").
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from catbrain.errors import UsageError

PROG = "catbrain"
COMMANDS = {
    "train": "catbrain.commands.train",
    "eval": "catbrain.commands.evaluate",
    "predict": "catbrain.commands.predict",
    "export": "catbrain.commands.export",
    "search": "catbrain.commands.search",
    "data": "catbrain.commands.data",
    "serve": "catbrain.commands.serve",
}
PACKAGES = ("catbrain", "torch", "pytorch-lightning", "hydra-core")


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """``; did you mean 'weather_3pm'?`` for the nearest of ``choices``, or nothing when none is near."""
    near = difflib.get_close_matches(word, list(choices), n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""


def version_line() -> str:
    """``catbrain 0.1.0 (torch 2.13.0, pytorch-lightning 2.6.6, hydra-core 1.3.2, Python 3.11.7)``, from the
    installed packages' metadata: nothing is imported."""
    from importlib import metadata

    import catbrain

    found = []
    for package in PACKAGES[1:]:
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package} not installed")
    python = ".".join(map(str, sys.version_info[:3]))
    return f"catbrain {catbrain.__version__} ({', '.join(found)}, Python {python})"


def conf_root() -> Path:
    from catbrain.config import config_dir

    return Path(config_dir())


def groups() -> dict[str, list[str]]:
    """Each config group (a folder of ``conf/``, or of ``conf/hydra/``: ``hydra/launcher``) and its options (its
    YAML files), sorted."""
    root = conf_root()
    folders = [f for f in sorted(root.iterdir()) if f.name != "hydra"] + sorted((root / "hydra").glob("*"))
    return {
        folder.relative_to(root).as_posix(): sorted(p.stem for p in folder.glob("*.yaml"))
        for folder in folders
        if folder.is_dir() and any(folder.glob("*.yaml"))
    }


# Hydra's own config groups, beside catbrain's (whose options are Hydra's).
HYDRA_GROUPS = ("hydra/env", "hydra/help", "hydra/hydra_help", "hydra/hydra_logging", "hydra/job_logging",
                "hydra/launcher", "hydra/output", "hydra/sweeper")  # fmt: skip
# Options a group has that are no file of catbrain's: Hydra's own.
BUILT_IN = {"hydra/launcher": {"basic": "Hydra's own launcher: the jobs one after another in this process (the "
                                        "default)."}}  # fmt: skip


def description(path: Path) -> str:
    """A config's one-line description: the first sentence of its leading comment (``@package`` aside)."""
    import re

    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text.startswith("#"):
            break
        if not text.startswith("# @package"):
            lines.append(text.lstrip("#").strip())
    first = re.split(r"(?<=\S[.?!])\s+(?=[A-Z(])", " ".join(lines), maxsplit=1)[0]  # not "w . x"
    return first if not first or first[-1] in ".?!:" else first + "."


def option_path(name: str) -> Path:
    """``experiment/cat_threat`` as the YAML file it names; a :class:`UsageError` with the nearest names."""
    group, _, option = name.removesuffix(".yaml").rpartition("/")
    found = groups()
    if group not in found:
        raise UsageError(f"no config group {group!r}{did_you_mean(group, list(found))}; the groups: {', '.join(found)}")
    if option not in found[group]:
        raise UsageError(f"no option {option!r} in {group}{did_you_mean(option, found[group])}; "
                         f"`catbrain ls {group}` lists them")  # fmt: skip
    return conf_root() / group / f"{option}.yaml"


def ls(arguments: Sequence[str]) -> None:
    found = groups()
    wanted = list(arguments) or list(found)
    for group in wanted:
        if group not in found:
            raise UsageError(f"no config group {group!r}{did_you_mean(group, list(found))}; "
                             f"the groups: {', '.join(found)}")  # fmt: skip
    width = max(len(option) for group in wanted for option in [*found[group], *BUILT_IN.get(group, {})])
    for group in wanted:
        print(f"{group}:")
        for option, said in sorted(BUILT_IN.get(group, {}).items()):
            print(f"  {option:<{width}}  {said}")
        for option in found[group]:
            print(f"  {option:<{width}}  {description(conf_root() / group / f'{option}.yaml')}")


def cp(arguments: Sequence[str]) -> None:
    from catbrain.commands.common import overwrite_flag, refuse_existing

    overwrite = overwrite_flag(next((a.split("=", 1)[1] for a in arguments if a.startswith("overwrite=")), None))
    names = [a for a in arguments if not a.startswith("overwrite=")]
    if len(names) != 2:
        raise UsageError("usage: catbrain cp GROUP/OPTION DESTINATION.yaml [overwrite=true], "
                         "e.g. catbrain cp experiment/cat_threat my_configs/experiment/mine.yaml")  # fmt: skip
    source, destination = option_path(names[0]), Path(names[1])
    if destination.is_dir():
        destination = destination / source.name
    refuse_existing([destination], "destination", overwrite)
    from catbrain.run.files import write_atomically

    text = source.read_text(encoding="utf-8")
    if source.parent.name == "experiment":  # the copy is an experiment of its own: summaries take its name
        import re

        text = re.sub(r"(?m)^name: .*$", f"name: {destination.stem}", text)
    write_atomically(destination, text)
    print(f"{names[0]} -> {destination}")
    group = source.parent.relative_to(conf_root()).as_posix()  # experiment, hydra/launcher
    where = destination.resolve()
    if where.parent.as_posix().endswith(f"/{group}"):  # the search path is the folder that holds the group's
        print(f"use it: catbrain train 'hydra.searchpath=[file://{where.parents[group.count('/') + 1]}]' "
              f"{group}={where.stem}")  # fmt: skip
    else:
        print(f"use it: move it to a folder {group}/ (e.g. {where.parent / group / where.name}), then: catbrain train "
              f"'hydra.searchpath=[file://{where.parent}]' {group}={where.stem}")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    from catbrain.commands.common import die_quietly_on_broken_pipe, errors_as_one_line

    die_quietly_on_broken_pipe()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__.strip())
        return
    if argv[0] in ("--version", "-V", "version"):
        print(version_line())
        return
    name, rest = argv[0], argv[1:]
    with errors_as_one_line(PROG):
        if name == "ls":
            return ls(rest)
        if name == "cp":
            return cp(rest)
        if name not in COMMANDS:
            choices = [*COMMANDS, "ls", "cp"]
            raise UsageError(f"no command {name!r}{did_you_mean(name, choices)}; the commands: {', '.join(choices)}")
    sys.argv = [f"catbrain-{name}", *rest]  # each command reads its own arguments, and names itself in messages
    importlib.import_module(COMMANDS[name]).main()


if __name__ == "__main__":
    main()
