"""LoRA adapters on a scorer's backbone (peft): the backbone frozen, low-rank updates trained on
its linear layers, the scalar head trained in full (it carries the calibration).

A linear layer W gets ΔW = (alpha / r)·B·A with A (r × in) and B (out × r), B starting at zero, so
training starts from the backbone as loaded. The export merges every ΔW into its W, so any loader
sees a plain model; `save_adapter` also writes the adapter alone in peft's format (the head as a
module to save), for `PeftModel.from_pretrained(base, folder)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torch import nn

HEAD_MODULES = ("score", "classifier", "lm_head", "pooler")


@dataclass(frozen=True)
class LoRA:
    """A recipe's `model.lora` block.

    r: rank of each update; alpha: its scale (ΔW = alpha / r · B·A); dropout: on the adapters'
    input while training; target_modules: "all-linear" (every linear layer of the backbone) or
    the names of the layers to adapt (e.g. [q_proj, v_proj]); save_adapter: the export also holds
    the adapter alone in `adapter/` (peft's format); quantize: "4bit" loads the frozen base in
    4-bit NF4 through bitsandbytes (QLoRA, `unirank.model.quantized`; the CPU or a GPU)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    save_adapter: bool = False
    quantize: Literal["none", "4bit"] = "none"

    def __post_init__(self) -> None:
        if self.quantize not in ("none", "4bit"):
            raise ValueError(f"lora.quantize must be 'none' or '4bit', got {self.quantize!r}")
        if self.r < 1 or self.alpha <= 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(
                f"lora: r={self.r} must be ≥ 1, alpha={self.alpha} > 0 and dropout={self.dropout} in [0, 1)"
            )


def linear_layer_names(model: nn.Module) -> list[str]:
    """The distinct names (last component) of the backbone's linear layers, the head left out."""
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.split(".")[0] not in HEAD_MODULES
    }
    return sorted(names)


def add_adapters(model: nn.Module, lora: LoRA) -> list[str]:
    """Freeze the backbone, add LoRA adapters to its target layers and leave the head trainable;
    returns the adapted layer names. The model keeps its class (no wrapper), so everything that
    reads it (the head, the read-out, hooks) is unchanged."""
    from peft import LoraConfig, inject_adapter_in_model

    targets = linear_layer_names(model) if lora.target_modules == "all-linear" else list(lora.target_modules)
    if not targets:
        raise ValueError(f"{type(model).__name__}: no linear layer to adapt (target_modules={lora.target_modules!r})")
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets)
    inject_adapter_in_model(config, model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = "lora_" in name or name.split(".")[0] in HEAD_MODULES
    return targets


def has_adapters(model: nn.Module) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(module, BaseTunerLayer) for module in model.modules())


def merge_adapters(model: nn.Module) -> None:
    """Fold every adapter into its layer (W ← W + alpha / r · B·A) and put the plain layer back; a
    4-bit base layer (QLoRA) becomes the float32 nn.Linear of its dequantised weight plus the update,
    and the rest of a 4-bit base is dequantised too (`unirank.model.quantized`)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    from unirank.model.quantized import dequantize_model, dequantized_weight, is_4bit, plain_linear

    adapted = [(name, m) for name, m in model.named_modules() if isinstance(m, BaseTunerLayer)]
    for name, module in adapted:
        base = module.get_base_layer()
        if is_4bit(base):
            delta = module.get_delta_weight(module.active_adapters[0]).float()
            base = plain_linear(dequantized_weight(base) + delta, base.bias)
        else:
            module.merge()
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, base)
    if getattr(model, "is_loaded_in_4bit", False):
        dequantize_model(model)
    for parameter in model.parameters():
        parameter.requires_grad = True


def adapter_writer(model: nn.Module, lora: LoRA, targets: list[str], base_model: str) -> Callable[[Path], None]:
    """What writes the adapter alone into a folder, as peft writes it (adapter_config.json +
    adapter_model.safetensors): the LoRA weights and the head (a module to save), keyed under
    peft's `base_model.model.` prefix. Call before `merge_adapters` (the weights are copied now)."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    weights = {}
    for name, parameter in model.named_parameters():
        if "lora_" in name:
            weights["base_model.model." + name.replace(".default", "")] = parameter.detach().contiguous().cpu().clone()
        elif name.split(".")[0] in ("score", "classifier"):
            weights["base_model.model." + name] = parameter.detach().contiguous().cpu().clone()
    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets, task_type="SEQ_CLS",
        modules_to_save=sorted({key.split(".")[2] for key in weights if "lora_" not in key}),
        base_model_name_or_path=base_model, inference_mode=True,
    )  # fmt: skip

    def write(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        config.save_pretrained(str(folder))
        save_file(weights, str(folder / "adapter_model.safetensors"))

    return write
