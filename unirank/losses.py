"""Losses: pure functions of score tensors and a batch's tensors (no model, no tokenizer). Math: docs/math.md."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    scores: torch.Tensor, item_a: torch.Tensor, item_b: torch.Tensor, p: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Σ w · BCEWithLogits(r_a − r_b, p) / Σ w: soft p and ties (p = 0.5) are first-class."""
    margin = scores[item_a] - scores[item_b]
    losses = F.binary_cross_entropy_with_logits(margin, p.to(margin.dtype), reduction="none")
    return (weight * losses).sum() / weight.sum()


def pointwise_loss(scores: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Σ w · BCE(σ(r), t) / Σ w, against targets t = F(latent) in (0, 1)."""
    losses = F.binary_cross_entropy_with_logits(scores, target.to(scores.dtype), reduction="none")
    return (weight * losses).sum() / weight.sum()


def target_weight(std_err: torch.Tensor) -> torch.Tensor:
    """w = 1 / (1 + se²): 1 for a target known exactly, falling as its latent's uncertainty grows."""
    return 1.0 / (1.0 + std_err**2)


def comparison_loss(scores: torch.Tensor, batch) -> torch.Tensor:
    """Bradley-Terry over a `Batch`'s comparisons (0 where it has none)."""
    if len(batch.comp_a) == 0:
        return scores.sum() * 0.0
    dev = scores.device
    return bradley_terry_loss(scores, batch.comp_a.to(dev), batch.comp_b.to(dev), batch.p.to(dev), batch.weight.to(dev))


def anchor_loss(scores: torch.Tensor, batch, label_weight: float) -> torch.Tensor:
    """BCEWithLogits(r − 0, label) over a `Batch`'s items whose label is their only evidence
    (`anchor_p`), each weighted label_weight × its own label_weight, as the Thurstone fit reads them."""
    known = ~torch.isnan(batch.anchor_p)
    if not known.any():
        return scores.sum() * 0.0
    dev = scores.device
    weight = label_weight * batch.label_weight[known].to(dev)
    return pointwise_loss(scores[known.to(dev)], batch.anchor_p[known].to(dev), weight)
