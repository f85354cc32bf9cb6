"""The benchmark script runs end to end (its timings are reported, never asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"


def quick_bench(tmp_path: Path, sections: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``bench.py --quick --sections ...`` in ``tmp_path``: the finished process (it must succeed) and its JSON."""
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--sections", sections, "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result, json.loads(out.read_text())


@pytest.mark.slow
def test_bench_quick_writes_a_report(tmp_path):
    result, report = quick_bench(tmp_path, "generation,memory,startup")
    assert {"generation", "memory", "startup"} <= set(report)
    assert "| data generation | rows/s |" in result.stdout and "Start-up:" in result.stdout


def test_bench_refuses_unknown_sections(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--sections", "speed"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 2 and "unknown sections ['speed']" in result.stderr


@pytest.mark.slow
def test_bench_sweep_section_reports_both_launchers_and_the_ceiling(tmp_path):
    result, report = quick_bench(tmp_path, "sweep")
    sweep = report["sweep"]
    assert sweep["jobs"] == 8 and set(sweep["experiments"]) == {"cat_threat", "weather_3pm", "cat_nonlinear_mlp"}
    for r in sweep["experiments"].values():
        assert r["speedup"] == r["seconds"]["basic"] / r["seconds"]["vectorized"]
        assert r["ceiling"] == r["seconds"]["basic"] / sweep["import_floor_seconds"]
    assert set(sweep["growth"]) == {"1", "4"}
    assert "| ratio | ceiling |" in result.stdout and "| cat_threat |" in result.stdout
