"""Device mixing, caught without a GPU: the recipes train, validate, fit, export and score with the
module on a device that is not the CPU (`tests/emulated_device.py`: a tensor there that meets a
CPU tensor in an op fails as a CUDA tensor does)."""

import numpy as np
import pytest
import torch

from unirank.adapters.base import Batch
from unirank.cli import main
from unirank.model import Model
from unirank.model.backbone import load_backbone
from unirank.model.scorer import Scorer
from unirank.training.validation import ValidationMetrics

from .conftest import REPO
from .emulated_device import EMULATED, DeviceMixingError, on_emulated_device

ON_THE_DEVICE = [
    "--trainer.strategy", '{"class_path": "tests.emulated_device.EmulatedDeviceStrategy"}',
    "--trainer.accelerator", '{"class_path": "tests.emulated_device.EmulatedAccelerator"}',
    "--trainer.precision", "32-true",
]  # fmt: skip


@pytest.fixture
def device_run(monkeypatch, tmp_path):
    """fit(recipe, *options) through the CLI with the module and its batches on the emulated device."""
    monkeypatch.chdir(REPO)  # the recipes' data paths are relative to the repository
    # transformers kernelizes a model at .train() where the `kernels` package is installed, and
    # kernelize knows real device types only (the emulated one reports the meta type)
    monkeypatch.setenv("USE_HUB_KERNELS", "0")

    def fit(recipe: str, *options: str) -> None:
        with on_emulated_device():
            main([
                "fit", "--config", f"lightning_configs/{recipe}.yaml", *ON_THE_DEVICE,
                "--trainer.default_root_dir", str(tmp_path), "--export.dirpath", str(tmp_path / "model"), *options,
            ])  # fmt: skip

    return fit


def test_the_emulated_device_fails_where_a_gpu_fails():
    with on_emulated_device():
        on_device = torch.ones(3, device=EMULATED)
        assert on_device.device == EMULATED and torch.equal((on_device * 2).cpu(), torch.full((3,), 2.0))
        assert float((on_device + torch.tensor(1.0)).sum()) == 6.0  # a 0-dim CPU tensor mixes, as on CUDA
        with pytest.raises(DeviceMixingError, match="same device"):
            on_device + torch.ones(3)
        with pytest.raises(DeviceMixingError, match="same device"):
            torch.cat([on_device, torch.zeros(1)])


@pytest.mark.parametrize("recipe", ["debug", "reward", "reranker", "process", "reward-mixture"])
def test_every_recipe_runs_every_stage_on_a_device_that_is_not_the_cpu(recipe, device_run, capsys):
    """One batch through each stage, validation, the Thurstone fit (with stage-1 priors), the final
    calibration and the head posterior, with the module on the device."""
    device_run(recipe, "--model.model", "tiny", "--trainer.fast_dev_run=true")
    out = capsys.readouterr().out
    assert "every stage ran on one batch (pairwise → pointwise)" in out
    assert "final calibration: scoring" in out and "head posterior and novelty reference: scoring" in out


def test_a_lora_decoder_on_packed_rows_trains_exports_and_scores_on_the_device(
    random_decoder, device_run, tmp_path, capsys
):
    """The decoder recipe (LoRA, gradient checkpointing, packed rows with shared prompts, a score
    head without a bias) through sanity validation, both stages, the fits and the export; the
    export scores the same on the device as on the CPU."""
    device_run("reward-decoder", "--model.model", random_decoder("qwen2"), "--trainer.limit_train_batches", "2")
    out = capsys.readouterr().out
    assert "head posterior:" in out and "exported the model to" in out
    pairs = [("How do I boil an egg?", "Put it in boiling water."), ("Hi", "Hello there, how can I help " * 4)]
    on_cpu = Model.from_pretrained(tmp_path / "model", device="cpu").score(pairs)
    with on_emulated_device():
        model = Model.from_pretrained(tmp_path / "model", device=EMULATED)
        assert model.device == EMULATED
        on_device = model.score(pairs)
    assert on_device[0].keys() == on_cpu[0].keys() and "probability_lower" in on_cpu[0] and "novelty" in on_cpu[0]
    for key in ("probability", "probability_lower", "novelty"):
        np.testing.assert_allclose([r[key] for r in on_device], [r[key] for r in on_cpu], atol=1e-5)


def test_a_process_decoder_on_packed_rows_runs_every_stage_on_the_device(random_decoder, device_run, capsys):
    device_run(
        "process", "--model.model", random_decoder("llama"), "--model.lora", '{"r": 4}',
        "--model.packing", '{"padding_free": true, "share_prefix": true}', "--trainer.fast_dev_run=true",
    )  # fmt: skip
    assert "every stage ran on one batch (pairwise → pointwise)" in capsys.readouterr().out


def test_validation_reads_a_batch_on_the_device():
    """The masks validation builds per source live where the batch does (they were CPU tensors)."""
    batch = Batch(
        chunks=[], order=torch.arange(4), group_id=["g1", "g1", "g2", "g2"], item_id=["a", "b", "c", "d"],
        label=torch.tensor([1.0, 0.0, float("nan"), 1.0]), comp_a=torch.tensor([0, 2]), comp_b=torch.tensor([1, 3]),
        p=torch.tensor([1.0, 0.0]), weight=torch.ones(2),
    )  # fmt: skip
    scores = torch.tensor([2.0, -1.0, 0.5, 1.0])
    on_cpu = ValidationMetrics({"g1": "hh", "g2": "pandalm"})
    expected = on_cpu.update(scores, batch)
    with on_emulated_device():
        metrics = ValidationMetrics({"g1": "hh", "g2": "pandalm"})
        for name in ("order", "label", "comp_a", "comp_b", "p", "weight"):
            setattr(batch, name, getattr(batch, name).to(EMULATED))
        logged = metrics.update(scores.to(EMULATED), batch)
        assert {k: (float(v), n) for k, (v, n) in logged.items()} == {
            k: (float(v), n) for k, (v, n) in expected.items()
        }
    assert {k: float(v) for k, v in metrics.compute().items()} == {k: float(v) for k, v in on_cpu.compute().items()}


def test_the_head_vector_of_a_head_without_a_bias_comes_back_to_the_cpu(random_decoder):
    """A decoder's score layer has no bias; θ = [w, 0] is read on the CPU wherever the layer is."""
    model, tokenizer = load_backbone(random_decoder("qwen2"))
    assert model.score.bias is None
    scorer = Scorer(model, tokenizer)
    expected = torch.cat([model.score.weight.detach().reshape(-1).double(), torch.zeros(1, dtype=torch.float64)])
    with on_emulated_device():
        scorer.to(EMULATED)
        theta = scorer.head_vector()
    assert theta.device.type == "cpu" and torch.equal(theta, expected)
