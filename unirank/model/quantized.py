"""A 4-bit base for QLoRA (bitsandbytes NF4, on the CPU or a GPU) and its way back to a plain model.

Training keeps every frozen linear layer of the backbone as 4-bit NF4 blocks (double-quantised
scales) and computes in `compute_dtype`; the head and the LoRA adapters stay in full precision.
The export dequantises each layer to the weights the model was trained against and adds its
adapter's update, so the exported (plain) model computes what was trained and calibrated.
"""

from __future__ import annotations

import torch
from torch import nn

SKIPPED = ["score", "classifier", "lm_head"]
"""Modules kept in full precision: the head (trained in full, it carries the calibration) and an LM head."""


def quantization_config(compute_dtype: torch.dtype = torch.float32):
    """transformers' BitsAndBytesConfig for a 4-bit NF4 base with double quantisation."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
        llm_int8_skip_modules=SKIPPED,
    )


def device_map() -> dict:
    """Where bitsandbytes puts the quantised weights: this process's GPU where there is one, else the CPU."""
    import os

    if torch.cuda.is_available():
        return {"": f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"}
    return {"": "cpu"}


def keep_trainable_layout(model: nn.Module) -> None:
    """bitsandbytes repacks a 4-bit layer's blocks for an AVX512-BF16 CPU kernel the first time it
    runs in eval mode, a layout training's backward pass cannot use afterwards; unirank scores in
    eval mode between training epochs, so the repacking is turned off."""
    for module in model.modules():
        if is_4bit(module):
            module.support_avx512bf16_for_cpu = False


def is_4bit(layer: nn.Module) -> bool:
    return type(layer).__name__ == "Linear4bit" and hasattr(layer.weight, "quant_state")


def dequantized_weight(layer: nn.Module) -> torch.Tensor:
    """A 4-bit layer's weight as the float32 matrix its forward pass multiplies by."""
    import bitsandbytes.functional as bnb_functional

    return bnb_functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state).float()


def plain_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """An nn.Linear holding `weight` (out × in) and `bias`."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias.float())
    return layer


def dequantize_model(model: nn.Module) -> None:
    """Every 4-bit layer replaced by its dequantised nn.Linear, and the model's record of its
    quantisation dropped, so it saves and loads as a plain model."""
    for name, module in list(model.named_modules()):
        if is_4bit(module):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child,
                    plain_linear(dequantized_weight(module), module.bias))  # fmt: skip
    for attribute in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(model.config, attribute):
            delattr(model.config, attribute)
    model.is_quantized, model.hf_quantizer, model.is_loaded_in_4bit = False, None, False
    model.float()
