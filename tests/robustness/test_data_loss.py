"""Nothing lost and nothing run unasked: exports and mined folders never replace what unirank did not
write, two runs never write one folder, a killed mining run leaves the old set whole, the mining
cache follows the data's content, and checkpoints never bring in code or settings."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import polars as pl
import pytest
import torch

from unirank.atomic import FolderLock, OutputError
from unirank.cli import main
from unirank.domains.retrieval.source import MinedBeir
from unirank.mining import pipeline
from unirank.mining.pipeline import MiningConfig


def debug_fit(repo, tmp_path, *extra):
    main(
        ["fit", "--config", str(repo / "lightning_configs/debug.yaml"), f"--trainer.default_root_dir={tmp_path}",
         "--trainer.logger=false", "--model.schedule.pairwise_epochs=1", "--model.schedule.pointwise_epochs=0",
         *extra]
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A debug fit: its last checkpoint and its export."""
    out = tmp_path_factory.mktemp("trained")
    debug_fit(Path(__file__).resolve().parents[2], out, f"--export.dirpath={out / 'model'}")
    return out / "checkpoints" / "last.ckpt", out / "model"


def user_folder(path):
    path.mkdir(parents=True)
    (path / "thesis.tex").write_text("years of work")
    return path


def test_export_never_replaces_a_folder_unirank_did_not_write(trained, tmp_path):
    checkpoint, _ = trained
    mine = user_folder(tmp_path / "mine")
    for overwrite in ([], ["--overwrite"]):
        with pytest.raises(SystemExit, match=r"mine: holds files that are not a unirank export"):
            main(["export", str(checkpoint), str(mine), *overwrite])
    assert (mine / "thesis.tex").read_text() == "years of work"


def test_export_replaces_an_earlier_export_only_when_asked(trained, tmp_path):
    checkpoint, _ = trained
    main(["export", str(checkpoint), str(tmp_path / "model")])
    with pytest.raises(SystemExit, match=r"holds a unirank export already; pass --overwrite"):
        main(["export", str(checkpoint), str(tmp_path / "model")])
    main(["export", str(checkpoint), str(tmp_path / "model"), "--overwrite"])
    assert (tmp_path / "model/unirank.json").exists()


def test_fit_refuses_a_foreign_export_folder_before_training(repo, tmp_path):
    mine = user_folder(tmp_path / "runs")
    with pytest.raises(SystemExit, match=r"holds files that are not a unirank export"):
        debug_fit(repo, tmp_path / "root", f"--export.dirpath={mine}")
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    assert not (tmp_path / "root").exists()  # nothing trained, no checkpoint written


def test_an_export_path_under_a_file_is_refused_before_training(repo, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit, match=r"cannot create its parent folder"):
        debug_fit(repo, tmp_path / "root", f"--export.dirpath={tmp_path / 'file' / 'model'}")


def test_two_runs_never_write_one_folder(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock = FolderLock(tmp_path / "model")
        lock.path.write_text(str(sleeper.pid))  # another live run holds the folder
        with pytest.raises(OutputError, match=rf"another unirank run \(pid {sleeper.pid}\) is writing"):
            FolderLock(tmp_path / "model").acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    taken = FolderLock(tmp_path / "model").acquire()  # its owner is gone: a stale lock is taken over
    assert taken.held and lock.path.read_text() == str(os.getpid())
    taken.release()
    assert not lock.path.exists()


def test_a_killed_mining_write_leaves_the_old_set_whole(repo, tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    main(["mine", "--beir", str(repo / "data/demo-beir"), "--mining.k", "5", "--mining.negatives", "2",
          "--mining.cache_dir", cache,
          "--out", str(tmp_path / "mined")])  # fmt: skip
    before = {p.name: p.read_bytes() for p in (tmp_path / "mined").iterdir()}

    def dies_after_items(self, directory):
        pl.DataFrame({"x": [1]}).write_parquet(f"{directory}/items.parquet")
        raise KeyboardInterrupt  # killed between two tables

    monkeypatch.setattr(pipeline.Tables, "write", dies_after_items)
    with pytest.raises(KeyboardInterrupt):
        main(["mine", "--beir", str(repo / "data/demo-beir"), "--mining.k", "7", "--mining.negatives", "3",
              "--mining.cache_dir", cache,
              "--out", str(tmp_path / "mined")])  # fmt: skip
    assert {p.name: p.read_bytes() for p in (tmp_path / "mined").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".mined")) == []  # no leftovers


def test_mine_refuses_a_folder_that_is_not_a_mined_folder(repo, tmp_path):
    mine = user_folder(tmp_path / "out")
    with pytest.raises(SystemExit, match=r"out: holds files that are not a mined folder"):
        main(["mine", "--beir", str(repo / "data/demo-beir"), "--out", str(mine)])
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]


def test_the_mining_cache_follows_the_data_content(repo, tmp_path):
    beir = tmp_path / "beir"
    shutil.copytree(repo / "data/demo-beir", beir)
    source = MinedBeir(str(beir), mining=MiningConfig(k=5, negatives=2, cache_dir=str(tmp_path / "cache")))
    first = source.load()
    qrels = beir / "qrels" / "train.tsv"
    lines = qrels.read_text().splitlines()
    qrels.write_text("\n".join(lines[:-1]) + "\n")  # one judgment fewer
    second = source.load()
    assert second.items.filter(pl.col("label") > 0).height == first.items.filter(pl.col("label") > 0).height - 1
    assert len(list((tmp_path / "cache" / "mined").iterdir())) == 2


def test_a_remote_checkpoint_is_refused(repo, tmp_path):
    with pytest.raises(SystemExit, match=r"remote checkpoints are refused"):
        debug_fit(repo, tmp_path, "--ckpt_path=http://example.invalid/model.ckpt")


def test_a_checkpoint_cannot_turn_on_trust_remote_code(repo, tmp_path, trained, capsys):
    checkpoint, _ = trained
    state = torch.load(checkpoint, weights_only=True)
    state["hyper_parameters"] = {"trust_remote_code": True, "model": str(tmp_path / "evil")}
    crafted = tmp_path / "crafted.ckpt"
    torch.save(state, crafted)
    debug_fit(repo, tmp_path / "run", f"--ckpt_path={crafted}", f"--export.dirpath={tmp_path / 'model'}")
    assert "records other settings (model, trust_remote_code); they are not applied" in capsys.readouterr().out
    info = json.loads((tmp_path / "model/unirank.json").read_text())
    assert info["base_model"] == "tiny"


def test_a_fit_export_records_the_precision_it_trained_in(trained):
    _, model = trained
    assert json.loads((model / "unirank.json").read_text())["trained_precision"] == "32-true"


class SigtermAtSecondBatch(L.Callback):
    """What Lightning's SIGTERM handler does (it sets the flag the loops read), at the second batch."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 1:
            trainer._signal_connector.received_sigterm = True


def test_fit_stopped_by_sigterm_exits_143_with_a_checkpoint_and_frees_the_export_folder(repo, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        debug_fit(repo, tmp_path, f"--export.dirpath={tmp_path / 'model'}",
                  "--trainer.callbacks+=tests.robustness.test_data_loss.SigtermAtSecondBatch")  # fmt: skip
    assert stopped.value.code == 143
    assert "stopped by SIGTERM in epoch 0 after 2 of its" in capsys.readouterr().err
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "model").exists() and not (tmp_path / ".model.lock").exists()


def test_a_checkpoint_resumed_into_another_domains_recipe_is_refused(repo, tmp_path, trained):
    checkpoint, _ = trained
    with pytest.raises(SystemExit, match=r"trained with ChatAdapter \(domain chat\); this recipe's adapter is "
                                         r"ProcessAdapter: resume with the recipe it was trained with"):  # fmt: skip
        debug_fit(repo, tmp_path, f"--ckpt_path={checkpoint}", "--model.adapter=unirank.adapters.ProcessAdapter")


def test_an_export_of_a_checkpoint_records_the_precision_it_trained_in(trained, tmp_path):
    """Two exports of one run (the fit's, and one of its last.ckpt) are scored in one precision."""
    checkpoint, _ = trained
    main(["export", str(checkpoint), str(tmp_path / "again")])
    assert json.loads((tmp_path / "again" / "unirank.json").read_text())["trained_precision"] == "32-true"
