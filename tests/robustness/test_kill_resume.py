"""SIGKILL a debug fit in stage 1, during the Thurstone fit and in stage 2; resume from the last
checkpoint; the final weights and targets equal an uninterrupted run's."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import torch

CHILD = Path(__file__).with_name("train_child.py")


def run(repo, out, *flags):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, str(CHILD), str(repo), str(out), *flags], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    repo = Path(__file__).resolve().parents[2]
    out = tmp_path_factory.mktemp("straight")
    done = run(repo, out)
    assert done.returncode == 0, done.stderr[-2000:]
    return torch.load(out / "final.pt", weights_only=True)


@pytest.mark.parametrize(
    "kill_at",
    [
        pytest.param("stage1", marks=pytest.mark.slow),
        pytest.param("fit", marks=pytest.mark.slow),
        pytest.param("stage2", marks=pytest.mark.slow),
    ],
)
def test_sigkill_then_resume_matches_an_uninterrupted_run(repo, tmp_path, uninterrupted, kill_at):
    killed = run(repo, tmp_path, "--kill-at", kill_at)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "final.pt").exists() and (tmp_path / "checkpoints/last.ckpt").exists()
    resumed = run(repo, tmp_path, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = torch.load(tmp_path / "final.pt", weights_only=True)
    for name, value in uninterrupted["state_dict"].items():
        torch.testing.assert_close(final["state_dict"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert pl.DataFrame(final["targets"]).equals(pl.DataFrame(uninterrupted["targets"]))


@pytest.mark.slow  # about 40 s with its uninterrupted run; the default run keeps the CLI's SIGTERM test
def test_sigterm_mid_epoch_saves_where_it_stopped_exits_143_and_resumes_to_the_same_weights(
    repo, tmp_path, uninterrupted
):
    """A scheduler's SIGTERM in the middle of a stage-2 epoch: a checkpoint of that step, a non-zero
    exit that says so, the export lock freed; the resumed run trains the rest of that epoch (not the
    whole epoch again) and ends where an uninterrupted run does."""
    stopped = run(repo, tmp_path, "--term-at-stage2")
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert "stopped by SIGTERM in epoch 3 after 2 of its 4 batches" in stopped.stderr
    saved = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=False)
    assert saved["epoch"] == 3 and saved["UnirankDataModule"] == {"epoch": 3, "batches_done": 2}
    resumed = run(repo, tmp_path, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = torch.load(tmp_path / "final.pt", weights_only=True)
    for name, value in uninterrupted["state_dict"].items():
        torch.testing.assert_close(final["state_dict"][name], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow  # about 45 s; the default run resumes a SIGTERM'd run mid-epoch (above)
def test_a_lora_run_killed_in_stage_2_resumes_to_the_uninterrupted_weights(repo, random_decoder, tmp_path):
    """The checkpoint holds the adapters and the head only; the frozen backbone is reloaded from
    the base model, and the run ends where an uninterrupted one does."""
    flags = ("--model", random_decoder("qwen2"), "--lora")
    straight = run(repo, tmp_path / "straight", *flags)
    assert straight.returncode == 0, straight.stderr[-2000:]
    killed = run(repo, tmp_path / "killed", "--kill-at", "stage2", *flags)
    assert killed.returncode == -signal.SIGKILL
    saved = torch.load(tmp_path / "killed/checkpoints/last.ckpt", weights_only=True)
    assert all("lora_" in k or ".score." in k for k in saved["state_dict"])
    resumed = run(repo, tmp_path / "killed", "--resume", *flags)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = torch.load(tmp_path / "straight/final.pt", weights_only=True)
    final = torch.load(tmp_path / "killed/final.pt", weights_only=True)
    for name, value in expected["state_dict"].items():
        torch.testing.assert_close(final["state_dict"][name], value, rtol=1e-5, atol=1e-6, msg=name)
