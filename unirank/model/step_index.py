"""Where each step's score sits in a batch's flat step scores: a process input's steps are
contiguous, so an input's first step and a unit's position inside it locate the unit's step."""

from __future__ import annotations

import torch

from unirank.adapters.base import Batch


def first_steps(owner: torch.Tensor, n_inputs: int) -> torch.Tensor:
    """Per input, the index of its first step in the flat step scores (an input's steps are contiguous)."""
    first = torch.zeros(n_inputs, dtype=torch.long, device=owner.device)
    return first.scatter_reduce(0, owner, torch.arange(len(owner), device=owner.device), "amin", include_self=False)


def unit_steps(first: torch.Tensor, n_steps: int, batch: Batch) -> torch.Tensor:
    """Per unit of a batch with `sources`, the index of its step in the flat step scores (any step
    of its input for a unit read as a whole solution, positions = −1); first: `first_steps`."""
    sources, positions = batch.sources.to(first.device), batch.positions.to(first.device)
    return (first[sources] + positions.clamp(min=0)).clamp(max=n_steps - 1)


def unit_features(step_inputs: torch.Tensor, step_owner: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The final layer's input of every unit of a batch with `sources`: a step's own; NaN for a
    solution, whose score aggregates its steps' (no single input of the final layer gives it)."""
    first = first_steps(step_owner.to(step_inputs.device), len(batch.order))
    inputs = step_inputs[unit_steps(first, len(step_inputs), batch)]
    whole = (batch.positions.to(inputs.device) < 0)[:, None]
    return torch.where(whole, torch.full_like(inputs, float("nan")), inputs)
