"""Seeds as statistics: a sweep's jobs that differ only in their seeds, summarised per setting with error bars."""

from __future__ import annotations

import csv
import io
import statistics

import pytest

from catbrain.run.seeds import ALL_JOBS, best_group, regret, seed_groups, seeds_csv, seeds_markdown
from catbrain.run.summary import Row, write_summary
from tests.conftest import run_cli


def rows() -> list[Row]:
    found = []
    for number, (lr, seed, mse, acc) in enumerate(
        [
            ("0.01", 0, 0.30, 0.70),
            ("0.01", 1, 0.34, 0.66),
            ("0.01", 2, 0.29, 0.72),
            ("0.1", 0, 0.12, 0.90),
            ("0.1", 1, 0.14, 0.88),
            ("0.1", 2, 0.13, 0.89),
            ("1.0", 0, 0.5, 0.5),
        ]  # fmt: skip
    ):
        metrics = {"val/loss": mse + 0.01, "test/mse": mse, "test/bayes_mse": 0.1 + seed / 100,
                   "test/decision_acc": acc, "test/bayes_decision_acc": 0.92}  # fmt: skip
        found.append(Row(number, ["optimizer=sgd", f"optimizer.lr={lr}", f"seed={seed}"], "ok", metrics))
    found.append(Row(7, ["optimizer=sgd", "optimizer.lr=0.1", "seed=3"], "failed", {}))  # not counted
    return found


def test_jobs_that_differ_only_in_seeds_are_one_setting_with_mean_spread_and_regret():
    groups = seed_groups(rows(), ["val/loss", "test/mse", "test/decision_acc"])
    settings = [["optimizer=sgd", "optimizer.lr=0.01"], ["optimizer=sgd", "optimizer.lr=0.1"]]
    assert [g.setting for g in groups] == settings
    assert [g.numbers for g in groups] == [[0, 1, 2], [3, 4, 5]]  # lr=1.0 has one seed; the failed job is left out
    mse = groups[1].stats["test/mse"]
    assert mse["mean"] == pytest.approx(0.13) and mse["std"] == pytest.approx(statistics.stdev([0.12, 0.14, 0.13]))
    assert (mse["min"], mse["max"]) == (0.12, 0.14)
    # regret: each job against the Bayes-optimal of its own test data, in the direction of worse
    expected = ((0.12 - 0.1) + (0.14 - 0.11) + (0.13 - 0.12)) / 3
    assert groups[1].stats["regret:test/mse"]["mean"] == pytest.approx(expected)
    assert groups[1].stats["regret:test/decision_acc"]["mean"] == pytest.approx(0.92 - 0.89)
    assert "regret:val/loss" not in groups[0].stats  # no Bayes-optimal reference for it


def test_regret_of_a_coverage_is_its_distance_from_the_bayes_one():
    coverage = {"test/coverage/0.9": 0.85, "test/bayes_coverage/0.9": 0.9}
    assert regret(coverage, "test/coverage/0.9") == pytest.approx(0.05)
    assert regret({"test/r2": 0.8, "test/bayes_r2": 0.9}, "test/r2") == pytest.approx(0.1)
    assert regret({"test/loss": 0.8}, "test/loss") is None


def test_the_summary_section_and_csv():
    groups = seed_groups(rows(), ["val/loss", "test/mse"])
    varying = {"optimizer.lr=0.01", "optimizer.lr=0.1", "optimizer.lr=1.0"}
    lines = seeds_markdown(groups, varying, "val/loss", "min")
    text = "\n".join(lines)
    assert "## Seeds as statistics" in text
    assert "| **`optimizer.lr=0.1`** | 3 | 0.14 ± 0.01 [0.13, 0.15] |" in text  # lowest mean val/loss in bold
    table = list(csv.DictReader(io.StringIO(seeds_csv(groups, varying))))
    row = next(r for r in table if r["setting"] == "optimizer.lr=0.01" and r["metric"] == "test/mse")
    assert row["jobs"] == "0 1 2" and float(row["mean"]) == pytest.approx(0.31) and row["seeds"] == "3"
    assert seeds_markdown([], set(), "val/loss", "min") == []


def accuracy_rows(means: dict[str, list[float]]) -> list[Row]:
    """Jobs over two seeds per learning rate, each with its validation accuracy (higher is better)."""
    found = []
    for lr, values in means.items():
        for seed, value in enumerate(values):
            overrides = ["optimizer=sgd", f"optimizer.lr={lr}", f"seed={seed}"]
            found.append(Row(len(found), overrides, "ok", {"val/decision_acc": value}))
    return found


def test_the_best_setting_is_the_best_mean_in_the_summarys_direction():
    # The review's sweep: lr=0.01 has the higher mean accuracy (0.8815 against 0.881), lr=0.1 the lower.
    groups = seed_groups(accuracy_rows({"0.1": [0.880, 0.882], "0.01": [0.881, 0.882]}), ["val/decision_acc"])
    assert best_group(groups, "val/decision_acc", "max").setting[-1] == "optimizer.lr=0.01"
    assert best_group(groups, "val/decision_acc", "min").setting[-1] == "optimizer.lr=0.1"
    text = "\n".join(seeds_markdown(groups, {"optimizer.lr=0.1", "optimizer.lr=0.01"}, "val/decision_acc", "max"))
    assert "| **`optimizer.lr=0.01`** | 2 | 0.8815" in text and "| `optimizer.lr=0.1` | 2 | 0.881" in text
    assert best_group(groups, "val/loss", "max") is None  # no setting measured it


def test_a_setting_is_named_alike_on_the_console_in_summary_md_and_in_seeds_csv(tmp_path, capsys):
    seeds_only = [Row(r.number, [o for o in r.overrides if "lr" not in o], "ok", r.metrics)
                  for r in accuracy_rows({"0.1": [0.88, 0.89]})]  # fmt: skip
    write_summary(tmp_path, seeds_only, "val/decision_acc", "max", "seeds")
    setting_lines = [line for line in capsys.readouterr().out.splitlines() if "0.885" in line]
    assert len(setting_lines) == 1 and ALL_JOBS in setting_lines[0]  # the console's seeds table
    assert f"| **{ALL_JOBS}** | 2 |" in (tmp_path / "summary.md").read_text()
    assert {row["setting"] for row in csv.DictReader(io.StringIO((tmp_path / "seeds.csv").read_text()))} == {ALL_JOBS}
    # Two settings: each named by its learning rate alone (the shared optimizer=sgd is said once, above the table).
    write_summary(tmp_path, accuracy_rows({"0.1": [0.88, 0.89], "0.01": [0.8, 0.9]}), "val/decision_acc", "max", "lr")
    console = capsys.readouterr().out
    assert "| **`optimizer.lr=0.1`** | 2 |" in (tmp_path / "summary.md").read_text()
    assert {row["setting"] for row in csv.DictReader(io.StringIO((tmp_path / "seeds.csv").read_text()))} == {
        "optimizer.lr=0.1",
        "optimizer.lr=0.01",
    }
    assert any(line.split("│")[1].strip() == "optimizer.lr=0.01" for line in console.splitlines() if "0.85 ±" in line)


@pytest.mark.slow
def test_a_real_sweep_over_seeds_gets_error_bars(tmp_path):
    result = run_cli(
        "catbrain-train", "-m", "data.n_train=256", "trainer.max_epochs=2", "callbacks=[model_checkpoint]",
        "logger=none", "plots=false", "trainer.enable_progress_bar=false", "optimizer=sgd",
        "optimizer.lr=0.02,0.2", "seed=0,1", "hydra.sweep.dir=sweep", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = (tmp_path / "sweep" / "summary.md").read_text()
    assert "## Seeds as statistics" in summary and "`optimizer.lr=0.02`" in summary
    table = list(csv.DictReader(io.StringIO((tmp_path / "sweep" / "seeds.csv").read_text())))
    regrets = [r for r in table if r["metric"] == "regret:test/mse"]
    assert len(regrets) == 2 and all(float(r["min"]) > -0.05 for r in regrets)  # near or above the Bayes-optimal
    assert "val/loss over seeds" in result.stdout
    assert "callbacks=[model_checkpoint]" in result.stdout  # overrides printed as text, not as rich markup
