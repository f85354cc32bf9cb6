"""The house's layout holds: each room imports only the rooms before it, and predict starts without Lightning."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "catbrain"
# Each room and the rooms it may import (besides itself); see README "Layout".
MAY_IMPORT = {
    "errors": set(),
    "config": set(),
    "compat": set(),
    "models": set(),
    "worlds": set(),
    "stacked": set(),  # many models at once: torch only
    "predictor": {"errors", "models"},
    "data": {"errors", "compat"},
    "tasks": {"errors", "compat", "models", "predictor"},
    "validation": {"errors", "config"},
    "run": {"errors", "compat", "config", "models", "predictor", "data", "tasks", "stacked"},
    "commands": {
        "errors",
        "compat",
        "config",
        "models",
        "worlds",
        "predictor",
        "data",
        "tasks",
        "validation",
        "run",
        "stacked",
    },
    "__main__": {"commands"},  # python -m catbrain: the catbrain command
}


def room_of(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return parts[0]


def imported_rooms(path: Path) -> set[str]:
    """Every ``catbrain.<room>`` a module imports, at its top or inside a function."""
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            if node.module == "catbrain":
                names = [f"catbrain.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "catbrain" and len(parts) > 1 and parts[1] in MAY_IMPORT:
                rooms.add(parts[1])
    return rooms


MODULES = sorted(p for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_each_room_imports_only_the_rooms_before_it(path):
    room = room_of(path)
    allowed = MAY_IMPORT[room] | {room}
    assert imported_rooms(path) <= allowed, f"{path.relative_to(SRC)} imports {imported_rooms(path) - allowed}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_is_over_250_lines(path):
    assert len(path.read_text().splitlines()) <= 250


def test_predict_and_the_predictor_load_without_lightning_or_hydra():
    script = (
        "import sys\n"
        "import catbrain.commands.predict, catbrain.predictor\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pytorch_lightning', 'lightning', 'hydra'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
