"""Outputs are checked before any work by writing there (permission bits say nothing for root), a
lock path that is not a file is refused, and a folder swap killed halfway never loses the folder."""

import json
import os
from pathlib import Path

import pytest

from unirank.atomic import ASIDE_MARKER, FolderLock, OutputError, atomic_path
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
    (tmp_path / ".mined.old" / ASIDE_MARKER).touch()  # ... marked as unirank's right after the first
    with pytest.raises(RuntimeError):
        with atomic_path(target, directory=True):
            raise RuntimeError("the next run fails too")
    assert (target / "groups.parquet").read_text() == "old set"  # put back before anything else
    assert not (tmp_path / ".mined.old").exists()


@pytest.mark.parametrize("target_exists", [False, True])
def test_a_users_folder_named_like_the_aside_copy_is_never_taken(tmp_path, monkeypatch, target_exists):
    """A user's `.mined.old` beside the output: neither put in place nor removed (it was moved into
    place, then deleted by the swap); the write stops naming it."""
    from unirank import atomic

    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)  # the two-rename path, where .old is used
    target, theirs = tmp_path / "mined", tmp_path / ".mined.old"
    if target_exists:
        with atomic_path(target, directory=True) as tmp:
            (tmp / "groups.parquet").write_text("unirank's")
    theirs.mkdir()
    (theirs / "thesis.txt").write_text("a year of work")
    with pytest.raises(OutputError, match=r"\.mined\.old: .*not unirank's .*nothing was written"):
        with atomic_path(target, directory=True) as tmp:
            (tmp / "groups.parquet").write_text("new")
    assert (theirs / "thesis.txt").read_text() == "a year of work"
    assert target.exists() == target_exists and not any(p.name.startswith(".mined.") and p != theirs
                                                        for p in tmp_path.iterdir())  # fmt: skip


def test_the_two_rename_swap_marks_its_aside_copy_and_removes_it(tmp_path, monkeypatch):
    from unirank import atomic

    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    renames = []
    rename = Path.rename

    def noted(self, other):  # each rename, and whether the aside copy is marked at that moment
        renames.append((self.name, Path(other).name, (tmp_path / ".mined.old" / ASIDE_MARKER).exists()))
        return rename(self, other)

    monkeypatch.setattr(Path, "rename", noted)
    target = tmp_path / "mined"
    for text in ("old", "new"):
        with atomic_path(target, directory=True) as tmp:
            (tmp / "groups.parquet").write_text(text)
    assert (target / "groups.parquet").read_text() == "new" and not (tmp_path / ".mined.old").exists()
    new_in_place = [marked for source, name, marked in renames if name == "mined" and source != ".mined.old"]
    assert ("mined", ".mined.old", False) in renames and new_in_place[-1]  # marked before the new set lands
    assert not (target / ASIDE_MARKER).exists()


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


def test_evaluate_refuses_a_report_folder_it_did_not_write(repo, tmp_path):
    """It wrote summary.txt and metrics.json over a user's own files; an earlier report is replaced."""
    theirs = tmp_path / "notes"
    theirs.mkdir()
    (theirs / "summary.txt").write_text("my own summary")
    words = ["evaluate", "--model", str(tmp_path / "no-model"), "--preferences",
             str(repo / "data/demo-preferences.jsonl"), "--out"]  # fmt: skip
    with pytest.raises(SystemExit, match=r"notes: holds files that are not a unirank evaluation report"):
        main([*words, str(theirs)])
    assert (theirs / "summary.txt").read_text() == "my own summary" and len(list(theirs.iterdir())) == 1


def test_what_a_killed_writer_left_is_removed_by_the_next_write(tmp_path, capsys):
    """Hidden half-written folders of a dead process were never removed; a live writer's are kept."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    from unirank.atomic import _HOST

    dead_pid, live_pid = int(dead.stdout), os.getppid()
    orphan, live = tmp_path / f".model.{dead_pid}-{_HOST}.abc", tmp_path / f".model.{live_pid}-{_HOST}.xyz"
    elsewhere = tmp_path / f".model.{dead_pid}-anotherhost.abc"  # that host's pid says nothing here
    for folder in (orphan, live, elsewhere):
        folder.mkdir()
    (orphan / "model.safetensors").write_text("half")
    (tmp_path / f".model.{dead_pid}-{_HOST}.q1.tmp").write_text("half a file")
    with atomic_path(tmp_path / "model", directory=True) as tmp:
        (tmp / "unirank.json").write_text("{}")
    assert not orphan.exists() and live.is_dir() and elsewhere.is_dir()
    assert not (tmp_path / f".model.{dead_pid}-{_HOST}.q1.tmp").exists()
    assert "removed 2 temporary file(s) a killed run left" in capsys.readouterr().err


def test_a_lock_left_by_a_killed_run_is_taken_over_and_said(tmp_path, capsys):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / ".model.lock").write_text(dead.stdout.strip())
    lock = FolderLock(tmp_path / "model").acquire()
    assert lock.held and f"left by a run that is gone (pid {dead.stdout.strip()})" in capsys.readouterr().err
    lock.release()
