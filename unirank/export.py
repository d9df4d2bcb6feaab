"""Export a trained scorer as a folder that loads in transformers and sentence-transformers.

The folder holds the model (safetensors), its tokenizer (model_max_length = the adapter's
max_length), a config whose `sentence_transformers.activation_fn` is Sigmoid, so
`CrossEncoder(folder).predict(pairs)` returns σ(r), the calibrated probability, and `unirank.json`
describing the domain, input format, schedule and calibration.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch

import unirank
from unirank import adapters
from unirank.atomic import atomic_path
from unirank.module import Calibration, Schedule, UnirankModule

SIGMOID = "torch.nn.modules.activation.Sigmoid"


def export_model(
    module: UnirankModule, out_dir: str | Path, stage: str | None = None, validation: dict | None = None
) -> Path:
    """Write the export folder atomically (a killed export leaves the old folder or none).

    validation: metrics measured on the validation split, recorded in unirank.json."""
    out_dir = Path(out_dir)
    config = module.config()
    stage = stage or ("pointwise" if module.targets is not None else "pairwise")
    with atomic_path(out_dir, directory=True) as tmp:
        model = module.scorer.model
        model.config.sentence_transformers = {"activation_fn": SIGMOID}
        model.save_pretrained(tmp, safe_serialization=True)
        module.tokenizer.model_max_length = module.adapter.max_length
        module.tokenizer.save_pretrained(tmp)
        info = {
            "unirank_version": unirank.__version__,
            "domain": module.adapter.domain,
            "input": module.adapter.describe(),
            "schedule": config["schedule"],
            "calibration": {
                **config["calibration"],
                "trained_through": stage,
                "probability": "sigmoid(logit)"
                + (
                    ": calibrated against the Thurstone targets"
                    if stage == "pointwise"
                    else ": stage 1 only, uncalibrated"
                ),
            },
            "base_model": config["model"],
            "adapter": config["adapter"],
            "validation": validation or {},
        }
        (tmp / "unirank.json").write_text(json.dumps(info, indent=2) + "\n")
    return out_dir


def adapter_from_spec(spec: dict, source: str | Path) -> adapters.Adapter:
    """Rebuild an adapter from {"class", "init_args"} (as `UnirankModule.config()` records it);
    only the adapters of `unirank.adapters` are accepted."""
    adapter_class = getattr(adapters, spec["class"], None)
    if not (isinstance(adapter_class, type) and issubclass(adapter_class, adapters.Adapter)):
        raise ValueError(f"{source}: unknown adapter {spec['class']!r}")
    return adapter_class(**spec["init_args"])


def load_checkpoint(path: str | Path) -> UnirankModule:
    """Rebuild a UnirankModule from a checkpoint (loaded weights-only: no pickled code runs)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if "unirank" not in checkpoint:
        raise ValueError(f"{path}: not a unirank checkpoint (no 'unirank' entry)")
    config = json.loads(checkpoint["unirank"]["config"])
    module = UnirankModule(
        model=config["model"],
        adapter=adapter_from_spec(config["adapter"], path),
        schedule=Schedule(**config["schedule"]),
        calibration=Calibration(**config["calibration"]),
        chunk_size=config["chunk_size"],
        distill_temperature=config["distill_temperature"],
        seed=config["seed"],
    )
    module.load_state_dict(checkpoint["state_dict"])
    module.on_load_checkpoint(checkpoint)
    return module


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """`unirank export CKPT OUT_DIR`."""
    module = load_checkpoint(checkpoint)
    return export_model(module, out_dir)


class ExportModel(L.Callback):
    """Print the validation summary and export the model when fit ends.

    Args:
        dirpath: the export folder; default `<log dir>/model`.
    """

    def __init__(self, dirpath: str | None = None):
        self.dirpath = dirpath

    def on_fit_end(self, trainer: L.Trainer, pl_module: UnirankModule) -> None:
        if not trainer.is_global_zero:
            return
        out = Path(self.dirpath or Path(trainer.log_dir or ".") / "model")
        metrics = {
            k.removeprefix("val/"): round(float(v), 4)
            for k, v in trainer.callback_metrics.items()
            if k.startswith("val/")
        }
        export_model(pl_module, out, validation=metrics)
        print(
            "\nvalidation split, after "
            + " → ".join(
                f"{n} {s}"
                for n, s in (
                    ("distill", pl_module.schedule.distill_epochs),
                    ("pairwise", pl_module.schedule.pairwise_epochs),
                    ("pointwise", pl_module.schedule.pointwise_epochs),
                )
                if s
            )
        )
        for name, value in sorted(metrics.items()):
            print(f"  {name:22s} {value:.4f}")
        print(f"exported the model to {out}  (loads in transformers and sentence-transformers.CrossEncoder)")
