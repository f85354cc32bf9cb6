"""A run over time, as PNG files: its learning curves, and a linear model's weights heading for the closed form."""

from __future__ import annotations

from pathlib import Path

from catbrain.run.plots import pyplot, save_figure

ERRORS = ("mse", "mae", "rmse")  # metric names that are errors (lower is better, on their own scale)


def learning_curves(history: list[dict[str, float]], path: Path, title: str, tested: int | None = None) -> Path | None:
    """Train and validation loss per epoch, then the validation errors and scores, each on its own axes.

    ``tested`` (an epoch, 0-based) marks the weights the run tested: the best checkpoint.
    """
    if not history:
        return None
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    names = sorted({k for entry in history for k in entry if k.startswith(("train/", "val/"))})
    losses = [n for n in names if n.endswith("/loss")]
    validation = [n for n in names if n.startswith("val/") and n not in losses]
    errors = [n for n in validation if n.rsplit("/", 1)[-1] in ERRORS]
    scores = [n for n in validation if n not in errors]
    panels = [("loss", losses), ("validation error", errors), ("validation score", scores)]
    panels = [(label, shown) for label, shown in panels if shown]
    plt = pyplot()
    figure, grid = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4), squeeze=False)
    for axes, (label, shown) in zip(grid.flat, panels):
        for name in shown:
            epochs, values = zip(*[(e["epoch"] + 1, e[name]) for e in history if name in e])
            axes.plot(epochs, values, marker="o", markersize=3, label=name)
        if label != "validation score" and all(e[n] > 0 for e in history for n in shown if n in e):
            axes.set_yscale("log")
            axes.yaxis.set_major_formatter(ScalarFormatter())
            axes.yaxis.set_minor_formatter(ScalarFormatter())
            label += " (log scale)"
        if tested is not None:
            axes.axvline(tested + 1, color="grey", linestyle=":", linewidth=1, label=f"tested (epoch {tested + 1})")
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(f"{title}: learning curves")
    figure.tight_layout()
    return save_figure(figure, path)


def weight_paths(
    history: list[dict[str, float]], metrics: dict[str, float], path: Path, title: str, tested: int | None = None
) -> Path | None:
    """A linear model's weights, from their start through each epoch, against the closed-form answer and the teacher's.

    One panel per weight, each on its own scale (raw feature units differ by orders of magnitude).
    """
    names = [*dict.fromkeys(key for entry in history for key in entry if key.startswith("weight/")), "bias"]
    if "closed_form_bias" not in metrics or len(names) < 2 or not any("bias" in e for e in history):
        return None
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.6 * rows), squeeze=False)
    for axes, name in zip(grid.flat, names):
        epochs, values = zip(*[(e["epoch"] + 1, e[name]) for e in history if name in e])
        axes.plot(epochs, values, marker="o", markersize=3, color="#3b6ea8", label="learned")
        closed = metrics["closed_form_bias"] if name == "bias" else metrics[f"closed_form_{name}"]
        axes.axhline(closed, color="#d1495b", linestyle="--", linewidth=1.2, label="closed form")
        teacher = metrics.get("teacher_bias" if name == "bias" else f"teacher_{name}")
        if teacher is not None:
            axes.axhline(teacher, color="black", linestyle=":", linewidth=1.5, label="teacher")
        if tested is not None:
            axes.axvline(tested + 1, color="grey", linestyle=":", linewidth=1, label="tested")
        axes.set_title(name.removeprefix("weight/"), fontsize=10)
        axes.set_xlabel("epoch (0: before training)", fontsize=8)
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.tick_params(labelsize=8)
    for axes in list(grid.flat)[len(names) :]:
        axes.axis("off")
    grid.flat[0].legend(fontsize=7)
    figure.suptitle(f"{title}: weights (raw feature units) heading for the least-squares answer")
    figure.tight_layout()
    return save_figure(figure, path)
