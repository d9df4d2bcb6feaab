"""How unlike the training inputs an input is, read from the backbone, not the head.

An input's state s is the backbone's final hidden states mean-pooled over its tokens, scaled to
unit length. Its novelty is the cosine distance to the nearest of a reference sample of training
inputs' states R (drawn when training ends, with the head posterior's sample):

    novelty(s) = 1 − max_j ⟨s, R_j⟩

and its percentile places that distance among the references' own, each to its nearest other
reference: the share of training inputs that are at least as close to the rest of the training
data. Near 1: farther from the training data than almost every training input is.

Why this reading (`benchmarks/ood.py`): a PandaLM reward model scoring HH-RLHF responses is as sure
of them as of its own domain by the head posterior, the head's features and any global density
(AUROC 0.36-0.50), while the nearest-reference distance in the pooled states tells them apart
(AUROC 0.80 [0.72, 0.88]).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

NOVELTY_FILE = "novelty_reference.safetensors"


@dataclass
class NoveltyReference:
    """Unit states of a sample of training inputs and their sorted leave-one-out novelties."""

    states: np.ndarray
    own_novelty: np.ndarray

    def novelty(self, states: np.ndarray) -> np.ndarray:
        """1 − the largest cosine similarity of each state to a reference state."""
        return 1.0 - (_unit(states) @ self.states.T).max(axis=1)

    def percentile(self, novelty: np.ndarray) -> np.ndarray:
        """Share of the references whose own novelty is at most this."""
        return np.searchsorted(self.own_novelty, novelty, side="right") / len(self.own_novelty)


def fit_reference(states: np.ndarray) -> NoveltyReference | None:
    """The reference of a sample of training states (rows with NaN left out); None below two rows."""
    states = _unit(np.asarray(states, dtype=np.float32)[~np.isnan(states).any(axis=1)])
    if len(states) < 2:
        return None
    similarity = states @ states.T
    np.fill_diagonal(similarity, -np.inf)
    return NoveltyReference(states=states, own_novelty=np.sort(1.0 - similarity.max(axis=1)))


def reference_state(reference: NoveltyReference) -> dict:
    """Tensors for a checkpoint or a side file."""
    return {"states": torch.from_numpy(reference.states), "own_novelty": torch.from_numpy(reference.own_novelty)}


def reference_from_state(state: dict | None) -> NoveltyReference | None:
    if not state:
        return None
    return NoveltyReference(states=state["states"].float().numpy(), own_novelty=state["own_novelty"].float().numpy())


def save_reference(reference: NoveltyReference, folder: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in reference_state(reference).items()}, str(folder / NOVELTY_FILE))


def load_reference(folder: Path) -> NoveltyReference | None:
    """The side file of an export (None where the export has none)."""
    from safetensors.torch import load_file

    path = folder / NOVELTY_FILE
    return reference_from_state(load_file(str(path))) if path.exists() else None


def _unit(states: np.ndarray) -> np.ndarray:
    return states / np.maximum(np.linalg.norm(states, axis=1, keepdims=True), 1e-12)
