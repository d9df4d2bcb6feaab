"""bf16 where the hardware emulates it runs as asked, with one warning that says so."""

import warnings

import pytest
import torch

from unirank import precision


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
