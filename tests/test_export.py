"""catbrain-export: the exported files give what catbrain-predict gives, carry their metadata, and refuse bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from catbrain.commands import export as export_module
from catbrain.commands.export import export, main
from catbrain.commands.predict import main as predict_main
from catbrain.commands.train import train
from catbrain.predictor import load_predictor
from tests.conftest import compose_config, run_cli
from tests.helpers import outcome

TINY = ["data.n_train=256", "data.n_val=64", "data.n_test=64", "trainer.max_epochs=2"]
EXPERIMENTS = {
    "threshold": [],
    "ordinal": ["experiment=cat_ordinal"],
    "classification": ["experiment=cat_softmax"],
    "regression": ["experiment=weather_3pm", "model=mlp"],
    "quantile": ["experiment=weather_3pm_quantiles"],
}
RTOL = 1e-5
# PyTorch deprecates TorchScript; loading the files it writes is what these tests are for.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def needs_onnx():
    for package in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(package, reason=f"ONNX export needs {package}: pip install 'catbrain[export]'")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """One tiny trained model of each kind: kind -> best checkpoint."""
    root = tmp_path_factory.mktemp("trained")
    quiet = ["callbacks=model_checkpoint", "logger=none", "trainer.enable_progress_bar=false"]
    paths = {}
    for kind, overrides in EXPERIMENTS.items():
        train(compose_config([*overrides, *TINY, *quiet], root / kind))
        paths[kind] = root / kind / "checkpoints" / "best.ckpt"
    return paths


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory):
    """kind -> format -> exported file (ONNX only where its packages are installed)."""
    root = tmp_path_factory.mktemp("exported")
    formats = ["torchscript"]
    if all(_installed(name) for name in ("onnx", "onnxscript", "onnxruntime")):
        formats.append("onnx")
    return {
        kind: {fmt: export(str(ckpt), fmt, str(root / f"{kind}{export_module.SUFFIXES[fmt]}")) for fmt in formats}
        for kind, ckpt in checkpoints.items()
    }


def _installed(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


def raw_rows(ckpt, n_rows=50, seed=1):
    """Seeded raw feature rows across the training data's range, as float32."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    generator = torch.Generator().manual_seed(seed)
    mean, std = state["predictor.input_mean"], state["predictor.input_std"]
    noise = torch.rand(n_rows, len(mean), generator=generator) * 6 - 3
    return (mean + std * noise).to(torch.float32)


def predicted(capsys, ckpt, rows):
    """catbrain-predict's JSON answer for ``rows``."""
    predict_main([f"ckpt_path={ckpt}", f"input={json.dumps(rows.tolist())}", "format=json"])
    return json.loads(capsys.readouterr().out)


def run_onnx(path, rows):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, {"features": rows.numpy()})))


def run_torchscript(path, rows):
    extra = {"catbrain.json": ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    with torch.no_grad():
        outputs = module(rows)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    names = list(json.loads(extra["catbrain.json"])["outputs"])
    return {name: output.numpy() for name, output in zip(names, outputs)}


RUNNERS = {"onnx": run_onnx, "torchscript": run_torchscript}


def assert_close(got, want):
    want = np.asarray(want, dtype=np.float32)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * float(np.abs(want).max()))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("kind", list(EXPERIMENTS))
def test_exported_file_answers_as_predict_does(checkpoints, exported, capsys, kind, fmt):
    if fmt == "onnx":
        needs_onnx()
    ckpt = checkpoints[kind]
    predictor = load_predictor(str(ckpt))
    class_names = predictor.class_names
    for n_rows in (50, 1):  # any batch size
        rows = raw_rows(ckpt, n_rows)
        answers = predicted(capsys, ckpt, rows)
        outputs = RUNNERS[fmt](exported[kind][fmt], rows)
        if kind == "regression":
            assert set(outputs) == {"prediction"}
            assert outputs["prediction"].shape == (n_rows,)
            assert_close(outputs["prediction"], [answer["prediction"] for answer in answers])
        elif kind == "quantile":
            assert set(outputs) == {"prediction", "quantiles"}
            assert outputs["quantiles"].shape == (n_rows, 3)
            assert_close(outputs["prediction"], [answer["prediction"] for answer in answers])
            assert_close(outputs["quantiles"], [list(answer["quantiles"].values()) for answer in answers])
            assert (np.diff(outputs["quantiles"], axis=1) >= 0).all()  # never crossing
        elif kind in ("threshold", "ordinal"):
            assert set(outputs) == {"score", "decision"}
            assert_close(outputs["score"], [answer["score"] for answer in answers])
            assert [class_names[d] for d in outputs["decision"]] == [answer["prediction"] for answer in answers]
        else:
            assert set(outputs) == {"probabilities", "decision"}
            assert [class_names[d] for d in outputs["decision"]] == [answer["prediction"] for answer in answers]
            with torch.no_grad():
                logits = predictor.model((rows - predictor.input_mean) / predictor.input_std)
            assert outputs["probabilities"].shape == (n_rows, len(class_names))
            assert_close(outputs["probabilities"], [[a["probabilities"][c] for c in class_names] for a in answers])
            assert_close(outputs["probabilities"], torch.softmax(logits, -1).numpy())


def expected_metadata(ckpt):
    predictor = load_predictor(str(ckpt))
    kind = predictor.head.kind
    return {
        "kind": kind,
        "feature_names": predictor.feature_names,
        "target_name": predictor.target_name,
        "class_names": predictor.class_names,
        "thresholds": predictor.model.thresholds.tolist() if kind in ("threshold", "ordinal") else None,
        "quantiles": [0.1, 0.5, 0.9] if kind == "quantile" else None,
    }


@pytest.mark.parametrize("kind", list(EXPERIMENTS))
def test_metadata_reads_back(checkpoints, exported, kind):
    expected = expected_metadata(checkpoints[kind])
    extra = {"catbrain.json": ""}
    torch.jit.load(str(exported[kind]["torchscript"]), _extra_files=extra)
    document = json.loads(extra["catbrain.json"])
    assert {key: document[key] for key in expected} == expected
    if kind == "threshold":
        assert document["class_names"] == ["approach", "ignore", "run_away"]
        assert document["thresholds"] == pytest.approx([-0.25, 0.25])
    if kind == "regression":
        assert document["feature_names"] == ["temp_today", "pressure", "humidity", "day_sin", "day_cos"]

    needs_onnx()
    import onnx
    import onnxruntime

    session = onnxruntime.InferenceSession(str(exported[kind]["onnx"]), providers=["CPUExecutionProvider"])
    properties = {key: json.loads(value) for key, value in session.get_modelmeta().custom_metadata_map.items()}
    assert {key: properties[key] for key in expected} == expected
    assert properties["outputs"] == document["outputs"]
    [features] = session.get_inputs()
    assert features.name == "features" and features.type == "tensor(float)"
    assert isinstance(features.shape[0], str) and features.shape[1] == len(expected["feature_names"])
    assert [output.name for output in session.get_outputs()] == list(document["outputs"])
    onnx.checker.check_model(onnx.load(str(exported[kind]["onnx"])))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_scores_on_a_threshold_decide_as_the_model_does(checkpoints, tmp_path, fmt):
    """Scores exactly on a threshold go to the class nearer the middle, as ThresholdedLinear.decide sends them."""
    if fmt == "onnx":
        needs_onnx()
    checkpoint = torch.load(checkpoints["threshold"], map_location="cpu", weights_only=True)
    state = checkpoint["state_dict"]
    # score = hardness, in raw units: the scores below are exactly the thresholds and their float32 neighbours.
    state["predictor.model.score_layer.weight"] = torch.tensor([[1.0, 0.0]])
    state["predictor.model.score_layer.bias"] = torch.zeros(1)
    for name, value in {"input_mean": 0.0, "input_std": 1.0, "target_mean": 0.0, "target_std": 1.0}.items():
        state[f"predictor.{name}"] = torch.full_like(state[f"predictor.{name}"], value)
    ckpt = tmp_path / "ties.ckpt"
    torch.save(checkpoint, ckpt)
    below, above = (
        torch.nextafter(torch.tensor(0.25), torch.tensor(0.0)),
        torch.nextafter(torch.tensor(0.25), torch.tensor(1.0)),
    )
    hardness = torch.stack([-above, torch.tensor(-0.25), -below, torch.tensor(0.0), below, torch.tensor(0.25), above])
    rows = torch.stack([hardness, torch.zeros_like(hardness)], dim=1)
    expected = load_predictor(str(ckpt)).model.decide(hardness)
    assert expected.tolist() == [0, 1, 1, 1, 1, 1, 2]
    outputs = RUNNERS[fmt](export(str(ckpt), fmt), rows)
    assert outputs["decision"].tolist() == expected.tolist()
    assert outputs["score"].tolist() == hardness.tolist()


def test_default_out_sits_beside_the_checkpoint_and_leaves_nothing_else(checkpoints, tmp_path):
    ckpt = tmp_path / "cat.ckpt"
    ckpt.write_bytes(checkpoints["threshold"].read_bytes())
    path = export(str(ckpt), "torchscript")
    assert path == tmp_path / "cat.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.ckpt", "cat.pt"]
    if os.name == "posix":
        umask = os.umask(0)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_files_run_without_catbrain(exported, tmp_path):
    """Load both files in a Python that cannot import catbrain."""
    files = exported["threshold"]
    script = f"""
import sys
sys.modules["catbrain"] = None
import torch
module = torch.jit.load({str(files["torchscript"])!r})
score, decision = module(torch.tensor([[0.9, 0.8], [0.1, 0.2]]))
print("torchscript", decision.tolist())
if {"onnx" in files}:
    import numpy, onnxruntime
    session = onnxruntime.InferenceSession({str(files.get("onnx"))!r})
    score, decision = session.run(None, {{"features": numpy.array([[0.9, 0.8], [0.1, 0.2]], dtype=numpy.float32)}})
    print("onnx", decision.tolist())
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("torchscript [")
    if "onnx" in files:
        assert lines[1] == lines[0].replace("torchscript", "onnx")


def test_console_script_writes_the_file(checkpoints, capsys, tmp_path):
    result = run_cli(
        "catbrain-export",
        f"ckpt_path={checkpoints['regression']}",
        "format=torchscript",
        "out=weather.pt",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "torchscript: weather.pt"
    assert (tmp_path / "weather.pt").is_file()
    code, out, _ = outcome(main, capsys, ["--help"])
    assert code == 0 and "format" in out and "catbrain[export]" in out


@pytest.mark.slow
def test_python_m_exports_onnx(checkpoints, tmp_path):
    needs_onnx()
    ckpt = checkpoints["regression"]
    result = subprocess.run(
        [sys.executable, "-m", "catbrain.commands.export", f"ckpt_path={ckpt}", "format=onnx", "out=weather.onnx"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "onnx: weather.onnx"
    assert result.stderr == ""  # the exporter's own chatter is kept quiet
    rows = raw_rows(ckpt)
    with torch.no_grad():
        expected = load_predictor(str(ckpt)).output(rows)
    assert_close(run_onnx(tmp_path / "weather.onnx", rows)["prediction"], expected.numpy())


def assert_one_line_error(capsys, arguments, *fragments):
    code, out, err = outcome(main, capsys, arguments)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("catbrain-export: error: "), err
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_input_is_one_line(checkpoints, capsys, tmp_path):
    ckpt = f"ckpt_path={checkpoints['threshold']}"
    assert_one_line_error(capsys, ["format=onnx"], "ckpt_path=... is required")
    assert_one_line_error(capsys, [ckpt], "format=... is required", "'onnx'", "'torchscript'")
    assert_one_line_error(capsys, [ckpt, "format=tflite"], "format='tflite'", "'onnx'", "'torchscript'")
    assert_one_line_error(capsys, [ckpt, "format=onnx", "opset=18"], "unknown argument 'opset=18'")
    missing = tmp_path / "nowhere.ckpt"
    assert_one_line_error(capsys, [f"ckpt_path={missing}", "format=torchscript"], str(missing), "does not exist")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    assert_one_line_error(capsys, [f"ckpt_path={garbage}", "format=torchscript"], f"ckpt_path={str(garbage)!r}")
    no_dir = tmp_path / "no" / "model.pt"
    assert_one_line_error(capsys, [ckpt, "format=torchscript", f"out={no_dir}"], str(no_dir.parent), "does not exist")
    assert_one_line_error(capsys, [ckpt, "format=torchscript", f"out={tmp_path}"], "is a directory")
    assert_one_line_error(capsys, [ckpt, "format=torchscript", f"out={checkpoints['threshold']}"], "the checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.ckpt"]  # nothing written, no temporary files


def test_a_failed_export_keeps_the_earlier_file(capsys, tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    earlier = tmp_path / "model.pt"
    earlier.write_bytes(b"earlier export")
    arguments = [f"ckpt_path={garbage}", "format=torchscript", f"out={earlier}", "overwrite=true"]
    assert_one_line_error(capsys, arguments, "garbage.ckpt")
    assert earlier.read_bytes() == b"earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.ckpt", "model.pt"]


def test_missing_onnx_packages_name_the_extra(checkpoints, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # Python's own way to make an import fail
    assert_one_line_error(
        capsys, [f"ckpt_path={checkpoints['threshold']}", "format=onnx"], "onnxscript", 'pip install "catbrain[export]"'
    )


def test_torchscript_needs_no_onnx_package(checkpoints, tmp_path, monkeypatch):
    for package in ("onnx", "onnxscript", "onnxruntime"):
        monkeypatch.setitem(sys.modules, package, None)  # any import of them would now fail
    path = export(str(checkpoints["classification"]), "torchscript", str(tmp_path / "softmax.pt"))
    outputs = run_torchscript(path, raw_rows(checkpoints["classification"]))
    assert outputs["probabilities"].shape == (50, 3) and outputs["decision"].shape == (50,)
