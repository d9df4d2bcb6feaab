"""DDP on 2 CPU processes (gloo): both stages, one Thurstone fit shared by every rank, one export."""

import os
import subprocess
import sys

import pytest
import torch

from unirank.data.batching import BucketBatchSampler
from unirank.training.export import load_checkpoint


def test_sampler_shards_batches_by_rank_with_equal_counts():
    lengths = list(range(23))
    shards = []
    for rank in range(2):
        sampler = BucketBatchSampler(lengths, batch_groups=4, seed=0)
        sampler.rank, sampler.world_size = rank, 2
        sampler.set_epoch(3)
        shards.append([tuple(g for g, _ in batch) for batch in sampler])
    single = BucketBatchSampler(lengths, batch_groups=4, seed=0)
    single.set_epoch(3)
    everything = [tuple(g for g, _ in batch) for batch in single]
    assert len(shards[0]) == len(shards[1]) == 3  # 6 batches, split evenly
    assert sorted(shards[0] + shards[1]) == sorted(everything)


@pytest.mark.slow  # 25 s; the default run's FSDP2 test trains and exports on two processes too
def test_ddp_debug_recipe_on_two_processes(repo, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    command = [
        sys.executable,
        "-m",
        "unirank.cli",
        "fit",
        "--config",
        str(repo / "lightning_configs/debug.yaml"),
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.accelerator=cpu",
        f"--trainer.default_root_dir={tmp_path}",
        f"--export.dirpath={tmp_path / 'model'}",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
    ]
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert output.count("Thurstone fit:") == 1  # fitted once, on rank 0, then broadcast
    assert output.count("exported the model") == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    checkpoint = next(tmp_path.rglob("last.ckpt"))
    module = load_checkpoint(checkpoint)
    assert module.targets is not None and module.targets.height == 60  # every training item has a target
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    # last.ckpt is rewritten at every epoch's end: it now holds the 4th and last (0-based epoch 3)
    assert saved["unirank"]["stage"] == "pointwise" and saved["epoch"] == 3


def fit_on_two_processes(repo, out, strategy: str, *options: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    command = [
        sys.executable, "-m", "unirank.cli", "fit", "--config", str(repo / "lightning_configs/debug.yaml"),
        f"--trainer.strategy={strategy}", "--trainer.devices=2", "--trainer.accelerator=cpu",
        f"--trainer.default_root_dir={out}", f"--export.dirpath={out / 'model'}", "--trainer.logger=false",
        "--trainer.enable_progress_bar=false", *options,
    ]  # fmt: skip
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    return output


FSDP_OPTIONS = ("--trainer.strategy.data_parallel_size=2", "--trainer.strategy.tensor_parallel_size=1",
                "--trainer.strategy.save_distributed_checkpoint=false")  # fmt: skip
CONTEXTS, CANDIDATES = ["what is the capital of France?", "hi", "hi"], ["Paris", "hello there", "the lazy dog"]


def lora_decoder(random_decoder) -> tuple[str, ...]:
    return ("--model.model", random_decoder("qwen2"), "--model.lora", '{"r": 4}',
            "--model.packing", '{"padding_free": true, "share_prefix": true}')  # fmt: skip


@pytest.mark.slow  # about 40 s: two processes; run with -m slow
def test_fsdp2_trains_a_lora_decoder_through_every_stage_and_exports_once(repo, random_decoder, tmp_path):
    """FSDP2 (ModelParallelStrategy, gloo, 2 CPU processes) shards every layer's weights; the
    Thurstone fit, the final calibration, the head posterior and the export run sharded. The export
    is the gathered weights with the final calibration folded in: it scores as the last checkpoint
    (the full weights at the end of training) does through σ(a·r + b)."""
    import json

    import numpy as np

    from unirank.model import Model

    output = fit_on_two_processes(repo, tmp_path, "ModelParallelStrategy", *lora_decoder(random_decoder), *FSDP_OPTIONS)
    assert output.count("exported the model") == 1
    info = json.loads((tmp_path / "model" / "unirank.json").read_text())
    fit = info["calibration"]["final_fit"]
    assert info["uncertainty"] is not None and info["novelty"]["references"] > 0
    exported = Model.from_pretrained(tmp_path / "model").score_texts(CONTEXTS, CANDIDATES)
    trained = Model.from_pretrained(next(tmp_path.rglob("last.ckpt"))).score_texts(CONTEXTS, CANDIDATES)
    np.testing.assert_allclose(exported, fit["a"] * trained + fit["b"], rtol=1e-4, atol=1e-3)
    assert np.ptp(exported) > 0.1  # logits units apart: agreement is not saturation


@pytest.mark.slow
def test_fsdp2_trains_as_ddp_does(repo, random_decoder, tmp_path):
    """The same LoRA decoder fit under FSDP2 and under DDP: the exports score alike."""
    import numpy as np

    from unirank.model import Model

    fit_on_two_processes(repo, tmp_path / "fsdp", "ModelParallelStrategy", *lora_decoder(random_decoder), *FSDP_OPTIONS)
    fit_on_two_processes(repo, tmp_path / "ddp", "ddp", *lora_decoder(random_decoder))
    fsdp, ddp = (
        Model.from_pretrained(tmp_path / s / "model").score_texts(CONTEXTS, CANDIDATES) for s in ("fsdp", "ddp")
    )
    np.testing.assert_allclose(fsdp, ddp, rtol=1e-4, atol=1e-3)
    assert np.ptp(ddp) > 0.1
