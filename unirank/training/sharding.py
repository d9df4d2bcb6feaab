"""Sharded training (FSDP2, `torch.distributed.fsdp.fully_shard`) through Lightning's
ModelParallelStrategy: each process holds a shard of every weight, gathered layer by layer when it
runs.

Each decoder layer, the backbone (embeddings and final norm) and the head are sharded units of
their own, so every way unirank calls the model (the backbone then the head at the read positions,
inside and outside the training loop) gathers exactly what it runs. The fits between and after the
stages read scores, not weights: every process scores the same rows in lockstep (gathering needs
them all), rank 0's fit is kept and broadcast. The export gathers the full weights once and rank 0
writes them.

    unirank fit --config ... --trainer.strategy=ModelParallelStrategy
        --trainer.strategy.data_parallel_size=N --trainer.strategy.tensor_parallel_size=1
        --trainer.strategy.save_distributed_checkpoint=false --trainer.devices=N
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn


def is_sharded(trainer: L.Trainer | None) -> bool:
    """Whether the weights are sharded across processes (ModelParallelStrategy, FSDP2)."""
    from lightning.pytorch.strategies import ModelParallelStrategy

    return trainer is not None and isinstance(trainer.strategy, ModelParallelStrategy) and trainer.world_size > 1


def check_strategy(trainer: L.Trainer) -> None:
    """FSDP1 (`strategy=fsdp`) wraps the whole module, which unirank calls part by part: refused
    with the strategy that works."""
    from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy

    if isinstance(trainer.strategy, (FSDPStrategy, DeepSpeedStrategy)):
        raise ValueError(
            f"{type(trainer.strategy).__name__} is not supported: shard with FSDP2 through "
            "--trainer.strategy=ModelParallelStrategy --trainer.strategy.data_parallel_size=N "
            "--trainer.strategy.tensor_parallel_size=1 (README, Large models)"
        )


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The backbone's list of transformer layers (Llama's `layers`, GPT-2's `h`, ...)."""
    count = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    for child in model.base_model.children():
        if isinstance(child, nn.ModuleList) and len(child) == count:
            return child
    raise TypeError(f"{type(model).__name__}: no list of {count} transformer layers to shard")


def shard_model(model: nn.Module, mesh) -> None:
    """fully_shard every layer, then the backbone (its embeddings and final norm), then the head;
    every unit frees its gathered weights after its forward pass (the roots too, which FSDP2 would
    otherwise keep gathered until a backward pass that scoring never runs)."""
    from torch.distributed.fsdp import fully_shard

    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, reshard_after_forward=True)
    fully_shard(model.base_model, mesh=mesh, reshard_after_forward=True)
    fully_shard(model.score, mesh=mesh, reshard_after_forward=True)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every weight gathered, on the CPU (a collective: every process calls it)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def has_sharded_weights(model: nn.Module) -> bool:
    return any(hasattr(p, "full_tensor") for p in model.parameters())
