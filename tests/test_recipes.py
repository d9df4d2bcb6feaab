"""Every recipe runs under Lightning's fast_dev_run: one batch through every stage of its schedule
(the Thurstone fit included), the final calibration and the head posterior, and exports nothing."""

import pytest

from unirank.cli import main

from .conftest import REPO


@pytest.mark.parametrize("recipe", ["debug", "reward", "reranker", "process"])
def test_fast_dev_run_runs_every_stage_of_each_recipe(recipe, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # the recipes' data paths are relative to the repository
    main([
        "fit", "--config", f"lightning_configs/{recipe}.yaml", "--trainer.fast_dev_run=true",
        "--model.model", "tiny", "--trainer.precision", "32-true",
        "--trainer.default_root_dir", str(tmp_path), "--export.dirpath", str(tmp_path / "model"),
    ])  # fmt: skip
    assert "every stage ran on one batch (pairwise → pointwise)" in capsys.readouterr().out
    assert not (tmp_path / "model").exists()


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
