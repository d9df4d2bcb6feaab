"""Every recipe runs under Lightning's fast_dev_run: one batch through every stage of its schedule
(the Thurstone fit included), the final calibration and the head posterior, and exports nothing."""

from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from unirank.cli import main

from .conftest import REPO


@pytest.mark.parametrize("recipe", ["debug", "reward", "reranker", "process", "reward-mixture"])
def test_fast_dev_run_runs_every_stage_of_each_recipe(recipe, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # the recipes' data paths are relative to the repository
    main([
        "fit", "--config", f"lightning_configs/{recipe}.yaml", "--trainer.fast_dev_run=true",
        "--model.model", "tiny", "--trainer.precision", "32-true",
        "--trainer.default_root_dir", str(tmp_path), "--export.dirpath", str(tmp_path / "model"),
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert "every stage ran on one batch (pairwise → pointwise)" in out
    # the fits after training say what they score, with the time left (they took minutes in silence)
    assert "final calibration: scoring" in out and "head posterior and novelty reference: scoring" in out
    assert not (tmp_path / "model").exists()


DECODER_OPTIONS = [
    "--model.lora", '{"r": 4}', "--model.gradient_checkpointing", "true",
    "--model.packing", '{"padding_free": true, "share_prefix": true}',
]  # fmt: skip


@pytest.mark.parametrize("recipe", ["reward-decoder", "reranker-decoder", "process"])
def test_fast_dev_run_of_each_decoder_recipe_on_a_local_decoder_folder(
    recipe, random_decoder, tmp_path, capsys, monkeypatch
):
    """The decoder recipes (LoRA, gradient checkpointing, padding-free prefix-shared batches) with
    --model.model a local folder, as a user without a hub gives one; the process recipe with the
    same options (each step read at its last token in a packed row)."""
    monkeypatch.chdir(REPO)
    main([
        "fit", "--config", f"lightning_configs/{recipe}.yaml", "--trainer.fast_dev_run=true",
        "--model.model", random_decoder("llama" if recipe == "process" else "qwen2"),
        *(DECODER_OPTIONS if recipe == "process" else []),
        "--trainer.precision", "32-true", "--trainer.accelerator", "cpu",
        "--trainer.default_root_dir", str(tmp_path), "--export.dirpath", str(tmp_path / "model"),
    ])  # fmt: skip
    assert "every stage ran on one batch (pairwise → pointwise)" in capsys.readouterr().out


def test_per_epoch_checkpoints_from_the_command_line(tmp_path, monkeypatch):
    """The recipe's checkpoint callback takes overrides on the command line, no second callback needed."""
    monkeypatch.chdir(REPO)
    main([
        "fit", "--config", "lightning_configs/debug.yaml", "--trainer.callbacks.init_args.save_top_k=-1",
        "--trainer.callbacks.init_args.every_n_epochs=1", "--model.schedule.pairwise_epochs=1",
        "--model.schedule.pointwise_epochs=1", "--trainer.logger=false",
        "--trainer.default_root_dir", str(tmp_path), "--export.dirpath", str(tmp_path / "model"),
    ])  # fmt: skip
    saved = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt"))
    assert saved == ["epoch=0-step=4.ckpt", "epoch=1-step=8.ckpt", "last.ckpt"]


class LastCheckpointProbe(Callback):
    """Records, at the start of each epoch after the first, what <root>/checkpoints/last.ckpt holds."""

    seen: list = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch > 0:
            last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
            stage = torch.load(last, weights_only=True)["unirank"]["stage"] if last.exists() else None
            LastCheckpointProbe.seen.append((trainer.current_epoch, stage))


def test_a_recipe_run_that_dies_after_its_first_epoch_has_a_checkpoint(tmp_path, monkeypatch):
    """last.ckpt is written at every epoch's end, not only once training has ended."""
    monkeypatch.chdir(REPO)
    LastCheckpointProbe.seen = []
    main([
        "fit", "--config", "lightning_configs/debug.yaml",
        "--trainer.callbacks+=tests.test_recipes.LastCheckpointProbe",
        "--model.schedule.pairwise_epochs=1", "--model.schedule.pointwise_epochs=1", "--trainer.logger=false",
        "--trainer.default_root_dir", str(tmp_path), "--export.dirpath", str(tmp_path / "model"),
    ])  # fmt: skip
    assert LastCheckpointProbe.seen == [(1, "pairwise")]


def test_every_recipe_checkpoints_the_same_way():
    def checkpointing(recipe: str) -> list:
        callbacks = yaml.safe_load((REPO / "lightning_configs" / f"{recipe}.yaml").read_text())["trainer"]["callbacks"]
        return [c for c in callbacks if c["class_path"].endswith("ModelCheckpoint")]

    recipes = ("reward", "reranker", "process", "reward-decoder", "reranker-decoder")
    assert all(checkpointing(r) == checkpointing("debug") for r in recipes)
