"""How unlike the training inputs an input is, read from the backbone, not the head.

An input's state s is the backbone's final hidden states mean-pooled over its tokens, scaled to
unit length. Its novelty is the cosine distance to the nearest of a reference sample of training
inputs' states R (drawn when training ends, with the head posterior's sample):

    novelty(s) = 1 − max_j ⟨s, R_j⟩

and its percentile places that distance among the references' own, each to its nearest reference
of another context (prompt, query, problem): the share of training inputs that lie at most that far
from the training inputs of the other contexts. Leaving out a reference's own context is what makes
the percentile read right for a new prompt: the responses to one prompt are each other's nearest
neighbours, so a plain leave-one-out distance is near 0 for every reference, and every input of an
unseen prompt, however ordinary, would sit beyond all of them (a PandaLM model put 97 % of its own
test responses above the 95th percentile that way; leaving out the context, 10 %, and 39 % of
HH-RLHF's responses). An input drawn like the training data, from a new context, gets a percentile
spread evenly over [0, 1]. Near 1: farther from the training data than almost every training input.

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
    """Unit states of a sample of training inputs, and `own_novelty`: the sorted novelties that
    percentiles read against. Training fits one per state (each reference's distance to the
    nearest reference of another context); `unirank recalibrate` replaces them with the novelties
    of the new domain's labelled inputs (one per input, whatever their number), so a percentile
    then places an input among the domain the probabilities were last fitted on."""

    states: np.ndarray
    own_novelty: np.ndarray

    def novelty(self, states: np.ndarray) -> np.ndarray:
        """1 − the largest cosine similarity of each state to a reference state."""
        return 1.0 - (_unit(states) @ self.states.T).max(axis=1)

    def percentile(self, novelty: np.ndarray) -> np.ndarray:
        """Share of the references whose own novelty is at most this."""
        return np.searchsorted(self.own_novelty, novelty, side="right") / len(self.own_novelty)


def fit_reference(states: np.ndarray, contexts: np.ndarray | None = None) -> NoveltyReference | None:
    """The reference of a sample of training states (rows with NaN left out); None below two rows.
    contexts: one key per row (its prompt / query / problem); each reference's own novelty is then
    its distance to the nearest reference of another context (plain leave-one-out without keys, or
    where every row shares one context)."""
    states = np.asarray(states, dtype=np.float32)
    readable = ~np.isnan(states).any(axis=1)
    states = _unit(states[readable])
    if len(states) < 2:
        return None
    similarity = states @ states.T
    keys = None if contexts is None else np.unique(np.asarray(contexts)[readable], return_inverse=True)[1]
    if keys is not None and keys.max() > 0:
        similarity[keys[:, None] == keys[None, :]] = -np.inf
    else:
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
