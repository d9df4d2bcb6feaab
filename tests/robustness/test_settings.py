"""A recipe setting that cannot be built ends `unirank fit` in one unirank line naming the setting
and its problem, before anything trains (each of these printed a traceback)."""

import importlib.util

import pytest

from unirank.cli import main

from ..conftest import REPO

CASES = {
    "lora r = 0": (["--model.lora", '{"r": 0}'], r"lora: r=0 must be ≥ 1"),
    "lora r < 0": (["--model.lora", '{"r": -2}'], r"lora: r=-2 must be ≥ 1"),
    "lora dropout 2": (["--model.lora", '{"r": 2, "dropout": 2}'], r"dropout=2.0 in \[0, 1\)"),
    "lora naming no module": (["--model.lora", '{"r": 2, "target_modules": ["nope"]}'], r"\{'nope'\} not found"),
    "negative epochs": (["--model.schedule.pairwise_epochs", "-1"], r"pairwise_epochs=-1: epochs cannot be negative"),
    "no training split": (["--data.source.init_args.validation_fraction", "1"], r"no groups in the 'train' split"),
    "a missing model folder": (["--model.model", "/no/such/model"], r"/no/such/model: no such model folder"),
    "a logger whose package is missing": (["--trainer.logger=CometLogger"], r"CometLogger': Requirement 'comet-ml"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_setting_that_cannot_be_built_is_one_line(case, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    if case == "a logger whose package is missing" and importlib.util.find_spec("comet_ml"):
        pytest.skip("comet_ml is installed here")
    options, message = CASES[case]
    with pytest.raises(SystemExit, match=rf"^unirank( fit)?: .*{message}") as stopped:
        main(["fit", "--config", "lightning_configs/debug.yaml", "--trainer.fast_dev_run=true",
              "--trainer.default_root_dir", str(tmp_path), "--export.dirpath", str(tmp_path / "model"), *options])  # fmt: skip
    assert "\n" not in str(stopped.value.code) and not (tmp_path / "model").exists()


@pytest.mark.parametrize("weights", ["[-1, 1]", "[0, 0]", "[1, 1, 1]"])
def test_bad_mixture_weights_are_one_line(weights, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit, match=r"^unirank fit: Mixture: weights must be one positive number per source"):
        main(["fit", "--config", "lightning_configs/reward-mixture.yaml", "--model.model", "tiny",
              "--trainer.fast_dev_run=true", "--trainer.default_root_dir", str(tmp_path),
              "--export.dirpath", str(tmp_path / "model"), "--data.source.init_args.weights", weights])  # fmt: skip


def test_a_binary_config_file_is_one_line(tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_bytes(bytes(range(128, 256)))
    with pytest.raises(SystemExit, match=r"unirank fit: a --config file is not text"):
        main(["fit", "--config", str(config)])
