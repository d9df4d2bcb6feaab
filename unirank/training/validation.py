"""What a fit logs on its validation split: pairwise accuracy per batch, and over the epoch the
Brier score and ECE (15 bins) of σ(r) on the labelled items (process models: their steps)."""

from __future__ import annotations

import torch

from unirank.adapters.base import Batch
from unirank.metrics.calibration import calibration_error


class ValidationMetrics:
    """update(scores, batch) per batch → {name: (value, batch size)} to log now; compute() at the
    epoch's end → {name: value} over the labelled items seen."""

    def __init__(self):
        self.probs: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def update(self, scores: torch.Tensor, batch: Batch) -> dict[str, tuple[torch.Tensor, int]]:
        logged = {}
        if len(batch.comp_a):
            decided = batch.p != 0.5
            if decided.any():
                margin = scores[batch.comp_a[decided]] - scores[batch.comp_b[decided]]
                correct = (torch.sign(margin) == torch.sign(batch.p[decided].to(margin) - 0.5)).float().mean()
                logged["val/pairwise_accuracy"] = (correct, int(decided.sum()))
        labelled = ~torch.isnan(batch.label)
        if labelled.any():
            self.probs.append(torch.sigmoid(scores[labelled.to(scores.device)]).detach().float().cpu())
            self.labels.append(batch.label[labelled].cpu())
        return logged

    def compute(self) -> dict[str, torch.Tensor]:
        if not self.probs:
            return {}
        probs, labels = torch.cat(self.probs), torch.cat(self.labels)
        metrics = {"val/brier": torch.mean((probs - labels) ** 2)}
        if torch.all((labels == 0) | (labels == 1)):
            metrics["val/ece"] = torch.tensor(calibration_error(probs.numpy(), labels.numpy()))
        return metrics
