"""Atomic outputs: write to a temporary sibling, then rename, so a killed write leaves the old file or none."""

from __future__ import annotations

import functools
import glob
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl


class OutputError(ValueError):
    """An output path unirank refuses to write (it holds what unirank did not write, or another run
    is writing it); the message names the path and what to do."""


@contextmanager
def atomic_path(path: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    With directory=True the temporary path is an empty folder (for exports of several files). Once
    it is complete it takes the old folder's place in one atomic exchange (Linux `renameat2`), so a
    reader sees the old set or the new one, never a mix and never nothing. Where the system has no
    exchange, the old folder is renamed aside first and marked as unirank's (`ASIDE_MARKER`): a run
    killed between the two renames leaves `.<name>.old`, which the next write (or `recover_folder`)
    puts back first. A `.<name>.old` without the marker is not unirank's: it is never moved or
    removed, and a folder write stops on it with an error that names it.
    On an exception the temporary file or folder is removed and `path` is untouched. Temporary
    names carry the writer's pid: what a killed writer left is removed by the next write (`remove_orphans`).
    """
    target = Path(path)
    remove_orphans(target)
    if not directory:
        check_output_file(target)
    else:
        recover_folder(target)
        old = target.with_name(f".{target.name}.old")
        if old.exists():
            raise OutputError(
                f"{old}: unirank keeps the old {target.name} aside under this name while it replaces it, and this "
                "one is not unirank's (no marker): move or rename it; nothing was written"
            )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{target}: cannot create its parent folder: {error.strerror or error}") from None
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_WRITER}.", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.{_WRITER}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        _with_umask(tmp)
        if not directory or not target.exists():
            os.replace(tmp, target)
        elif not _exchange(tmp, target):  # (after an exchange tmp holds the old set, removed below)
            old = target.with_name(f".{target.name}.old")
            target.rename(old)
            (old / ASIDE_MARKER).touch()
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()


_HOST = "".join(c for c in os.uname().nodename.split(".")[0] if c.isalnum()) or "host"
_WRITER = f"{os.getpid()}-{_HOST}"
"""Who writes a temporary file: pid and short host name (a folder other machines share has their pids too)."""


def remove_orphans(target: Path) -> list[Path]:
    """Remove the temporary files and folders of `target` (`.<name>.<pid>-<host>.*`) that a writer on
    this host left and that is no longer running (a killed run), saying so on stderr; returns what
    was removed."""
    removed = []
    prefix = f".{target.name}."
    for path in target.parent.glob(glob.escape(prefix) + "*") if target.parent.is_dir() else []:
        pid, _, host = path.name[len(prefix) :].split(".", 1)[0].partition("-")
        if host == _HOST and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        print(f"unirank: removed {len(removed)} temporary file(s) a killed run left beside {target} "
              f"({', '.join(p.name for p in removed[:3])})", file=sys.stderr)  # fmt: skip
    return removed


ASIDE_MARKER = ".unirank-aside"
"""The file that marks `.<name>.old` as the old set unirank moved aside (and may move back or remove)."""


def recover_folder(target: Path) -> None:
    """Put back `.<name>.old`, the old set of a folder swap killed between its two renames (only where
    the system has no atomic exchange), when the folder itself is missing; remove it where the swap
    had finished. Only a folder with unirank's marker is touched."""
    old = target.with_name(f".{target.name}.old")
    if not (old / ASIDE_MARKER).is_file():
        return
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
    else:
        (old / ASIDE_MARKER).unlink()
        old.rename(target)


_RENAME_EXCHANGE = 2


@functools.cache
def _renameat2():
    """The C library's renameat2, looked up once (finding the library runs ldconfig); None where the
    C library has none."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).renameat2
    except (OSError, AttributeError):
        return None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux `renameat2(..., RENAME_EXCHANGE)`); False
    where the C library, the kernel or the file system has no such call (nothing is changed then)."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    at_cwd = -100  # AT_FDCWD: paths relative to the working folder, as os.rename takes them
    return renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def check_output_file(path: str | os.PathLike) -> None:
    """Refuse a file output that cannot be written (a folder, under a file, under a folder that
    cannot be written) before any work is done for it, leaving nothing behind: a temporary file is
    created and removed in its nearest existing folder (permission bits say nothing for root)."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{target}: is a folder; give a file path")
    existing = next((parent for parent in target.parents if parent.exists()), Path("."))
    if not existing.is_dir():
        raise OutputError(f"{target}: cannot create its parent folder: {existing} is a file")
    try:
        check_writable(existing)
    except OutputError as error:
        raise OutputError(f"{target}: cannot create its parent folder: {error}") from None


def check_writable(folder: Path) -> None:
    """A temporary file created in `folder` and removed: `OutputError` naming the folder where that fails."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".unirank-check-"):
            pass
    except OSError as error:
        raise OutputError(f"{folder}: cannot write there ({error.strerror or error})") from None


def _with_umask(path: Path) -> None:
    """Give a finished temporary output the permissions a plain open() would have given it (mkstemp
    and mkdtemp make them 0600 / 0700): files 0666 and folders 0777, less the user's umask."""
    mask = os.umask(0)
    os.umask(mask)
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)


def write_parquet(frame: pl.DataFrame, path: str | os.PathLike) -> None:
    """Write `frame` to `path` atomically."""
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp)


def check_output_folder(path: str | os.PathLike, marker: str | tuple[str, ...], what: str, overwrite: bool) -> None:
    """Refuse to replace a folder unirank did not write. A missing or empty folder is fine; a folder
    holding `marker` (unirank's own output; one of them, given several) is replaced only with
    overwrite=True; any other non-empty folder, or a file, is never replaced."""
    target = Path(path)
    markers = (marker,) if isinstance(marker, str) else marker
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: is a file, not a folder for the {what}")
    if target.exists() and any(target.iterdir()):
        if not any((target / name).exists() for name in markers):
            raise OutputError(
                f"{target}: holds files that are not a {what} (no {' or '.join(markers)}); unirank never "
                "replaces such a folder: choose a new or empty folder"
            )
        if not overwrite:
            raise OutputError(f"{target}: holds a {what} already; pass --overwrite to replace it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{target}: cannot create its parent folder: {error.strerror or error}") from None
    check_writable(target.parent)


class FolderLock:
    """An exclusive lock on an output folder (`.<name>.lock` beside it, holding the owner's pid), so
    two runs never write one folder at once: the second is refused at its start. A lock whose owner
    process no longer exists (a killed run) is taken over."""

    def __init__(self, path: str | os.PathLike):
        target = Path(path)
        self.path = target.parent / f".{target.name}.lock"
        self.held = False

    def acquire(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and not self.path.is_file():
            raise OutputError(f"{self.path}: the lock path is not a file (a folder?); remove it to write here")
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                being_written = owner is None and _age_s(self.path) < 10  # created, pid not written yet
                if being_written or (owner is not None and owner != os.getpid() and _alive(owner)):
                    raise OutputError(
                        f"{self.path.parent / self.path.name[1:-5]}: another unirank run (pid {owner or '?'}) is "
                        f"writing this folder; wait for it or choose another (lock: {self.path})"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its owner is gone
                print(
                    f"unirank: took over {self.path}, left by a run that is gone (pid {owner or '?'})", file=sys.stderr
                )
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(str(os.getpid()))
            self.held = True
            return self
        raise OutputError(f"{self.path}: could not take the lock")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or "0") or None
        except (OSError, ValueError):
            return None


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
