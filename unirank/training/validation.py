"""What a fit logs on its validation split: pairwise accuracy per batch, and over the epoch the
Brier score and ECE (15 bins) of σ(r) on the labelled items (process models: their steps); for
a `Mixture` of sources, each source's too (`val/<source>/...`)."""

from __future__ import annotations

import torch

from unirank.adapters.base import Batch
from unirank.metrics.calibration import calibration_error


class ValidationMetrics:
    """update(scores, batch) per batch → {name: (value, batch size)} to log now; compute() at the
    epoch's end → {name: value} over the labelled items seen. group_source: {group id: source}
    (a Mixture's), to log each source's figures beside the overall ones."""

    def __init__(self, group_source: dict[str, str] | None = None):
        self.group_source = group_source
        self.probs: dict[str, list[torch.Tensor]] = {}
        self.labels: dict[str, list[torch.Tensor]] = {}

    def _parts(self, batch: Batch) -> list[tuple[str, torch.Tensor]]:
        """("val", all items) and, per source in the batch, ("val/<source>", its items' mask), on the
        batch's device."""
        device = batch.label.device
        parts = [("val", torch.ones(len(batch.group_id), dtype=torch.bool, device=device))]
        if self.group_source:
            owner = [self.group_source.get(g) for g in batch.group_id]
            for source in sorted({s for s in owner if s is not None}):
                parts.append((f"val/{source}", torch.tensor([s == source for s in owner], device=device)))
        return parts

    def update(self, scores: torch.Tensor, batch: Batch) -> dict[str, tuple[torch.Tensor, int]]:
        logged = {}
        for prefix, mine in self._parts(batch):
            if len(batch.comp_a):
                decided = (batch.p != 0.5) & mine[batch.comp_a]
                if decided.any():
                    margin = scores[batch.comp_a[decided]] - scores[batch.comp_b[decided]]
                    correct = (torch.sign(margin) == torch.sign(batch.p[decided].to(margin) - 0.5)).float().mean()
                    logged[f"{prefix}/pairwise_accuracy"] = (correct, int(decided.sum()))
            labelled = ~torch.isnan(batch.label) & mine
            if labelled.any():
                self.probs.setdefault(prefix, []).append(torch.sigmoid(scores[labelled]).detach().float().cpu())
                self.labels.setdefault(prefix, []).append(batch.label[labelled].cpu())
        return logged

    def compute(self) -> dict[str, torch.Tensor]:
        metrics = {}
        for prefix in self.probs:
            probs, labels = torch.cat(self.probs[prefix]), torch.cat(self.labels[prefix])
            metrics[f"{prefix}/brier"] = torch.mean((probs - labels) ** 2)
            if torch.all((labels == 0) | (labels == 1)):
                metrics[f"{prefix}/ece"] = torch.tensor(calibration_error(probs.numpy(), labels.numpy()))
        return metrics
