"""bf16 where the hardware emulates it runs as asked, with one warning that says so; a recipe that names
no precision trains in bf16 only where the hardware has it."""

import warnings

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from unirank.model import precision


@pytest.fixture(autouse=True)
def fresh_warning_cache():
    precision.warn_if_emulated_bf16.cache_clear()
    yield
    precision.warn_if_emulated_bf16.cache_clear()


def test_a_cpu_without_bf16_instructions_warns_once(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not precision.native_bf16("cpu")
    with pytest.warns(UserWarning, match=r"no native bf16 .* --precision fp32 is faster"):
        precision.warn_if_emulated_bf16("cpu", "--precision fp32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        precision.warn_if_emulated_bf16("cpu", "--precision fp32")  # once per process


def test_a_cpu_with_amx_does_not_warn(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert precision.native_bf16("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        precision.warn_if_emulated_bf16("cpu", "--precision fp32")


@pytest.mark.parametrize(
    ("asked", "trained", "native", "expected"),
    [
        (None, "bf16-mixed", True, "bf16"),  # the recipe's precision where it runs natively
        (None, "bf16-mixed", False, "fp32"),  # emulated bf16 would be 3x slower: fp32
        (None, "32-true", True, "fp32"),
        (None, None, True, "fp32"),  # a checkpoint or an older export: fp32
        ("bf16", "32-true", False, "bf16"),  # what the user asks for wins
    ],
)
def test_evaluate_scores_in_the_precision_the_model_trained_in(tmp_path, monkeypatch, asked, trained, native, expected):
    import json

    from unirank.commands.evaluate import scoring_precision

    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    (tmp_path / "unirank.json").write_text(json.dumps({"trained_precision": trained}))
    assert scoring_precision(asked, tmp_path) == expected


class PrecisionProbe(Callback):
    """Records the precision each fit trains in."""

    seen: list = []

    def on_fit_start(self, trainer, pl_module) -> None:
        PrecisionProbe.seen.append(trainer.precision)


@pytest.mark.parametrize(
    ("native", "asked", "expected"),
    [
        (False, [], "32-true"),  # bf16 would be emulated here: the recipe trains in fp32
        (True, [], "bf16-mixed"),
        (True, ["--trainer.precision", "32-true"], "32-true"),  # a precision named on the command line is kept
        (False, ["--trainer.precision", "bf16-mixed"], "bf16-mixed"),
    ],
)
def test_a_recipe_that_names_no_precision_trains_in_bf16_only_where_it_is_native(
    native, asked, expected, tmp_path, monkeypatch
):
    from unirank.cli import main

    from .conftest import REPO

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    PrecisionProbe.seen = []
    main([
        "fit", "--config", "lightning_configs/reward.yaml", "--trainer.fast_dev_run=true", "--model.model", "tiny",
        "--trainer.callbacks+=tests.test_precision.PrecisionProbe", *asked,
        "--trainer.default_root_dir", str(tmp_path), "--export.dirpath", str(tmp_path / "model"),
    ])  # fmt: skip
    assert PrecisionProbe.seen == [expected]


@pytest.mark.parametrize(
    ("accelerator", "cuda", "expected_device"),
    [("cpu", True, "cpu"), ("gpu", True, "cuda"), ("auto", True, "cuda"), (None, False, "cpu"), ("mps", False, None)],
)
def test_the_precision_follows_the_device_a_fit_trains_on(monkeypatch, accelerator, cuda, expected_device):
    asked = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(precision, "native_bf16", lambda device: asked.append(device) or True)
    expected = None if expected_device is None else "bf16-mixed"
    assert precision.training_precision(accelerator) == expected
    assert asked == ([expected_device] if expected_device else [])


@pytest.mark.parametrize(("asked", "native", "expected"), [("auto", True, "bf16"), ("auto", False, "fp32"),
                                                          ("bf16", False, "bf16"), ("fp32", True, "fp32")])  # fmt: skip
def test_mining_encodes_in_bf16_only_where_it_is_native_unless_asked(monkeypatch, asked, native, expected):
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    assert precision.encoding_precision(asked) == expected


def test_mined_tables_record_the_precision_they_were_encoded_in(monkeypatch):
    from unirank.mining.pipeline import MiningConfig, mine_beir

    from .conftest import REPO

    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    config = MiningConfig(k=5, cache_dir=None, show_progress_bar=False)  # precision "auto" by default
    _, summary = mine_beir(str(REPO / "data" / "demo-beir"), "train", config)
    assert summary["precision"] == "fp32"
