"""Run the experiments that show the book's ideas; print their numbers as Markdown and copy their pictures.

    python scripts/book_figures.py                    # tables on stdout, pictures into docs/images/
    python scripts/book_figures.py --out /tmp/figs    # somewhere else

The README's tables and pictures come from this script (seed 0, the shipped experiment configs),
so they can be checked and refreshed with one command. About a minute on an idle 2-core CPU.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from catbrain.commands.train import train
from catbrain.config import compose_config

QUIET = ["logger=none", "callbacks=[model_checkpoint,early_stopping]", "trainer.enable_progress_bar=false"]
RUNS = {
    "weather_3pm": ["experiment=weather_3pm"],
    "cat_threat": ["experiment=cat_threat"],
    "cat_softmax": ["experiment=cat_softmax"],
    "cat_ordinal": ["experiment=cat_ordinal"],
    "cat_nonlinear_linear": ["experiment=cat_nonlinear_linear"],
    "cat_nonlinear_mlp": ["experiment=cat_nonlinear_mlp"],
    "lion_linear": ["experiment=lion_linear"],
    "lion_mlp": ["experiment=lion_mlp"],
    "lion_shift": ["experiment=lion_shift"],
    "lion_shift_all_prey": ["experiment=lion_shift", "data.world.prey_speed_range=[0,5]", "name=lion_shift_all_prey"],
}
PICTURES = {
    "weather_3pm": ["weight_paths"],
    "cat_ordinal": ["decision_plane", "learning_curves"],
    "cat_nonlinear_linear": ["decision_plane"],
    "cat_nonlinear_mlp": ["decision_plane"],
    "lion_mlp": ["predicted_vs_true"],
    "lion_shift": ["predicted_vs_true"],
    "lion_shift_all_prey": ["predicted_vs_true"],
}


def line(metrics: dict[str, float], prefix: str, pair: str) -> str:
    if f"{prefix}/{pair}/offset" not in metrics:
        return "-"
    return f"h + {metrics[f'{prefix}/{pair}/sharpness']:.3f} s = {metrics[f'{prefix}/{pair}/offset']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "images")
    arguments = parser.parse_args()
    arguments.out.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, overrides in RUNS.items():
            run_dir = Path(scratch) / name
            results[name] = train(compose_config([*overrides, *QUIET], run_dir), overrides=overrides)
            for picture in PICTURES.get(name, []):
                shutil.copyfile(run_dir / "plots" / f"{picture}.png", arguments.out / f"{name}_{picture}.png")

    print("\n## Thresholds: learned from scores, from decisions, or not at all\n")
    print("| experiment | learns from | test acc | Bayes acc | boundary approach/ignore | boundary ignore/run_away |")
    print("|---|---|---:|---:|---|---|")
    sources = {"cat_threat": "threat scores", "cat_softmax": "decisions", "cat_ordinal": "decisions"}
    for name, source in sources.items():
        m = results[name]
        accuracy = m.get("test/acc", m.get("test/decision_acc"))
        bayes = m.get("test/bayes_acc", m.get("test/bayes_decision_acc"))
        print(
            f"| `{name}` | {source} | {accuracy:.4f} | {bayes:.4f} | {line(m, 'boundary', 'approach-ignore')} | "
            f"{line(m, 'boundary', 'ignore-run_away')} |"
        )
    teacher = results["cat_threat"]
    print(
        f"| teacher | | | | {line(teacher, 'teacher_boundary', 'approach-ignore')} | "
        f"{line(teacher, 'teacher_boundary', 'ignore-run_away')} |"
    )

    print("\n## Linear vs nonlinear, and the lion\n")
    print("| experiment | test metric | model | Bayes-optimal |")
    print("|---|---|---:|---:|")
    for name, key in [
        ("cat_nonlinear_linear", "acc"),
        ("cat_nonlinear_mlp", "acc"),
        ("lion_linear", "mse"),
        ("lion_mlp", "mse"),
    ]:
        m = results[name]
        print(f"| `{name}` | {key} | {m[f'test/{key}']:.4f} | {m[f'test/bayes_{key}']:.4f} |")

    print("\n## Distribution shift\n")
    print("| training prey speeds | test mse (as trained) | shifted mse (fast prey) | shifted Bayes mse |")
    print("|---|---:|---:|---:|")
    for name, speeds in [("lion_shift", "0-2.5 m/s"), ("lion_shift_all_prey", "0-5 m/s")]:
        m = results[name]
        print(f"| {speeds} | {m['test/mse']:.4f} | {m['shift/mse']:.4f} | {m['shift/bayes_mse']:.4f} |")
    print(f"\npictures in {arguments.out}")


if __name__ == "__main__":
    main()
