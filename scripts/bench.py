"""Benchmarks of catbrain's training loop, side by side in one process, against the loops it competes with.

    python scripts/bench.py                          # the full run: Markdown to stdout, JSON to bench.json
    python scripts/bench.py --quick --json q.json    # small sizes: checks that every section runs
    python scripts/bench.py --sections throughput,startup

Sections:
  throughput  samples/s of (a) a hand-written PyTorch loop, (b) naive Lightning (DataLoader over a
              TensorDataset, default Trainer, a self.log per step) and (c) catbrain's default loop
              (its defaults: checkpoints, early stopping, CSV logger, rich progress bar, metrics),
              same model, optimizer and batch size, for the linear model and the MLP.
  quality     seconds to fit the weather world (1M rows) to a test MSE within 1% of the Bayes-optimal:
              catbrain (full-batch L-BFGS; optimizer=closed_form), a hand-written minibatch loop,
              scikit-learn, least squares.
  generation  rows/s of each world against the floor of torch.rand plus a matmul.
  memory      peak RSS of training on 10M rows against the import baseline plus the dataset's bytes.
  startup     wall time of a tiny catbrain-train against `python -c "import pytorch_lightning, hydra"`.
  busy        a small fit idle and beside one busy process per core, with threads=auto and one per core.
  predict     catbrain-predict streaming a 5M-row CSV: rows/s and peak memory.
  serve       catbrain-serve under a bounded load test (N requests from M concurrent clients, 127.0.0.1):
              requests/s and p50/p99 latency for 1-row and 1000-row requests.
  sweep       whole sweeps of 64 jobs (4 lr x 16 seeds) of cat_threat, weather_3pm and cat_nonlinear_mlp with
              hydra/launcher=vectorized and the basic launcher, jobs/s side by side; the time for K jobs.

Timings on a shared machine are noisy: each figure is the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from catbrain.models import MLP, Linear  # noqa: E402
from catbrain.worlds import CatWorld, WeatherWorld  # noqa: E402

LR = 0.05


def quiet() -> None:
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)


def make_model(name: str) -> torch.nn.Module:
    return Linear(2, 1) if name == "linear" else MLP(2, hidden=[32, 32], out_features=1)


def cat_rows(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    sample = CatWorld().sample(n, torch.Generator().manual_seed(seed))
    return sample["features"], sample["score"]


# 1. Step throughput --------------------------------------------------------------------------------
def hand_written(model_name: str, batch_size: int, n: int, epochs: int, device: str) -> float:
    """Seconds for ``epochs`` of plain PyTorch: randperm batches, forward, backward, SGD step."""
    torch.manual_seed(0)
    x, y = (t.to(device) for t in cat_rows(n))
    model = make_model(model_name).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    started = time.perf_counter()
    for _ in range(epochs):
        for index in torch.randperm(n, device=device).split(batch_size):
            loss = torch.nn.functional.mse_loss(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def naive_lightning(model_name: str, batch_size: int, n: int, epochs: int, device: str) -> float:
    """Seconds for the textbook Lightning setup: DataLoader(TensorDataset), default Trainer, a log per step."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = make_model(model_name)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.model(x), y)
            self.log("train/loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=LR)

    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(*cat_rows(n)), batch_size=batch_size, shuffle=True)
    with tempfile.TemporaryDirectory() as root:
        trainer = pl.Trainer(max_epochs=epochs, default_root_dir=root, accelerator="gpu" if device == "cuda" else "cpu")
        started = time.perf_counter()
        trainer.fit(Module(), loader)
        return time.perf_counter() - started


def catbrain_overrides(model_name: str, batch_size: int, n: int, epochs: int, device: str) -> list[str]:
    return [
        "experiment=weather_3pm",
        "data=cat",
        "data.targets=[score]",
        f"model={model_name}",
        "optimizer=sgd",
        f"optimizer.lr={LR}",
        "optimizer.momentum=0.0",
        f"data.n_train={n}",
        "data.n_val=1024",
        "data.n_test=1024",
        f"data.batch_size={batch_size}",
        f"trainer.max_epochs={epochs}",
        f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
    ]


def catbrain_fit(overrides: list[str]) -> dict[str, float]:
    """catbrain.commands.train with its default callbacks, logger and progress bar; returns its metrics."""
    from catbrain.commands.train import train
    from catbrain.config import compose_config

    with tempfile.TemporaryDirectory() as run_dir:
        return train(compose_config(overrides, Path(run_dir)))


def catbrain_loop(model_name: str, batch_size: int, n: int, epochs: int, device: str) -> tuple[float, float]:
    """Seconds in training epochs (validation and epoch-end checkpoints left out), and of the whole fit."""
    metrics = catbrain_fit(catbrain_overrides(model_name, batch_size, n, epochs, device))
    return metrics["train_seconds"], metrics["fit_seconds"]


def throughput(args: argparse.Namespace) -> list[dict]:
    n, epochs = (20_000, 1) if args.quick else (200_000, 3)
    rows = []
    for model_name in ("linear", "mlp"):
        for batch_size in (256, 4096):
            timed = {}
            for name, loop in [("hand", hand_written), ("naive_lightning", naive_lightning)]:
                seconds = min(loop(model_name, batch_size, n, epochs, args.device) for _ in range(args.repeat))
                timed[name] = n * epochs / seconds
            train_seconds, fit_seconds = min(
                catbrain_loop(model_name, batch_size, n, epochs, args.device) for _ in range(args.repeat)
            )
            timed["catbrain"] = n * epochs / train_seconds
            timed["catbrain_whole_fit"] = n * epochs / fit_seconds
            rows.append(
                {
                    "model": model_name,
                    "batch_size": batch_size,
                    "samples_per_s": timed,
                    "catbrain_vs_hand": timed["catbrain"] / timed["hand"],
                    "catbrain_vs_naive": timed["catbrain"] / timed["naive_lightning"],
                }
            )
            print(f"  throughput {model_name} B={batch_size}: {timed}", file=sys.stderr)
    return rows


# 2. Time to quality ----------------------------------------------------------------------------------
def quality(args: argparse.Namespace) -> dict:
    n = 100_000 if args.quick else 1_000_000
    world = WeatherWorld()
    train = world.sample(n, torch.Generator().manual_seed(1))
    test = world.sample(100_000, torch.Generator().manual_seed(2))
    x, y, x_test, y_test = train["features"], train["temp_tomorrow"], test["features"], test["temp_tomorrow"]
    bayes = (test["bayes_temp_tomorrow"] - y_test).square().mean().item()
    goal = 1.01 * bayes
    results: dict[str, dict] = {}

    def test_mse(weight: torch.Tensor, bias: float) -> float:
        return (x_test.double() @ weight.double() + bias - y_test.double()).square().mean().item()

    started = time.perf_counter()
    design = torch.cat([x.double(), torch.ones(n, 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, y.double().unsqueeze(1)).solution.squeeze(1)
    results["least_squares"] = {
        "seconds": time.perf_counter() - started,
        "test_mse": test_mse(solution[:-1], solution[-1]),
    }

    try:
        from sklearn.linear_model import LinearRegression

        x_np, y_np = x.double().numpy(), y.double().numpy()  # float32 input loses digits in its solver
        started = time.perf_counter()
        fitted = LinearRegression().fit(x_np, y_np)
        seconds = time.perf_counter() - started
        results["sklearn"] = {"seconds": seconds, "test_mse": test_mse(torch.tensor(fitted.coef_), fitted.intercept_)}
    except ImportError:
        results["sklearn"] = {"seconds": None, "test_mse": None, "note": "scikit-learn not installed"}

    # Hand-written: standardised inputs and target, Adam, minibatches of 4096, until within 1% of Bayes.
    torch.manual_seed(0)
    mean, std, y_mean, y_std = x.mean(0), x.std(0), y.mean(), y.std()
    xs, ys = (x - mean) / std, (y - y_mean) / y_std
    model = torch.nn.Linear(5, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    clock, reached = 0.0, None
    for _ in range(30):
        started = time.perf_counter()
        for index in torch.randperm(n).split(4096):
            loss = torch.nn.functional.mse_loss(model(xs[index]).squeeze(-1), ys[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        clock += time.perf_counter() - started
        weight = model.weight.detach()[0] / std * y_std
        bias = (model.bias.detach()[0] - (model.weight.detach()[0] * mean / std).sum()) * y_std + y_mean
        mse = test_mse(weight, float(bias))
        if mse <= goal:
            reached = mse
            break
    results["hand_written_adam"] = {"seconds": clock if reached else None, "test_mse": mse}

    overrides = [
        "experiment=weather_3pm_lbfgs", f"data.n_train={n}", "data.n_val=10000", "data.n_test=100000",
        "trainer.max_epochs=2", "trainer.accelerator=cpu",
    ]  # fmt: skip
    metrics = min((catbrain_fit(overrides) for _ in range(args.repeat)), key=lambda m: m["fit_seconds"])
    results["catbrain_lbfgs"] = {
        "seconds": metrics["train_seconds"],
        "whole_fit_seconds": metrics["fit_seconds"],
        "test_mse": metrics["test/mse"],
        "bayes_mse_on_its_test_set": metrics["test/bayes_mse"],
    }
    overrides = [
        "experiment=weather_3pm", "optimizer=closed_form", f"data.n_train={n}", "data.n_val=10000",
        "data.n_test=100000", "data.batch_size=65536", "trainer.accelerator=cpu",
    ]  # fmt: skip
    metrics = min((catbrain_fit(overrides) for _ in range(args.repeat)), key=lambda m: m["fit_seconds"])
    results["catbrain_closed_form"] = {
        "seconds": metrics["train_seconds"],  # the solve and the one epoch that measures it
        "whole_fit_seconds": metrics["fit_seconds"],
        "test_mse": metrics["test/mse"],
        "bayes_mse_on_its_test_set": metrics["test/bayes_mse"],
    }
    for name, result in results.items():
        print(f"  quality {name}: {result}", file=sys.stderr)
    return {"n_train": n, "bayes_mse": bayes, "goal_mse": goal, "results": results}


# 3. Data generation ----------------------------------------------------------------------------------
def generation(args: argparse.Namespace) -> dict:
    n = 200_000 if args.quick else 2_000_000

    def rate(make) -> float:
        best = float("inf")
        for _ in range(max(args.repeat, 3)):
            generator = torch.Generator().manual_seed(0)
            started = time.perf_counter()
            make(generator)
            best = min(best, time.perf_counter() - started)
        return n / best

    weights = torch.tensor([1.0, 1.0])
    floor = rate(lambda g: torch.rand(n, 2, generator=g) @ weights - 1.0)
    worlds = {
        "cat (training data)": rate(lambda g: CatWorld().sample(n, g, truth=False)),
        "cat (with ground truth)": rate(lambda g: CatWorld().sample(n, g)),
        "weather (training data)": rate(lambda g: WeatherWorld().sample(n, g, truth=False)),
        "weather (with ground truth)": rate(lambda g: WeatherWorld().sample(n, g)),
    }
    result = {
        "rows": n,
        "floor_rows_per_s": floor,
        "rows_per_s": worlds,
        "floor_over_world": {k: floor / v for k, v in worlds.items()},
    }
    print(f"  generation: {result}", file=sys.stderr)
    return result


# 4. Memory ---------------------------------------------------------------------------------------------
MEMORY_CHILD = """
import sys, tempfile
from pathlib import Path
sys.path[:0] = [{src!r}]
import pytorch_lightning, hydra, catbrain.commands.train
from catbrain.config import compose_config
from catbrain.commands.train import train

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

open("/proc/self/clear_refs", "w").write("5")  # the peak starts again from here: imports done
baseline = status("VmRSS:")
if {train}:
    with tempfile.TemporaryDirectory() as run_dir:
        train(compose_config({overrides!r}, Path(run_dir)))
print(baseline, status("VmHWM:"))
"""


def memory(args: argparse.Namespace) -> dict:
    n = 1_000_000 if args.quick else 10_000_000
    overrides = [
        "experiment=weather_3pm",
        "data=cat",
        "data.targets=[score]",
        "model=linear",
        f"data.n_train={n}",
        "data.n_val=10000",
        "data.n_test=10000",
        "data.batch_size=4096",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "logger=none",
        "callbacks=model_checkpoint",
    ]

    def peak(extra: list[str]) -> tuple[int, int]:
        code = MEMORY_CHILD.format(src=str(ROOT / "src"), train=True, overrides=overrides + extra)
        output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        baseline, training = (int(value) for value in output.strip().splitlines()[-1].split())
        return baseline, training

    baseline, training = peak([])
    closed_baseline, closed_peak = peak(["optimizer=closed_form"])
    dataset_bytes = n * (2 + 1) * 4  # float32 features and target of the training split
    result = {
        "rows": n,
        "import_baseline_bytes": baseline,  # resident after the imports
        "training_peak_bytes": training,
        "dataset_bytes": dataset_bytes,
        "goal_bytes": baseline + 2 * dataset_bytes,
        "over_baseline_in_datasets": (training - baseline) / dataset_bytes,
        # optimizer=closed_form: the normal equations summed over chunks; goal: 1.2 x (baseline + data)
        "closed_form_baseline_bytes": closed_baseline,
        "closed_form_peak_bytes": closed_peak,
        "closed_form_over_baseline_plus_data": closed_peak / (closed_baseline + dataset_bytes),
    }
    print(f"  memory: {result}", file=sys.stderr)
    return result


# 5. Start-up ---------------------------------------------------------------------------------------------
def startup(args: argparse.Namespace) -> dict:
    train_command = [
        str(Path(sys.executable).parent / "catbrain-train"),
        "data.n_train=256",
        "data.n_val=64",
        "data.n_test=64",
        "trainer.max_epochs=1",
    ]

    def wall(command: list[str], cwd: str) -> float:
        times = []
        for _ in range(max(args.repeat, 3)):
            started = time.perf_counter()
            subprocess.run(command, cwd=cwd, capture_output=True, check=True)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    with tempfile.TemporaryDirectory() as cwd:
        imports = wall([sys.executable, "-c", "import pytorch_lightning, hydra"], cwd)
        run = wall([*train_command, f"hydra.run.dir={cwd}/run"], cwd)
    result = {"import_seconds": imports, "catbrain_train_seconds": run, "ratio": run / imports}
    print(f"  startup: {result}", file=sys.stderr)
    return result


# 6. A busy machine -----------------------------------------------------------------------------------------
BUSY_LOOP = "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"


def busy(args: argparse.Namespace) -> dict:
    """A small run's fit time idle and beside one busy process per core, with threads=auto and one per core."""
    cores = os.cpu_count() or 1
    experiment = ["experiment=cat_softmax", "data.n_train=4000" if args.quick else "data.n_train=20000"]
    quiet_run = ["logger=none", "plots=false", "callbacks=[model_checkpoint]", "trainer.enable_progress_bar=false"]

    def fit_seconds(threads: str, cwd: str) -> float:
        command = [str(Path(sys.executable).parent / "catbrain-train"), *experiment, *quiet_run, f"threads={threads}"]
        best = math.inf
        for attempt in range(max(args.repeat, 1)):
            run_dir = f"{cwd}/run_{threads}_{attempt}"
            subprocess.run([*command, f"hydra.run.dir={run_dir}"], cwd=cwd, capture_output=True, check=True)
            best = min(best, json.loads(Path(run_dir, "metrics.json").read_text())["fit_seconds"])
        return best

    result: dict = {"cores": cores, "seconds": {}}
    with tempfile.TemporaryDirectory() as cwd:
        for threads in ("auto", str(cores)):
            result["seconds"][f"idle, threads={threads}"] = fit_seconds(threads, cwd)
        loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=600)]) for _ in range(cores)]
        try:
            for threads in ("auto", str(cores)):
                result["seconds"][f"busy, threads={threads}"] = fit_seconds(threads, cwd)
        finally:
            for loop in loops:
                loop.kill()
    seconds = result["seconds"]
    for threads in ("auto", str(cores)):
        result[f"busy_over_idle_threads_{threads}"] = (
            seconds[f"busy, threads={threads}"] / seconds["idle, threads=auto"]
        )
    print(f"  busy: {result}", file=sys.stderr)
    return result


# Report ------------------------------------------------------------------------------------------------
def markdown(report: dict) -> str:
    lines = [f"Machine: {report['machine']}; {report['date']}; `{report['command']}`", ""]
    if "throughput" in report:
        lines += [
            "| model | batch | hand-written (a) | naive Lightning (b) | catbrain (c) | (c)/(a) | (c)/(b) "
            "| catbrain whole fit | its /(a) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in report["throughput"]:
            s = row["samples_per_s"]
            lines.append(
                f"| {row['model']} | {row['batch_size']} | {s['hand']:,.0f} | {s['naive_lightning']:,.0f} | "
                f"{s['catbrain']:,.0f} | {row['catbrain_vs_hand']:.2f} | {row['catbrain_vs_naive']:.1f} "
                f"| {s['catbrain_whole_fit']:,.0f} | {s['catbrain_whole_fit'] / s['hand']:.2f} |"
            )
        lines += [
            "",
            "Samples/s; (c) counts the time in training epochs (validation and epoch-end checkpoints left out);",
            "'whole fit' adds data generation, sanity check, validation and checkpoint writing.",
        ]
        lines.append("")
    if "quality" in report:
        quality = report["quality"]
        lines += [
            f"Time to a test MSE within 1% of the Bayes-optimal ({quality['bayes_mse']:.3f}), "
            f"weather, {quality['n_train']:,} rows:",
            "",
            "| method | seconds | test MSE |",
            "|---|---|---|",
        ]
        for name, result in quality["results"].items():
            seconds = "not reached" if result["seconds"] is None else f"{result['seconds']:.3f}"
            if "whole_fit_seconds" in result:
                seconds += f" ({result['whole_fit_seconds']:.3f} whole fit)"
            mse = "" if result["test_mse"] is None else f"{result['test_mse']:.4f}"
            lines.append(f"| {name} | {seconds} | {mse} |")
        lines.append("")
    if "generation" in report:
        g = report["generation"]
        lines += [
            "| data generation | rows/s | floor / world |",
            "|---|---|---|",
            f"| floor: torch.rand + matmul | {g['floor_rows_per_s']:,.0f} | 1.00 |",
        ]
        for world, rate in g["rows_per_s"].items():
            lines.append(f"| {world} world | {rate:,.0f} | {g['floor_over_world'][world]:.2f} |")
        lines.append("")
    if "memory" in report:
        m = report["memory"]
        mib = 2**20
        lines += [
            f"Memory, training on {m['rows']:,} rows: peak RSS {m['training_peak_bytes'] / mib:,.0f} MiB; "
            f"import baseline {m['import_baseline_bytes'] / mib:,.0f} MiB; "
            f"dataset {m['dataset_bytes'] / mib:,.0f} MiB; "
            f"goal {m['goal_bytes'] / mib:,.0f} MiB ({m['over_baseline_in_datasets']:.2f} datasets over the baseline).",
            "",
            f"Memory, `optimizer=closed_form` on the same rows: peak RSS {m['closed_form_peak_bytes'] / mib:,.0f} MiB, "
            f"{m['closed_form_over_baseline_plus_data']:.2f}x the import baseline "
            f"({m['closed_form_baseline_bytes'] / mib:,.0f} MiB) plus the data (goal: at most 1.2x).",
            "",
        ]
    if "startup" in report:
        s = report["startup"]
        lines += [
            f"Start-up: tiny `catbrain-train` {s['catbrain_train_seconds']:.2f} s, "
            f"`import pytorch_lightning, hydra` {s['import_seconds']:.2f} s, ratio {s['ratio']:.2f}.",
            "",
        ]
    if "busy" in report:
        b = report["busy"]
        lines += [f"A small fit (cat_softmax) beside {b['cores']} busy processes, one per core:", "",
                  "| condition | fit seconds | / idle (threads=auto) |", "|---|---|---|"]  # fmt: skip
        idle = b["seconds"]["idle, threads=auto"]
        lines += [f"| {name} | {value:.2f} | {value / idle:.2f} |" for name, value in b["seconds"].items()]
        lines.append("")
    if "predict" in report:
        p = report["predict"]
        lines += [f"catbrain-predict over a CSV of {p['rows']:,} rows ({p['file_bytes'] / 2**20:,.0f} MiB), streamed:",
                  "", "| output | seconds | rows/s | peak RSS MiB |", "|---|---|---|---|"]  # fmt: skip
        lines += [f"| {mode} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} | {r['peak_bytes'] / 2**20:,.0f} |"
                  for mode, r in p["results"].items()]  # fmt: skip
        lines.append("")
    if "serve" in report:
        lines += [f"catbrain-serve, POST /predict from {report['serve']['clients']} concurrent clients on 127.0.0.1 "
                  "(server and clients on this machine):", "",
                  "| request | requests | requests/s | rows/s | p50 ms | p99 ms |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for name, r in report["serve"]["results"].items():
            rows = int(name.split()[0])  # "1 row", "1000 rows", "1 row, beside 2 busy processes"
            lines.append(f"| {name} | {r['requests']:,} | {r['requests_per_s']:,.0f} | "
                         f"{r['requests_per_s'] * rows:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")  # fmt: skip
        lines.append("")
    if "sweep" in report:
        w = report["sweep"]
        lines += [f"Sweeps of {w['jobs']} jobs (4 learning rates x {w['jobs'] // 4} seeds, {w['rows']}), whole "
                  "`catbrain-train -m` runs, start-up included. Ceiling: the basic sweep's time over the "
                  f"import of the stack (`{STACK_IMPORT}` with the garbage collector paused, "
                  f"{w['import_floor_seconds']:.2f} s), the ratio of a launcher that trained and wrote every job "
                  "in no time:", "",
                  "| experiment | basic s | vectorized s | basic jobs/s | vectorized jobs/s | ratio | ceiling |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, r in w["experiments"].items():
            s, j = r["seconds"], r["jobs_per_s"]
            lines.append(f"| {name} | {s['basic']:.1f} | {s['vectorized']:.1f} | {j['basic']:.2f} | "
                         f"{j['vectorized']:.2f} | {r['speedup']:.1f}x | {r['ceiling']:.0f}x |")  # fmt: skip
        lines += ["", "| K jobs (vectorized, cat_threat) | seconds | jobs/s |", "|---|---|---|"]
        lines += [f"| {k} | {g['seconds']:.1f} | {g['jobs_per_s']:.2f} |" for k, g in w["growth"].items()]
        lines.append("")
    lines.append("GPU: " + (report.get("gpu") or "not measured (no GPU on this machine)."))
    return "\n".join(lines)


PREDICT_CHILD = """
import sys
sys.path[:0] = [{src!r}]
from catbrain.commands.predict import main
main(sys.argv[1:])
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))  # this process's own
print(int(peak.split()[1]) * 1024, file=sys.stderr)  # (ru_maxrss would count the forking parent's pages)
"""


def predict_speed(args: argparse.Namespace) -> dict:
    """catbrain-predict streaming a large CSV: rows/s and peak memory for text, JSON and ``output_path``."""
    from catbrain.commands.train import train
    from catbrain.config import compose_config

    n = 200_000 if args.quick else 5_000_000
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        small = ["data.n_train=2000", "trainer.max_epochs=1", "logger=none", "plots=false", "trainer.accelerator=cpu"]
        train(compose_config([*small, "callbacks=model_checkpoint", "trainer.enable_progress_bar=false"], run_dir))
        rows = torch.rand(n, 2, generator=torch.Generator().manual_seed(0))
        table = Path(folder) / "objects.csv"
        with open(table, "w") as file:
            file.write("id,hardness,sharpness\n")
            for start in range(0, n, 100_000):
                part = rows[start : start + 100_000].tolist()
                file.write("".join(f"o{start + i},{h:.6f},{s:.6f}\n" for i, (h, s) in enumerate(part)))
        checkpoint = run_dir / "checkpoints" / "best.ckpt"
        results = {}
        modes = {"text": ["format=text"], "json": ["format=json"], "output_path (csv)": [f"output_path={folder}/a.csv"]}
        for mode, extra in modes.items():
            code = PREDICT_CHILD.format(src=str(ROOT / "src"))
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", code, f"ckpt_path={checkpoint}", f"input_path={table}", *extra],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True,
            )  # fmt: skip
            seconds = time.perf_counter() - started
            peak = int(done.stderr.strip().splitlines()[-1])
            results[mode] = {"seconds": seconds, "rows_per_s": n / seconds, "peak_bytes": peak}
        result = {"rows": n, "file_bytes": table.stat().st_size, "results": results}
    print(f"  predict: {result}", file=sys.stderr)
    return result


SERVE_CHILD = """
import sys
sys.path[:0] = [{src!r}]
from catbrain.commands.serve import main
main(sys.argv[1:])
"""


async def http_client(host: str, port: int, request: bytes, count: int, latencies: list[float]) -> None:
    """One client on one kept-alive connection: send ``request``, read the whole answer, ``count`` times."""
    import asyncio

    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(count):
            started = time.perf_counter()
            writer.write(request)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if b" 200 " not in status:
                raise RuntimeError(f"the server answered {status!r}")
    finally:
        writer.close()


def load_test(host: str, port: int, body: bytes, requests: int, clients: int) -> dict:
    """``requests`` POST /predict from ``clients`` concurrent connections: requests/s and latency percentiles."""
    import asyncio

    request = (f"POST /predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body  # fmt: skip
    latencies: list[float] = []

    async def run_all() -> float:
        started = time.perf_counter()
        share = [requests // clients + (i < requests % clients) for i in range(clients)]
        await asyncio.gather(*(http_client(host, port, request, n, latencies) for n in share))
        return time.perf_counter() - started

    seconds = asyncio.run(run_all())
    ordered = sorted(latencies)

    def percentile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"requests": len(ordered), "clients": clients, "seconds": seconds,
            "requests_per_s": len(ordered) / seconds, "p50_ms": percentile(0.5), "p99_ms": percentile(0.99),
            "max_ms": ordered[-1] * 1000}  # fmt: skip


def serve_speed(args: argparse.Namespace) -> dict:
    """catbrain-serve under a bounded load test: N requests from M concurrent clients on 127.0.0.1, 1-row and
    1000-row requests; the server in its own process (as deployed), the clients in this one."""
    from catbrain.commands.train import train
    from catbrain.config import compose_config

    requests = 2_000 if args.quick else 20_000
    clients = 8
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        small = ["data.n_train=2000", "trainer.max_epochs=1", "logger=none", "plots=false", "trainer.accelerator=cpu"]
        train(compose_config([*small, "callbacks=model_checkpoint", "trainer.enable_progress_bar=false"], run_dir))
        checkpoint = run_dir / "checkpoints" / "best.ckpt"
        server = subprocess.Popen(
            [sys.executable, "-c", SERVE_CHILD.format(src=str(ROOT / "src")), f"ckpt_path={checkpoint}", "port=0"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            line = server.stdout.readline()
            address = line.split("http://")[1].split()[0]
            host, port = address.rsplit(":", 1)
            generator = torch.Generator().manual_seed(0)
            for rows in (1, 1000):
                body = json.dumps({"inputs": torch.rand(rows, 2, generator=generator).tolist()}).encode()
                n = requests if rows == 1 else max(200, requests // 20)
                load_test(host, int(port), body, min(n, 500), clients)  # warm up
                results[f"{rows} row{'s' * (rows > 1)}"] = load_test(host, int(port), body, n, clients)
            # a busy laptop: the same 1-row test beside one busy process per core
            cores = os.cpu_count() or 1
            loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=600)]) for _ in range(cores)]
            try:
                body = json.dumps({"inputs": [[0.9, 0.8]]}).encode()
                results[f"1 row, beside {cores} busy processes"] = load_test(host, int(port), body, requests, clients)
            finally:
                for loop in loops:
                    loop.kill()
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {"clients": clients, "results": results}
    print(f"  serve: {result}", file=sys.stderr)
    return result


SWEEP_EXPERIMENTS = ("cat_threat", "weather_3pm", "cat_nonlinear_mlp")
LEARNING_RATES = "optimizer.lr=0.005,0.01,0.02,0.05"


def sweep_seconds(folder: str, launcher: str, overrides: list[str], device: str) -> float:
    """Wall seconds of a whole ``catbrain-train -m`` sweep in a fresh process, start-up included."""
    command = [str(Path(sys.executable).parent / "catbrain-train"), "-m", f"hydra/launcher={launcher}",
               "plots=false", "logger=none", f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
               *overrides, f"hydra.sweep.dir={folder}/{launcher}_{len(os.listdir(folder))}"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started


STACK_IMPORT = "import torch, pytorch_lightning, torchmetrics, hydra, omegaconf"


def import_floor(repeat: int) -> float:
    """Seconds a fresh Python takes to import the stack every ``catbrain-train`` run needs, with the garbage
    collector paused as catbrain's commands start (best of 3 or more): the part of a whole sweep's time that no
    launcher can save."""
    times = []
    for _ in range(max(repeat, 3)):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import gc; gc.disable(); {STACK_IMPORT}"], capture_output=True,
                       check=True)  # fmt: skip
        times.append(time.perf_counter() - started)
    return min(times)


def sweep_speed(args: argparse.Namespace) -> dict:
    """Whole sweeps of 64 jobs (4 learning rates x 16 seeds) with the vectorized and the basic launchers, jobs/s
    side by side; the ceiling on their ratio that start-up alone sets (the basic sweep's time over the import of
    the stack); and how the vectorized sweep's time grows with the number of jobs K."""
    seeds = 2 if args.quick else 16
    rows = "data.n_train=2000" if args.quick else "data.n_train=20000"
    floor = import_floor(args.repeat)
    result: dict = {"jobs": 4 * seeds, "rows": rows, "import_floor_seconds": floor, "experiments": {}, "growth": {}}
    print(f"  sweep: `{STACK_IMPORT}` takes {floor:.2f} s", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        for experiment in SWEEP_EXPERIMENTS:
            overrides = [f"experiment={experiment}", rows, LEARNING_RATES, f"seed=range({seeds})"]
            seconds = {launcher: sweep_seconds(folder, launcher, overrides, args.device)
                       for launcher in ("vectorized", "basic")}  # fmt: skip
            result["experiments"][experiment] = {
                "seconds": seconds,
                "jobs_per_s": {launcher: 4 * seeds / value for launcher, value in seconds.items()},
                "speedup": seconds["basic"] / seconds["vectorized"],
                "ceiling": seconds["basic"] / floor,
            }
            print(f"  sweep {experiment}: {result['experiments'][experiment]}", file=sys.stderr)
        sizes = (1, 4) if args.quick else ((1, 16, 64, 256, 1024, 4096) if args.device == "cuda" else (1, 16, 64, 256))
        for k in sizes:
            overrides = ["experiment=cat_threat", rows, "optimizer.lr=0.02", f"seed=range({k})"]
            seconds = sweep_seconds(folder, "vectorized", overrides, args.device)
            result["growth"][k] = {"seconds": seconds, "jobs_per_s": k / seconds}
            print(f"  sweep growth K={k}: {seconds:.1f} s", file=sys.stderr)
    return result


SECTIONS = {
    "throughput": throughput,
    "quality": quality,
    "generation": generation,
    "memory": memory,
    "startup": startup,
    "busy": busy,
    "predict": predict_speed,
    "serve": serve_speed,
    "sweep": sweep_speed,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: check that the script runs")
    parser.add_argument("--repeat", type=int, default=1, help="take the best of this many runs of each timing")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, from {list(SECTIONS)}")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", default="bench.json", help="where to write the results")
    args = parser.parse_args()
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {list(SECTIONS)}")
    quiet()
    torch.set_num_threads(torch.get_num_threads())
    report = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        + (torch.cuda.get_device_name() if args.device == "cuda" else "CPU"),
        "date": datetime.date.today().isoformat(),
        "command": "python " + " ".join(sys.argv),
    }
    for name in args.sections.split(","):
        print(f"running {name} ...", file=sys.stderr)
        with contextlib.redirect_stdout(sys.stderr):  # the loops' own output; stdout keeps the report
            report[name] = SECTIONS[name](args)
    if args.device == "cuda":
        report["gpu"] = "the tables above ran on " + torch.cuda.get_device_name()
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))


if __name__ == "__main__":
    main()
