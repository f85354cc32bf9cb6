"""Every option of every config group composes, and every ``_target_`` fits its callable's signature."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from catbrain.config import config_dir
from catbrain.validation import check_signatures
from tests.conftest import compose_config

CONF = Path(config_dir())
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "search")  # search/: catbrain-search's
OPTIONS = [(group, option.stem) for group in GROUPS for option in sorted((CONF / group).glob("*.yaml"))]
# Options that only make sense beside another experiment than the default cat_threat.
CONTEXT = {
    ("data", "weather"): ["experiment=weather_3pm"],
    ("data", "cat_decisions"): ["experiment=cat_softmax"],
    ("data", "cat_curved"): ["experiment=cat_softmax"],
    ("data", "lion"): ["experiment=lion_linear"],
    ("data", "csv"): ["experiment=weather_3pm", "data.features=[a,b]", "data.target=y", "data.path=yours.csv"],
    ("model", "linear"): ["experiment=weather_3pm"],
    ("model", "mlp"): ["experiment=weather_3pm"],
    ("task", "regression"): ["experiment=weather_3pm"],
    ("task", "classification"): ["experiment=cat_softmax"],
    ("task", "ordinal"): ["experiment=cat_ordinal"],
}


def test_every_group_has_options():
    assert set(GROUPS) >= {"data", "model", "task", "optimizer", "scheduler", "trainer", "logger", "callbacks"}
    assert {"experiment", "debug"} <= set(GROUPS)
    assert len(OPTIONS) >= 30


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_binds_its_targets(group, option, tmp_path):
    config = compose_config([f"{group}={option}", *CONTEXT.get((group, option), [])], tmp_path)
    OmegaConf.to_container(config, resolve=True)  # every interpolation resolves
    assert check_signatures(config) >= 4  # at least data, world, task, trainer


EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("model", [None, "mlp"])
def test_experiment_builds_its_data_and_task(experiment, model, tmp_path):
    overrides = [f"experiment={experiment}"] + ([f"model={model}"] if model else [])
    if model and experiment in ("cat_threat", "cat_ordinal"):
        pytest.skip("the threshold and ordinal tasks take a ThresholdedLinear model only")
    config = compose_config(overrides, tmp_path)
    datamodule, task = instantiate(config.data), instantiate(config.task)
    assert task.model.in_features == datamodule.num_features
    if model:
        assert type(task.model).__name__ == "MLP"


def test_command_line_model_choice_beats_the_experiments(tmp_path):
    config = compose_config(["experiment=weather_3pm", "model=mlp"], tmp_path)
    assert config.model._target_ == "catbrain.models.MLP" and config.task.model._target_ == "catbrain.models.MLP"


def test_counts_and_thresholds_flow_from_the_data_config(tmp_path):
    config = compose_config(["data.world.delta=0.4"], tmp_path)
    assert config.model.thresholds == [-0.4, 0.4] and config.model.in_features == 2
    softmax = compose_config(["experiment=cat_softmax"], tmp_path)
    assert softmax.model.out_features == 3
    weather = compose_config(["experiment=weather_3pm"], tmp_path)
    assert weather.model.in_features == 5


def test_configs_are_found_from_the_source_checkout():
    assert (CONF / "train.yaml").is_file() and (CONF / "eval.yaml").is_file()
