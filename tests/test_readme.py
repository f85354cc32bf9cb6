"""What the README names exists: experiments, config options, pictures, commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from catbrain.config import config_dir

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CONF = Path(config_dir())


def test_every_experiment_the_readme_names_exists():
    named = set(re.findall(r"experiment=(\w+)", README)) | set(re.findall(r"^\| `(\w+)`", README, re.M))
    shipped = {path.stem for path in (CONF / "experiment").glob("*.yaml")}
    experiments = {name for name in named if name in shipped or name.startswith(("cat_", "weather_", "lion_"))}
    assert experiments - shipped == set()
    assert shipped - experiments == set()  # and every shipped experiment is in the README


def test_every_data_option_the_readme_names_exists():
    for option in set(re.findall(r"data=(\w+)", README)):
        assert (CONF / "data" / f"{option}.yaml").is_file(), option


def test_every_picture_the_readme_shows_is_committed_and_small():
    pictures = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", README)
    assert len(pictures) >= 6
    for picture in pictures:
        path = ROOT / picture
        assert path.is_file(), picture
        assert path.stat().st_size < 150_000, picture


def test_every_command_the_readme_names_is_installed():
    section = (ROOT / "pyproject.toml").read_text().split("[project.scripts]")[1].split("\n[")[0]
    scripts = set(re.findall(r"^(catbrain-[a-z]+) =", section, re.M))
    assert len(scripts) >= 6
    named = set(re.findall(r"\b(catbrain-[a-z]+)\b", README))
    assert named <= scripts, named - scripts


@pytest.mark.slow
def test_the_readmes_book_tables_are_what_the_figures_script_prints_today(tmp_path):
    """Every number of scripts/book_figures.py's tables is in the README's row of that experiment, within 0.5% (a
    change that moves a result shows here; float noise of another CPU does not)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "book_figures.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    number = re.compile(r"[-+]?\d+\.\d+")
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and number.search(line)]
    assert len(rows) >= 10
    for row in rows:
        name = row.strip("|").split("|")[0].strip()
        readme = [line for line in README.splitlines() if line.startswith(f"| {name} |")]
        shown = [float(x) for line in readme for x in number.findall(line)]
        for value in (float(x) for x in number.findall(row)):
            assert any(abs(value - y) <= 0.005 * abs(value) + 1e-4 for y in shown), f"{name}: {value} not in {readme}"
