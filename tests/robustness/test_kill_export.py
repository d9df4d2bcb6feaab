"""A signal during the export's folder write: SIGTERM lets the write finish, frees the lock and
exits 143 with a sentence; after SIGKILL (nothing can be finished) the next run removes the hidden
half-written folder and takes over the lock. Either way: the old model or the new, never a mix."""

import os
import subprocess
import sys

import pytest

from unirank.model import Model

from ..conftest import REPO

CHILD = """
import os, signal, sys
from unirank.model import folder
from unirank.cli import main

save_tokenizer = folder._save_tokenizer
def signal_halfway(*args, **kwargs):  # the weights are written; the tokenizer and unirank.json are not
    if sys.argv[1] != "none":
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    return save_tokenizer(*args, **kwargs)
folder._save_tokenizer = signal_halfway
main(["fit", "--config", "lightning_configs/debug.yaml", "--trainer.limit_train_batches", "1",
      "--trainer.default_root_dir", sys.argv[2], "--export.dirpath", sys.argv[2] + "/model"])
"""


def fit(tmp_path, signal_name: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-c", CHILD, signal_name, str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def leftovers(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".model"))


def test_sigterm_during_the_export_finishes_it_frees_the_lock_and_exits_143(tmp_path):
    run = fit(tmp_path, "SIGTERM")
    assert run.returncode == 143, run.stderr[-2000:]
    assert "SIGTERM during the export to" in run.stderr and "it was finished first" in run.stderr
    assert leftovers(tmp_path) == [] and Model.from_pretrained(tmp_path / "model").predict([("q", "d")]).shape == (1,)


@pytest.mark.slow
def test_sigkill_during_the_export_is_cleaned_up_by_the_next_run(tmp_path):
    killed = fit(tmp_path, "SIGKILL")
    assert killed.returncode == -9 and not (tmp_path / "model").exists()
    assert ".model.lock" in leftovers(tmp_path) and len(leftovers(tmp_path)) == 2  # the lock and the half folder
    again = fit(tmp_path, "none")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "removed 1 temporary file(s) a killed run left" in again.stderr and "took over" in again.stderr
    assert leftovers(tmp_path) == [] and (tmp_path / "model" / "unirank.json").exists()
