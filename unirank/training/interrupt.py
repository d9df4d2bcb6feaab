"""SIGTERM during `fit` (a scheduler preempting the job: SLURM and Kubernetes send SIGTERM first):
Lightning stops after the step in progress; this callback then saves a checkpoint of where the run
stopped (`last.ckpt` beside the run's other checkpoints, so `--ckpt_path` resumes it mid-epoch to
the same weights as an uninterrupted run) and says so; `unirank fit` exits with 143 (128 + SIGTERM),
never 0, so the scheduler records that the job did not finish."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

EXIT_CODE = 128 + 15
"""The exit status of a fit stopped by SIGTERM: what a shell reports for a process SIGTERM ended."""


def interrupted_checkpoint_path(trainer: L.Trainer) -> Path:
    """Where the checkpoint of a stopped run goes: the run's ModelCheckpoint folder (its `last`
    name), else `<default_root_dir>/checkpoints/last.ckpt`."""
    callback = trainer.checkpoint_callback
    name = ModelCheckpoint.CHECKPOINT_NAME_LAST + ModelCheckpoint.FILE_EXTENSION
    if isinstance(callback, ModelCheckpoint) and callback.dirpath:
        return Path(callback.dirpath) / name
    return Path(trainer.default_root_dir) / "checkpoints" / name


class CheckpointOnSigterm(L.Callback):
    """On SIGTERM during fit: save a resumable checkpoint (every rank takes part, as a sharded
    save needs them all) and print where it is and how to resume."""

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or not trainer.training:
            return
        path = interrupted_checkpoint_path(trainer)
        path.parent.mkdir(parents=True, exist_ok=True)  # (a folder removed while the run went on)
        trainer.save_checkpoint(path)
        if trainer.is_global_zero:
            done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
            print(
                f"\nunirank fit: stopped by SIGTERM in epoch {trainer.current_epoch} after {done} of its "
                f"{trainer.num_training_batches} batches (step {trainer.global_step}); nothing was exported.\n"
                f"  checkpoint of where it stopped: {path}\n"
                f"  resume: the same command with --ckpt_path {path}",
                file=sys.stderr,
                flush=True,
            )


@contextlib.contextmanager
def sigterm_after(what: str):
    """Within the block a SIGTERM waits: the block (a folder write) finishes, then the process says
    so and exits with EXIT_CODE (its `finally` blocks, a lock's release among them, still run). A
    write stopped halfway would leave a hidden half-written folder and a stale lock."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
    if received:
        print(f"unirank: SIGTERM during {what}: it was finished first; stopping now", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_CODE)
