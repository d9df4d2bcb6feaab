"""A second device on a machine that has only a CPU, for tests that catch device mixing.

On a GPU, an op between a CUDA tensor and a CPU tensor (other than a 0-dim one) fails with
"Expected all tensors to be on the same device". A CPU-only test run never sees that: every tensor
is on the CPU. Here a tensor can live on the *emulated device*: an `OnEmulatedDevice` holds its
values in a CPU tensor but reports `EMULATED` (meta:1) as its device, and every op
on it is checked the way a GPU's kernels check their inputs:

- an op whose tensor arguments mix the emulated device with the CPU (0-dim CPU tensors aside, as on
  CUDA) raises the same RuntimeError CUDA raises;
- `x.to(EMULATED)`, `.to(device)` with that device, and factories given `device=EMULATED`
  (`torch.zeros(3, device=...)`, `torch.tensor(..., device=...)`) put a tensor there;
  `.cpu()` / `.to("cpu")` bring it back;
- `.numpy()` of a tensor there fails, as it does for a CUDA tensor.

Values are real, so data-dependent code (`.item()`, `if mask.any()`, a Thurstone fit) runs exactly
as it does on a GPU. `EmulatedDeviceStrategy` with `EmulatedAccelerator` makes a Lightning Trainer put
the module and every batch there, inside `on_emulated_device()`.
"""

from __future__ import annotations

import contextlib

import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

EMULATED = torch.device("meta", 1)
"""The device the emulated tensors report. Its type is meta's, so nothing needs a real device
behind it, and its index 1 tells it apart from the real meta device transformers loads models on."""


class DeviceMixingError(RuntimeError):
    """An op that mixed the emulated device with the CPU: on a GPU it would have failed."""


class OnEmulatedDevice(torch.Tensor):
    """A tensor on the emulated device: CPU values in `inner`."""

    @staticmethod
    def __new__(cls, inner: torch.Tensor):
        return torch.Tensor._make_wrapper_subclass(
            cls, inner.shape, strides=inner.stride(), storage_offset=inner.storage_offset(),
            dtype=inner.dtype, device=EMULATED, requires_grad=inner.requires_grad,
        )  # fmt: skip

    def __init__(self, inner: torch.Tensor):
        self.inner = inner

    def __repr__(self) -> str:
        return f"OnEmulatedDevice({self.inner!r})"

    def __tensor_flatten__(self):
        return ["inner"], None

    @staticmethod
    def __tensor_unflatten__(inner_tensors, meta, outer_size, outer_stride):
        return OnEmulatedDevice(inner_tensors["inner"])

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _dispatch(func, args, kwargs or {})


def _is_emulated(device) -> bool:
    return device is not None and torch.device(device) == EMULATED


def _dispatch(func, args, kwargs):
    """Run one aten op: check its inputs' devices, compute on the CPU values, place the outputs."""
    target = kwargs.get("device")
    if func is torch.ops.aten._to_copy.default and target is not None:  # .to(device) / .cpu()
        source = args[0].inner if isinstance(args[0], OnEmulatedDevice) else args[0]
        out = func(source, **{k: v for k, v in kwargs.items() if k != "device"})
        return OnEmulatedDevice(out) if _is_emulated(target) else out
    places = set()

    def note(t):
        if isinstance(t, OnEmulatedDevice):
            places.add("emulated")
        elif isinstance(t, torch.Tensor) and t.dim() > 0:
            places.add(t.device.type)

    tree_map(note, (args, kwargs))
    if "meta" in places and "emulated" not in places:  # real meta tensors (transformers' loading): as they are
        return func(*args, **kwargs)
    if len(places) > 1:
        raise DeviceMixingError(
            f"Expected all tensors to be on the same device, but found at least two devices, {EMULATED} "
            f"(the emulated device) and cpu! ({func})"
        )
    if func is torch.ops.aten._local_scalar_dense.default or not places - {"cpu"}:
        place_out = _is_emulated(target)
    else:
        place_out = True
    if _is_emulated(target):
        kwargs = dict(kwargs, device=torch.device("cpu"))
    out = func(*tree_map(_values, args), **tree_map(_values, kwargs))
    if not place_out or func is torch.ops.aten._local_scalar_dense.default:
        return out
    return tree_map(lambda t: OnEmulatedDevice(t) if type(t) is torch.Tensor else t, out)


def _values(t):
    return t.inner if isinstance(t, OnEmulatedDevice) else t


class _Ops(TorchDispatchMode):
    """Every aten op (factories included) through `_dispatch`."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _dispatch(func, args, kwargs or {})


class _Factories(TorchFunctionMode):
    """Python-level factories given the emulated device (`torch.tensor(x, device=...)` builds its
    tensor outside the dispatcher): built on the CPU, then moved there."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _is_emulated(kwargs.get("device")) and func is not torch.Tensor.to:
            out = func(*args, **dict(kwargs, device="cpu"))
            return out.to(EMULATED) if isinstance(out, torch.Tensor) else out
        return func(*args, **kwargs)


@contextlib.contextmanager
def on_emulated_device():
    """Within the block, tensors can live on the emulated device (`EMULATED`)."""
    with _Ops(), _Factories():
        yield


class EmulatedAccelerator(CPUAccelerator):
    """The CPU's accelerator, minus its device check (the strategy names the emulated device)."""

    def setup_device(self, device: torch.device) -> None:
        pass


class EmulatedDeviceStrategy(SingleDeviceStrategy):
    """One process whose root device is the emulated one: Lightning moves the module and each batch
    there, as it does to `cuda:0` (use inside `on_emulated_device()`, with `EmulatedAccelerator`:
    `--trainer.accelerator tests.emulated_device.EmulatedAccelerator`)."""

    def __init__(self):
        super().__init__(device=EMULATED)
