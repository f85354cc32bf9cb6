"""The book's geometric view of a run, as PNG files: the decision plane and predicted vs true (``curves.py``: the
run over time).

Each function draws one picture from a trained task and its data and returns the file it wrote,
or ``None`` when the picture does not apply (a decision plane needs a classifier of two features).
matplotlib is imported here and in curves.py only, with the non-interactive backend: runs never open windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

# Decision colours: cool for approach, neutral for ignore, warm for run away; more classes cycle on.
CLASS_COLOURS = ["#4c9f70", "#d9c36a", "#d1495b", "#5b7db1", "#9c6ade", "#e8875b"]
SAMPLE_POINTS = 600


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path) -> Path:
    from catbrain.run.files import atomic_path

    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=110, bbox_inches="tight", format="png")
    finally:
        pyplot().close(figure)
    return path


def _predict(task: Any, features: torch.Tensor) -> torch.Tensor:
    """The predictor's output (target units) for raw ``features``; a quantile model's median."""
    predictor = task.predictor.eval()
    device = predictor.input_mean.device
    with torch.no_grad():
        output = predictor.output(features.to(device))
        if predictor.head.target == "number":
            output = predictor.outputs(features.to(device))[0]
    return output.cpu()


def _decide(task: Any, output: torch.Tensor) -> torch.Tensor | None:
    predictor = task.predictor
    with torch.no_grad():
        decision = predictor.decide(output.to(predictor.input_mean.device))
    return decision.cpu() if decision is not None else None


def _label(name: str, world: Any) -> str:
    unit = getattr(world, "units", {}).get(name)
    return f"{name} ({unit})" if unit else name


def plane_grid(low: torch.Tensor, high: torch.Tensor, steps: int = 300) -> tuple[Any, Any, Any]:
    """``xs, ys`` over ``[low, high]`` and the ``(steps * steps, 2)`` points of their grid, row by row of ``ys``."""
    xs, ys = torch.linspace(float(low[0]), float(high[0]), steps), torch.linspace(float(low[1]), float(high[1]), steps)
    return xs, ys, torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)


def decision_grid(task: Any, low: torch.Tensor, high: torch.Tensor, steps: int = 300) -> tuple[Any, Any, Any]:
    """The model's decision on a ``steps x steps`` grid over ``[low, high]``: ``xs, ys, regions[y, x]``."""
    xs, ys, grid = plane_grid(low, high, steps)
    return xs, ys, _decide(task, _predict(task, grid)).reshape(steps, steps)


def decision_plane(task: Any, datamodule: Any, path: Path, title: str) -> Path | None:
    """The feature plane coloured by the model's decision, the teacher's boundaries, and a sample of test objects."""
    class_names = getattr(task, "class_names", None)
    if not class_names or datamodule.num_features != 2 or _decide(task, _predict(task, torch.zeros(1, 2))) is None:
        return None
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plt = pyplot()
    test = datamodule.splits["test"]
    features = test["features"].cpu()
    low, high = features.min(0).values, features.max(0).values
    margin = 0.02 * (high - low)
    low, high = low - margin, high + margin
    xs, ys, regions = decision_grid(task, low, high)
    steps = len(xs)
    colours = CLASS_COLOURS[: len(class_names)]
    cmap = ListedColormap(colours)

    figure, axes = plt.subplots(figsize=(6.2, 5.4))
    axes.pcolormesh(
        xs.numpy(),
        ys.numpy(),
        regions.numpy(),
        cmap=cmap,
        vmin=-0.5,
        vmax=len(class_names) - 0.5,
        alpha=0.35,
        shading="auto",
    )
    handles = [Patch(facecolor=c, alpha=0.5, label=f"model: {n}") for c, n in zip(colours, class_names)]

    world = getattr(datamodule, "world", None)
    if world is not None and hasattr(world, "teacher_score") and hasattr(world, "delta"):
        teacher = world.teacher_score(plane_grid(low, high, steps)[2]).reshape(steps, steps)
        axes.contour(
            xs.numpy(),
            ys.numpy(),
            teacher.numpy(),
            levels=[-world.delta, world.delta],
            colors="black",
            linestyles="--",
            linewidths=1.4,
        )
        handles.append(Line2D([], [], color="black", linestyle="--", label="teacher's boundary"))

    sample = torch.randperm(len(features), generator=torch.Generator().manual_seed(0))[:SAMPLE_POINTS]
    decision = next((key for key in datamodule.batch_keys if not test[key].is_floating_point()), None)
    if decision is not None:  # each object in the colour of the decision observed for it
        observed = test[decision].cpu()[sample]
        for index, colour in enumerate(colours):
            chosen = sample[observed == index]
            axes.scatter(*features[chosen].numpy().T, s=9, color=colour, edgecolors="black", linewidths=0.3)
    else:
        axes.scatter(*features[sample].numpy().T, s=9, color="grey", edgecolors="black", linewidths=0.3)
    label = "test objects (observed decision)" if decision is not None else "test objects"
    handles.append(Line2D([], [], marker="o", color="grey", linestyle="", markersize=4, label=label))
    if "shift" in datamodule.splits and decision is not None:  # where the shifted world's objects lie
        shifted = datamodule.splits["shift"]
        points = shifted["features"].cpu()[: SAMPLE_POINTS // 2]
        observed = shifted[decision].cpu()[: SAMPLE_POINTS // 2]
        for index, colour in enumerate(colours):
            chosen = points[observed == index]
            axes.scatter(*chosen.numpy().T, s=14, marker="x", color=colour, linewidths=0.9)
        text = f"shifted test objects ({shift_text(datamodule)})"
        handles.append(Line2D([], [], marker="x", color="grey", linestyle="", markersize=5, label=text))
    axes.set_xlim(float(low[0]), float(high[0]))
    axes.set_ylim(float(low[1]), float(high[1]))
    axes.set_xlabel(_label(datamodule.feature_names[0], world))
    axes.set_ylabel(_label(datamodule.feature_names[1], world))
    axes.set_title(title)
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return save_figure(figure, path)


def shift_text(datamodule: Any) -> str:
    """``prey_speed_range=[2.5, 5.0]``: what the shifted test world changed."""
    return ", ".join(f"{key}={value}" for key, value in getattr(datamodule, "shift", {}).items())


def predicted_vs_true(task: Any, datamodule: Any, path: Path, title: str) -> Path | None:
    """Each test row's prediction against its observed target, with the line of perfect predictions."""
    key = datamodule.batch_keys[0]
    test = datamodule.splits["test"]
    if not test[key].is_floating_point():
        return None
    plt = pyplot()
    generator = torch.Generator().manual_seed(0)
    world = getattr(datamodule, "world", None)
    figure, axes = plt.subplots(figsize=(5.6, 5.2))
    splits = [("test", "#3b6ea8")] + [("shift", "#d1495b")] * ("shift" in datamodule.splits)
    lows, highs = [], []
    for split, colour in splits:
        data = datamodule.splits[split]
        sample = torch.randperm(len(data[key]), generator=generator)[: 3 * SAMPLE_POINTS]
        truth = data[key].cpu()[sample]
        predicted = _predict(task, data["features"].cpu()[sample])
        label = "test rows (as trained)" if split == "test" else f"shifted test rows ({shift_text(datamodule)})"
        axes.scatter(truth.numpy(), predicted.numpy(), s=6, alpha=0.45, color=colour, label=label, edgecolors="none")
        lows.append(min(truth.min(), predicted.min()).item())
        highs.append(max(truth.max(), predicted.max()).item())
    low, high = min(lows), max(highs)
    axes.plot([low, high], [low, high], color="black", linewidth=1, label="prediction = truth")
    name = _label(getattr(datamodule, "target_name", key), world)
    axes.set_xlabel(f"observed {name}")
    axes.set_ylabel(f"predicted {name}")
    axes.set_aspect("equal")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize=8)
    return save_figure(figure, path)


def headline(name: str, metrics: dict[str, float], key: str) -> str:
    """``cat_softmax: test acc 0.905 (Bayes 0.917)``: a picture's title with the numbers it is about."""
    if f"test/{key}" not in metrics:
        return name
    parts = []
    for split, label in [("test", "test"), ("shift", "shifted")]:
        if f"{split}/{key}" in metrics:
            bayes = metrics.get(f"{split}/bayes_{key}")
            parts.append(f"{label} {key} {metrics[f'{split}/{key}']:.4f}" + (f" (Bayes {bayes:.4f})" if bayes else ""))
    return f"{name}: " + ", ".join(parts)


def draw_run(
    task: Any, datamodule: Any, history: list[dict[str, float]], run_dir: Path, name: str, metrics: dict[str, float]
) -> list[Path]:
    """Every picture that applies to this run, in ``<run_dir>/plots/``."""
    plots = run_dir / "plots"
    accuracy = "acc" if "test/acc" in metrics else "decision_acc"
    # The epoch of the weights tested: the validation entry whose loss metrics.json reports.
    tested = next((e["epoch"] for e in history if "val/loss" in e and e["val/loss"] == metrics.get("val/loss")), None)
    from catbrain.run.curves import learning_curves, weight_paths

    drawn = [
        decision_plane(task, datamodule, plots / "decision_plane.png", headline(name, metrics, accuracy)),
        predicted_vs_true(task, datamodule, plots / "predicted_vs_true.png", headline(name, metrics, "mse")),
        learning_curves(history, plots / "learning_curves.png", name, tested),
        weight_paths(history, metrics, plots / "weight_paths.png", name, tested),
    ]
    return [path for path in drawn if path is not None]


def log_pictures(trainer: Any, pictures: list[Path]) -> None:
    """Show the pictures in TensorBoard too (other loggers get them as files, or not at all)."""
    if not pictures:
        return
    from matplotlib.image import imread

    for logger in trainer.loggers:
        experiment = getattr(logger, "experiment", None)
        if type(logger).__name__ == "TensorBoardLogger" and hasattr(experiment, "add_image"):
            for picture in pictures:
                image = imread(picture)[..., :3]
                experiment.add_image(f"plots/{picture.stem}", image, trainer.global_step, dataformats="HWC")
            experiment.flush()
