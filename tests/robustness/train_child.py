"""A debug training run in its own process, for the kill/resume tests: it can SIGKILL itself in
stage 1, during the Thurstone fit, or in stage 2, or SIGTERM itself in the middle of a stage-2
epoch (exiting as `unirank fit` does), and it can resume from the last checkpoint.

    python train_child.py REPO OUT_DIR [--kill-at stage1|fit|stage2] [--term-at-stage2] [--resume]
        [--model FOLDER --lora]
On completion it saves the final state dict and targets to OUT_DIR/final.pt."""

import argparse
import os
import signal
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from unirank.adapters import ChatAdapter
from unirank.data.datamodule import UnirankDataModule
from unirank.domains.chat.source import Preferences
from unirank.module import LoRA, Packing, Schedule, UnirankModule
from unirank.training import interrupt


class KillAt(L.Callback):
    def __init__(self, epoch: int, batch: int, signum: int = signal.SIGKILL):
        self.epoch, self.batch, self.signum = epoch, batch, signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), self.signum)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("repo", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--kill-at", choices=["stage1", "fit", "stage2"])
    parser.add_argument("--term-at-stage2", action="store_true", help="SIGTERM at epoch 3, batch 1 (mid-epoch)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--model", default="tiny", help="a backbone (a local decoder folder with --lora)")
    parser.add_argument("--lora", action="store_true", help="LoRA r = 4 with padding-free, prefix-shared batches")
    args = parser.parse_args()
    decoder = {"lora": LoRA(r=4), "packing": Packing(padding_free=True, share_prefix=True)} if args.lora else {}
    module = UnirankModule(
        model=args.model,
        **decoder,
        adapter=ChatAdapter(max_length=64),
        schedule=Schedule(2, 2),
        lr=1e-3,
        head_lr=1e-3,
        warmup_ratio=0.0,
    )
    data = UnirankDataModule(
        Preferences(str(args.repo / "data/demo-preferences.jsonl"), validation_fraction=0.2), batch_groups=8
    )
    callbacks = [ModelCheckpoint(dirpath=args.out / "checkpoints", save_last=True, save_top_k=-1)]
    if args.kill_at == "stage1":
        callbacks.append(KillAt(epoch=1, batch=2))
    elif args.kill_at == "stage2":
        callbacks.append(KillAt(epoch=3, batch=1))
    if args.term_at_stage2:
        callbacks.append(KillAt(epoch=3, batch=1, signum=signal.SIGTERM))
    elif args.kill_at == "fit":
        from unirank.training import callbacks as targets  # where PointwiseTargets looks the fit up

        fit = targets.fit_stage_targets

        def fit_then_die(*args, **kwargs):
            fit(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)

        targets.fit_stage_targets = fit_then_die
    trainer = L.Trainer(
        max_epochs=4,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        default_root_dir=args.out,
    )
    last = args.out / "checkpoints" / "last.ckpt"
    try:
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if args.resume else None)
    except SIGTERMException:  # as unirank fit exits
        return interrupt.EXIT_CODE
    torch.save(
        {"state_dict": module.state_dict(), "targets": module.targets.to_dict(as_series=False)}, args.out / "final.pt"
    )


if __name__ == "__main__":
    sys.exit(main())
