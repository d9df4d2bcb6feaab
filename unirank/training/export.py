"""Checkpoint → export: the model folder (`unirank.model.folder`) written from a trained module,
with what training recorded about it in unirank.json; LoRA adapters merged first (and saved
alone where asked), a sharded model gathered on rank 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch

import unirank
from unirank.atomic import FolderLock, check_output_folder
from unirank.model.backbone import ModelFolderError, RemoteCodeError
from unirank.model.folder import adapter_from_spec
from unirank.model.lora import LoRA, adapter_writer, has_adapters
from unirank.model.model import Model
from unirank.model.packing import Packing
from unirank.module import Calibration, Schedule, UnirankModule
from unirank.training.sharding import full_state_dict, is_sharded


def record(module: UnirankModule, validation: dict | None = None, precision: str | None = None) -> dict:
    """unirank.json's record of a trained module: domain, input format, schedule, calibration,
    base model, head, LoRA; validation: metrics measured on the validation split; precision: the
    trainer's (e.g. "bf16-mixed"), which `unirank evaluate` and `score` default to; a module loaded
    from a checkpoint knows the precision it was trained in (every export of one run records it)."""
    config = module.config()
    stage = "pointwise" if module.targets is not None else "pairwise"
    final = module.scorer.final_calibration
    folded = bool(final) and final.get("applied", True)
    return {
        "unirank_version": unirank.__version__,
        "domain": module.adapter.domain,
        "input": module.adapter.describe(),
        "schedule": config["schedule"],
        "calibration": {
            **config["calibration"],
            "trained_through": stage,
            "pairwise_reading": module.pairwise_reading if stage == "pointwise" else "bradley-terry",
            "probability": "sigmoid(logit)"
            + (": calibrated against the Thurstone targets" if stage == "pointwise" else ": stage 1")
            + ("; final calibration folded into the head" if folded else ""),
            "final_fit": final,
        },
        "base_model": config["model"],
        "head": module.head,
        "lora": None if config["lora"] is None else {**config["lora"], "merged": True,
                                                      "adapter": "adapter" if module.lora.save_adapter else None},
        "adapter": config["adapter"],
        "trust_remote_code": module.trust_remote_code,
        "validation": validation or {},
        "trained_precision": precision or module.trained_precision,
    }  # fmt: skip


def export_model(
    module: UnirankModule,
    out_dir: str | Path,
    validation: dict | None = None,
    overwrite: bool = True,
    precision: str | None = None,
) -> Path:
    """Write the module's export folder atomically (`Model.save_pretrained`, which merges LoRA
    adapters into the module's model in place: a plain model from here on); with
    `lora.save_adapter`, the adapter is also written alone in `adapter/`, taken before the merge."""
    model = module.scorer.model
    info = record(module, validation, precision)
    extra = None
    if has_adapters(model) and module.lora.save_adapter:
        write_adapter = adapter_writer(model, module.lora, module.lora_targets, info["base_model"])
        extra = lambda folder: write_adapter(folder / "adapter")  # noqa: E731
    return Model(module.scorer, info=info, source=info["base_model"]).save_pretrained(out_dir, overwrite, extra)


def load_checkpoint(path: str | Path, trust_remote_code: bool = False) -> UnirankModule:
    """Rebuild a UnirankModule from a checkpoint (loaded weights-only: no pickled code runs). A
    checkpoint whose backbone was trained with trust_remote_code=True loads only when the caller
    passes trust_remote_code=True too: the checkpoint alone never turns remote code on."""
    if not Path(path).is_file():
        raise ModelFolderError(f"{path}: no such model folder or checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a truncated zip, a pickle the safe loader refuses: the input's fault
        raise ModelFolderError(f"{path}: not a loadable checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(checkpoint, dict) or "unirank" not in checkpoint:
        raise ModelFolderError(f"{path}: not a unirank checkpoint (no 'unirank' entry)")
    config = json.loads(checkpoint["unirank"]["config"])
    if config.get("trust_remote_code") and not trust_remote_code:
        raise RemoteCodeError(
            f"{path}: its backbone {config['model']!r} runs its own code (trained with trust_remote_code=True); "
            "load it with trust_remote_code=True (--trust-remote-code) only if you trust that code"
        )
    removed = {("schedule", "distill_epochs"): 0, ("calibration", "prior_fusion"): False, ("", "distill_weight"): 0.0}
    for (block, key), off in removed.items():  # settings of 0.1 whose experiments left the package in 0.2
        value = (config.get(block) or {}).pop(key, off) if block else config.get(key, off)
        if value != off:
            raise ModelFolderError(
                f"{path}: trained with {'.'.join(filter(None, (block, key)))}={value}, removed in 0.2"
            )
    module = UnirankModule(
        model=config["model"],
        adapter=adapter_from_spec(config["adapter"], path),
        schedule=Schedule(**config["schedule"]),
        calibration=Calibration(**config["calibration"]),
        chunk_size=config["chunk_size"],
        ranking_weight=config.get("ranking_weight", 0.0),
        dropout=config.get("dropout"),
        seed=config["seed"],
        trust_remote_code=bool(config.get("trust_remote_code", False)),
        packing=Packing(**config.get("packing", {})),
        lora=LoRA(**config["lora"]) if config.get("lora") else None,
        gradient_checkpointing=bool(config.get("gradient_checkpointing", False)),
        head=config.get("head", "scalar"),
    )
    missing, unexpected = module.load_state_dict(checkpoint["state_dict"], strict=module.lora is None)
    trained = {"scorer." + n for n, p in module.scorer.named_parameters() if p.requires_grad}
    lacking = sorted(trained & set(missing))
    if unexpected or lacking:
        raise ValueError(
            f"{path}: the checkpoint's weights do not fit its model: missing {lacking[:3]}, unexpected {unexpected[:3]}"
        )
    module.on_load_checkpoint(checkpoint)
    return module


def export_checkpoint(
    checkpoint: str | Path, out_dir: str | Path, overwrite: bool = False, trust_remote_code: bool = False
) -> Path:
    """`unirank export CKPT OUT_DIR [--overwrite] [--trust-remote-code]`: the folder is checked and
    locked before the checkpoint is read."""
    from unirank.training.interrupt import sigterm_after

    check_output_folder(out_dir, "unirank.json", "unirank export", overwrite)
    lock = FolderLock(out_dir).acquire()
    try:
        module = load_checkpoint(checkpoint, trust_remote_code)
        with sigterm_after(f"the export to {out_dir}"):
            return export_model(module, out_dir, overwrite=overwrite)
    finally:
        lock.release()


class ExportModel(L.Callback):
    """Print the validation summary and export the model when fit ends.

    The export folder is checked and locked when fit starts, so a folder that cannot be written,
    holds what unirank did not write, or is being written by another run stops the run before it trains.

    Args:
        dirpath: the export folder; default `<log dir>/model`.
        overwrite: replace an earlier unirank export in that folder (never anything else).
    """

    def __init__(self, dirpath: str | None = None, overwrite: bool = True):
        self.dirpath, self.overwrite = dirpath, overwrite
        self._lock: FolderLock | None = None

    def _out(self, trainer: L.Trainer) -> Path:
        return Path(self.dirpath or Path(trainer.log_dir or ".") / "model")

    def setup(self, trainer: L.Trainer, pl_module: UnirankModule, stage: str) -> None:
        if stage != "fit" or not trainer.is_global_zero or trainer.fast_dev_run:
            return
        out = self._out(trainer)
        check_output_folder(out, "unirank.json", "unirank export", self.overwrite)
        self._lock = FolderLock(out).acquire()

    def teardown(self, trainer: L.Trainer, pl_module: UnirankModule, stage: str) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def on_exception(self, trainer: L.Trainer, pl_module: UnirankModule, exception: BaseException) -> None:
        """A run that stops on an exception (SIGTERM included) exports nothing and frees the folder:
        Lightning calls no teardown hook then."""
        self.teardown(trainer, pl_module, "fit")

    def on_fit_end(self, trainer: L.Trainer, pl_module: UnirankModule) -> None:
        if is_sharded(trainer) and not trainer.fast_dev_run:  # every rank gathers the weights; rank 0 writes
            state = full_state_dict(pl_module.scorer.model)
            if trainer.is_global_zero:
                pl_module.scorer.model = pl_module.unsharded_model(state)
        self._export(trainer, pl_module)

    def _export(self, trainer: L.Trainer, pl_module: UnirankModule) -> None:
        if not trainer.is_global_zero:
            return
        if trainer.fast_dev_run:  # a smoke run of one batch: never replaces a real export
            stages = " → ".join(pl_module.schedule.stages)
            print(f"fast_dev_run: every stage ran on one batch ({stages}); nothing exported")
            return
        out = self._out(trainer)
        metrics = {
            k.removeprefix("val/"): round(float(v), 4)
            for k, v in trainer.callback_metrics.items()
            if k.startswith("val/")
        }
        from unirank.training.interrupt import sigterm_after

        try:
            with sigterm_after(f"the export to {out}"):
                export_model(
                    pl_module, out, validation=metrics, overwrite=self.overwrite, precision=str(trainer.precision)
                )
        finally:
            self.teardown(trainer, pl_module, "fit")  # the lock is freed whatever stops the run here
        schedule = pl_module.schedule
        stages = [f"{name} {getattr(schedule, f'{name}_epochs')}" for name in schedule.stages]
        final = pl_module.scorer.final_calibration
        if final and final.get("applied", True):
            stages.append("final calibration")
        elif final:
            stages.append(f"final calibration not applied ({final['reason']})")
        print("\nvalidation split, after " + " → ".join(stages))
        for name, value in sorted(metrics.items()):
            if final and name in ("ece", "brier"):
                continue  # measured before the final calibration: its own lines follow
            print(f"  {name:22s} {value:.4f}")
        if final:
            after, before = final["after"], final["before"]
            low, high = after.get("ece_interval", [float("nan")] * 2)
            print(f"  {'ece':22s} {after['ece']:.4f} [{low:.4f}, {high:.4f}] over {after['n']} "
                  f"({after.get('groups', '?')} groups; {before['ece']:.4f} before the final calibration)")  # fmt: skip
            held_out = final.get("held_out")
            if held_out:
                print(f"  {'ece held out':22s} {held_out['after']['ece']:.4f} ({held_out['before']['ece']:.4f} before; "
                      f"each of {held_out['folds']} folds calibrated by a fit on the others)")  # fmt: skip
            print(f"  {'brier':22s} {after['brier']:.4f} ({before['brier']:.4f} before)")
        print(f"exported the model to {out}  (loads in transformers and sentence-transformers.CrossEncoder)")
