"""One command, ``catbrain``: its subcommands, ``ls`` and ``cp`` without torch, names that are nearly right, and
the latest run reachable without its timestamp."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from catbrain.commands.cli import description, groups, main
from catbrain.errors import UsageError
from tests.conftest import BIN, compose_config, run_cli


def outcome(arguments, capsys):
    try:
        main(arguments)
        code = 0
    except SystemExit as exited:
        code = exited.code
    out, err = capsys.readouterr()
    return code, out, err


def test_version_ls_and_cp_answer_without_torch_or_lightning(tmp_path):
    code = (
        "import sys\n"
        "from catbrain.commands.cli import main\n"
        "main(['--version']); main(['ls']); main(['ls', 'experiment'])\n"
        f"main(['cp', 'experiment/cat_threat', {str(tmp_path / 'mine.yaml')!r}])\n"
        "heavy = [m for m in ('torch', 'pytorch_lightning', 'hydra') if m in sys.modules]\n"
        "print('heavy:', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "heavy: []"
    first = result.stdout.splitlines()[0]
    assert first.startswith("catbrain 0.") and "torch " in first and "pytorch-lightning " in first
    assert "hydra-core " in first


def test_every_option_of_every_group_has_a_one_line_description():
    for group, options in groups().items():
        for option in options:
            from catbrain.commands.cli import conf_root

            assert description(conf_root() / group / f"{option}.yaml"), f"{group}/{option}"


def test_ls_lists_a_group_with_descriptions_and_names_a_misspelt_one(capsys):
    code, out, err = outcome(["ls", "experiment"], capsys)
    assert code == 0 and out.splitlines()[0] == "experiment:"
    assert any(line.split()[0] == "weather_3pm" and "3 pm temperature" in line for line in out.splitlines()[1:])
    code, out, err = outcome(["ls", "experment"], capsys)
    assert code == 2 and "no config group 'experment'; did you mean 'experiment'?" in err
    code, out, err = outcome(["ls", "hydra/launcher"], capsys)  # the groups under conf/hydra, Hydra's own options
    assert code == 0 and out.splitlines()[0] == "hydra/launcher:"
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["basic", "slurm", "vectorized"]
    code, out, err = outcome(["ls"], capsys)
    assert "hydra/launcher:" in out.splitlines()


def test_cp_copies_a_config_to_edit_and_the_search_path_finds_it(capsys, tmp_path):
    destination = tmp_path / "my_configs" / "experiment" / "mine.yaml"
    code, out, err = outcome(["cp", "experiment/weather_3pm", str(destination)], capsys)
    assert code == 0, err
    assert "hydra.searchpath=[file://" in out and "experiment=mine" in out
    destination.write_text(destination.read_text().replace("lr: 0.02", "lr: 0.03"))
    searchpath = f"hydra.searchpath=[file://{tmp_path / 'my_configs'}]"
    cfg = compose_config([searchpath, "experiment=mine"], tmp_path / "run")
    assert cfg.optimizer.lr == 0.03 and cfg.name == "mine"  # its own name: summaries are titled by it
    code, out, err = outcome(["cp", "experiment/weather_3pm", str(destination)], capsys)
    assert code == 2 and "exists; give overwrite=true" in err and "lr: 0.03" in destination.read_text()
    code, out, err = outcome(["cp", "experiment/weather3pm", str(tmp_path / "x.yaml")], capsys)
    assert code == 2 and "did you mean 'weather_3pm'" in err
    launcher = tmp_path / "my_configs" / "hydra" / "launcher" / "mine.yaml"  # a group under hydra/
    code, out, err = outcome(["cp", "hydra/launcher/vectorized", str(launcher)], capsys)
    assert code == 0 and f"'hydra.searchpath=[file://{tmp_path / 'my_configs'}]' hydra/launcher=mine" in out, err
    code, out, err = outcome(["cp", "experiment/cat_threat", str(tmp_path / "loose.yaml")], capsys)  # no group folder
    assert code == 0 and f"move it to a folder experiment/ (e.g. {tmp_path / 'experiment' / 'loose.yaml'})" in out


def test_a_misspelt_command_option_or_key_gets_the_nearest_names(capsys, tmp_path, monkeypatch):
    from catbrain.commands.launcher import preflight

    code, out, err = outcome(["trian"], capsys)
    assert code == 2 and "no command 'trian'; did you mean 'train'?" in err
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="experiment=weather3pm: no such option; did you mean 'weather_3pm'"):
        preflight("train", ["experiment=weather3pm"])
    with pytest.raises(UsageError, match="optimizer has no key 'lrr'; did you mean 'lr'"):
        preflight("train", ["optimizer.lrr=3"])
    with pytest.raises(UsageError, match="the config has no key 'sed'; did you mean 'seed'"):
        preflight("train", ["sed=3"])
    with pytest.raises(UsageError, match="hydra.launcher has no key 'max_jobs_per_grup'; did you mean 'max_jobs_per"):
        preflight("train", ["-m", "hydra/launcher=vectorized", "hydra.launcher.max_jobs_per_grup=3", "seed=0,1"])
    with pytest.raises(UsageError, match="hydra/launchr: no such config group; did you mean 'hydra/launcher'"):
        preflight("train", ["-m", "hydra/launchr=vectorized", "seed=0,1"])


def test_catbrain_train_and_python_dash_m_run_the_commands(tmp_path):
    tiny = ["data.n_train=64", "data.n_val=16", "data.n_test=16", "trainer.max_epochs=1", "plots=false"]
    result = run_cli("catbrain", "train", *tiny, "hydra.run.dir=one", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "one" / "metrics.json").is_file()
    again = subprocess.run(
        [sys.executable, "-m", "catbrain", "predict", "ckpt_path=one/checkpoints/best.ckpt", "input=[[0.9, 0.8]]"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert again.returncode == 0 and "hardness=0.9, sharpness=0.8 -> " in again.stdout, again.stderr


def test_the_latest_run_is_one_link_away_also_when_runs_start_together(tmp_path):
    tiny = ["data.n_train=64", "data.n_val=16", "data.n_test=16", "trainer.max_epochs=1", "plots=false"]
    runs = [
        subprocess.Popen([str(BIN / "catbrain-train"), *tiny, f"seed={seed}"], cwd=tmp_path,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for seed in (1, 2)
    ]  # fmt: skip
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()
    made = sorted(p for p in (tmp_path / "outputs" / "train").iterdir() if p.name != "latest")
    latest = tmp_path / "outputs" / "train" / "latest"
    assert len(made) == 2 and latest.is_symlink() and latest.resolve() in made
    result = run_cli("catbrain-predict", "ckpt_path=outputs/train/latest/checkpoints/best.ckpt", "input=[[0.5, 0.5]]",
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    time.sleep(0.01)
    assert not list((tmp_path / "outputs" / "train").glob(".latest.*"))  # no temporary link left behind


def test_a_description_keeps_a_formula_whole():
    from catbrain.commands.cli import conf_root

    text = description(conf_root() / "experiment" / "cat_threat.yaml")
    assert text.startswith("The book's cat brain: learn the threat score w . (hardness, sharpness) + b")


def test_each_hydra_command_names_catbrains_version(tmp_path):
    result = run_cli("catbrain-train", "--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("catbrain 0.") and "hydra-core " in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_an_option_or_module_of_an_extra_not_installed_names_the_extra():
    from catbrain.commands.hints import unknown_key_message
    from catbrain.errors import explain

    missing = ModuleNotFoundError("No module named 'optuna'", name="optuna")  # catbrain-search without optuna
    assert explain(missing) == ("optuna is not installed: pip install 'catbrain[sweep]'", True)
    assert explain(ModuleNotFoundError("No module named 'numpyy'", name="numpyy"))[1] is False  # not an extra's
    hydra_says = "Could not find 'hydra/launcher/joblib'\n\nAvailable options in 'hydra/launcher':\n\tbasic\n\tslurm\n"
    assert unknown_key_message("train", ["hydra/launcher=joblib"], Exception(hydra_says)) == (
        "hydra/launcher=joblib: no such option; hydra/launcher has basic, slurm; joblib needs pip install "
        "'catbrain[sweep]'"
    )
    hydra_says = "In 'hydra/launcher/slurm': Could not load 'hydra/launcher/submitit_slurm'.\n"
    assert unknown_key_message("train", ["hydra/launcher=slurm"], Exception(hydra_says)).endswith(
        "Could not load 'hydra/launcher/submitit_slurm': it needs pip install 'catbrain[slurm]'"
    )
