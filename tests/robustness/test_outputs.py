"""Outputs are checked before any work by writing there (permission bits say nothing for root), a
lock path that is not a file is refused, and a folder swap killed halfway never loses the folder."""

import json

import pytest

from unirank.atomic import FolderLock, OutputError, atomic_path
from unirank.cli import main

UNWRITABLE = "/proc/unirank-cannot-write-here"


@pytest.mark.parametrize(
    "words",
    [
        ["score", "--input", "{rows}", "--out", UNWRITABLE + "/scored.jsonl"],
        ["evaluate", "--preferences", "{rows}", "--out", UNWRITABLE + "/report"],
        ["evaluate", "--preferences", "{rows}", "--out", "{rows}"],
    ],
    ids=["score under /proc", "evaluate under /proc", "evaluate onto a file"],
)
def test_an_output_that_cannot_be_written_is_refused_before_the_model_is_loaded(tmp_path, words):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"context": "q", "candidate": "d"}) + "\n")
    argv = [w.format(rows=rows) for w in words] + ["--model", str(tmp_path / "no-such-model")]
    with pytest.raises(SystemExit, match=r"cannot create its parent folder|is a file, not a folder"):
        main(argv)  # a missing model would fail later: the output is checked first


def test_a_lock_path_that_is_a_folder_is_refused_clearly(tmp_path):
    (tmp_path / ".model.lock").mkdir()
    with pytest.raises(OutputError, match=r"\.model\.lock: the lock path is not a file"):
        FolderLock(tmp_path / "model").acquire()


def test_a_folder_swap_killed_between_its_renames_is_put_back_by_the_next_write(tmp_path):
    target = tmp_path / "mined"
    with atomic_path(target, directory=True) as tmp:
        (tmp / "groups.parquet").write_text("old set")
    target.rename(tmp_path / ".mined.old")  # the state a kill between the two renames leaves
    with pytest.raises(RuntimeError):
        with atomic_path(target, directory=True):
            raise RuntimeError("the next run fails too")
    assert (target / "groups.parquet").read_text() == "old set"  # put back before anything else
    assert not (tmp_path / ".mined.old").exists()


def test_a_folder_swap_is_one_atomic_exchange_where_the_system_has_one(tmp_path, monkeypatch):
    """No moment without the folder: the new set takes the old one's place in one renameat2 exchange
    (no rename aside that a kill could interrupt)."""
    import pathlib

    from unirank import atomic

    probe_a, probe_b = tmp_path / "a", tmp_path / "b"
    probe_a.mkdir(), probe_b.mkdir()
    if not atomic._exchange(probe_a, probe_b):
        pytest.skip("this system has no atomic exchange; the two-rename path is tested above")
    target = tmp_path / "mined"
    with atomic_path(target, directory=True) as tmp:
        (tmp / "groups.parquet").write_text("old set")

    def no_rename(self, other):
        raise AssertionError(f"renamed {self} aside")

    monkeypatch.setattr(pathlib.Path, "rename", no_rename)
    with atomic_path(target, directory=True) as tmp:
        (tmp / "groups.parquet").write_text("new set")
    assert (target / "groups.parquet").read_text() == "new set"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "mined"]
