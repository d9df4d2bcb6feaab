"""Whether bfloat16 runs natively where unirank computes, so bf16 is only ever a speed-up.

bf16 autocast halves the cost of a matmul where the hardware multiplies bf16 (CUDA GPUs with bf16,
CPUs with AVX512-BF16 or AMX tiles). Elsewhere it is emulated and slower than fp32: on a 2-core
AVX512 Xeon without either, MiniLM scored 16.6 sequences/s in bf16 against 48 in fp32
(benchmarks/throughput.py). Asking for bf16 there still gets bf16 (the numbers stay what the user
asked for), with one warning that says so; where nobody asked (the recipes leave `trainer.precision`
unset), training takes bf16 only where it is native (`training_precision`).
"""

from __future__ import annotations

import functools
import warnings

import torch


def native_bf16(device_type: str) -> bool:
    """True where bf16 matmuls run in hardware on this device type ("cpu", "cuda", ...)."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return True  # other accelerators: no known way to ask; assume the user knows


def default_device() -> str:
    """The device type unirank computes on when none is named: "cuda" where a GPU is present, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def training_precision(accelerator: object) -> str | None:
    """The precision of a fit that names none: "bf16-mixed" where the accelerator it trains on
    ("cpu", "gpu"/"cuda", "auto"/None: CUDA if present, else the CPU) multiplies bf16 natively,
    "32-true" where bf16 would be emulated; None (Lightning's own default) for other accelerators."""
    name = str(accelerator or "auto").lower()
    if name == "auto":
        name = default_device()
    device = {"gpu": "cuda"}.get(name, name)
    if device not in ("cpu", "cuda"):
        return None
    return "bf16-mixed" if native_bf16(device) else "32-true"


def encoding_precision(asked: str) -> str:
    """The precision a bi-encoder encodes in (mining): "auto" → "bf16" where the device it runs on
    (CUDA if present, else the CPU) multiplies bf16 natively, else "fp32"; "bf16" / "fp32" as asked."""
    if asked != "auto":
        return asked
    return "bf16" if native_bf16(default_device()) else "fp32"


@functools.cache
def warn_if_emulated_bf16(device_type: str, switch: str) -> None:
    """One warning per process and device type when bf16 was asked for where it is emulated;
    `switch` names the option that turns it off."""
    if not native_bf16(device_type):
        warnings.warn(
            f"bf16 was asked for, but this {device_type.upper()} has no native bf16 (no AVX512-BF16 or AMX): "
            f"it is emulated and about 3x slower than fp32 here; {switch} is faster",
            stacklevel=3,
        )
