"""The private APIs of Lightning, Hydra and Optuna that catbrain uses, each pinned: a release that changes one
fails here, by name, rather than somewhere deep in a run."""

import inspect

import pytest


def test_lightning_optimizer_has_the_step_hooks_the_direct_loop_calls():
    import torch
    from pytorch_lightning.core.optimizer import LightningOptimizer

    from catbrain.compat.lightning import can_step_directly

    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    wrapped = LightningOptimizer(sgd)
    for name in ("_on_before_step", "_on_after_step"):
        assert callable(getattr(wrapped, name, None)), f"LightningOptimizer().{name} is gone"
    assert can_step_directly(wrapped)
    assert wrapped.optimizer is sgd
    # Lightning's manual loop installs its step counting there: the direct steps rely on it.
    from pytorch_lightning.loops.optimization.manual import _ManualOptimization

    assert "_on_before_step" in inspect.getsource(_ManualOptimization)


def test_lightning_training_epoch_loop_counts_what_the_loop_and_loader_read():
    from pytorch_lightning import Trainer

    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_epochs=1)
    epoch_loop = trainer.fit_loop.epoch_loop
    assert isinstance(epoch_loop._batches_that_stepped, int)
    assert isinstance(epoch_loop.batch_progress.current.processed, int)


def test_lightning_callbacks_generate_their_state_keys():
    from pytorch_lightning import Callback

    from catbrain.compat.lightning import callback_state_key

    assert callback_state_key(Callback(), dirpath="x") == "Callback{'dirpath': 'x'}"


def test_hydra_parses_argv_and_splits_sweeps_as_catbrain_expects():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from catbrain.compat.hydra import parse_command_line, sweep_jobs

    args = parse_command_line(["-m", "a=1,2", "b=x"])
    assert args.multirun and args.overrides == ["a=1,2", "b=x"]
    parsed = OverridesParser.create().parse_overrides(args.overrides)
    assert sweep_jobs(parsed) == [["a=1", "b=x"], ["a=2", "b=x"]]


def test_hydra_job_return_keeps_a_failed_jobs_error():
    from hydra.core.utils import JobReturn, JobStatus

    from catbrain.compat.hydra import job_error

    error = ValueError("bad")
    job = JobReturn(status=JobStatus.FAILED, _return_value=error)
    assert job_error(job) is error


def test_optuna_frozen_trials_carry_their_id():
    optuna = pytest.importorskip("optuna")
    from catbrain.compat.optuna import trial_id

    study = optuna.create_study()
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    assert trial_id(study.trials[0]) == study.trials[0]._trial_id


def test_omegaconfs_dumper_lets_libyaml_write_its_text(tmp_path):
    from omegaconf import OmegaConf

    from catbrain.compat.omegaconf import config_yaml
    from tests.conftest import compose_config

    cfg = compose_config(["experiment=cat_threat"], tmp_path)
    tricky = {"yes": "yes", "y": "y", "one": "1", "float": "1e-3", "null": "null", "empty": "", "off": "off",
              "interpolated": "${data.seed}", "unicode": "Température °C", "colon": "a: b",
              "list": ["2", 3, None], "emoji 🐱": "cat 🐱", "nel": "a\x85b",
              "separators": "a\u2028b\u2029"}  # fmt: skip
    plain = OmegaConf.to_container(cfg) | {"tricky": tricky}
    assert config_yaml(plain) == OmegaConf.to_yaml(OmegaConf.create(plain))


def test_hydra_run_job_steps_that_run_own_job_repeats():
    import inspect

    from hydra.core import utils

    # run_own_job repeats Hydra's run_job with these members; a release that changes them changes its steps.
    for name in ("JobReturn", "JobRuntime", "JobStatus", "configure_log", "env_override", "_flush_loggers"):
        assert hasattr(utils, name), name
    steps = inspect.getsource(utils.run_job)
    for step in ("set_config", "configure_log", "hydra.yaml", "overrides.yaml", "on_job_start", "on_job_end"):
        assert step in steps, step
    # ... and HydraConfig.set_config's steps, which it takes less the copy of the hydra node.
    from hydra.core.hydra_config import HydraConfig

    setting = inspect.getsource(HydraConfig.set_config)
    for step in ("set_readonly(cfg.hydra, True)", 'masked_copy(cfg, "hydra")', "hydra._set_parent(cfg)"):
        assert step in setting, step


def test_a_config_copied_through_pickle_is_the_one_deepcopy_makes():
    """compat.hydra.copied (a sweep job's config derived from another's): the same nodes, types, flags and metadata as
    ``copy.deepcopy``; deepcopy itself where a value does not pickle."""
    import copy

    from hydra import compose, initialize_config_dir
    from omegaconf import DictConfig, ListConfig, OmegaConf

    from catbrain.compat.hydra import copied
    from catbrain.config import config_dir

    def same(a, b, path="cfg"):
        assert type(a) is type(b), path
        if isinstance(a, (DictConfig, ListConfig)):
            for field in ("ref_type", "object_type", "optional", "key", "flags", "key_type", "element_type"):
                assert getattr(a._metadata, field, None) == getattr(b._metadata, field, None), (path, field)
            if a._is_none() or a._is_missing() or a._is_interpolation():
                assert a._value() == b._value(), path
                return
            keys = list(a.keys()) if isinstance(a, DictConfig) else list(range(len(a)))
            assert keys == (list(b.keys()) if isinstance(b, DictConfig) else list(range(len(b)))), path
            for key in keys:
                same(a._get_node(key), b._get_node(key), f"{path}.{key}")
        else:
            assert type(a._value()) is type(b._value()) and a._value() == b._value(), path

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for overrides in (["experiment=cat_threat"], ["experiment=weather_3pm_quantiles", "hydra/launcher=vectorized"]):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
            OmegaConf.set_readonly(cfg.hydra, True)
            copy_ = copied(cfg)
            same(copy.deepcopy(cfg), copy_)
            assert copy_ is not cfg and OmegaConf.is_struct(copy_) and OmegaConf.is_readonly(copy_.hydra)
            copy_.hydra._set_flag("readonly", False)
            copy_.hydra.job.name = "changed"
            assert cfg.hydra.job.name != "changed"  # nothing shared

    def function() -> int:  # a local function: pickle refuses it, deepcopy keeps the reference
        return 1

    with_function = OmegaConf.create({"call": function}, flags={"allow_objects": True})
    assert copied(with_function).call is function
