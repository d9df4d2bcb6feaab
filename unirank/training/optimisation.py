"""The optimiser of a fit: AdamW with the backbone and the new head at their own learning rates,
linear warm-up then linear decay to 0, stepped per optimiser step."""

from __future__ import annotations

import torch


def adamw_with_warmup(scorer, lr: float, head_lr: float, weight_decay: float, warmup_ratio: float, total: int) -> dict:
    """Lightning's optimiser config for `total` steps; the first warmup_ratio·total ramp up linearly."""
    groups = [
        {"params": scorer.backbone_parameters(), "lr": lr},
        {"params": scorer.head_parameters(), "lr": head_lr},
    ]
    optimizer = torch.optim.AdamW(groups, weight_decay=weight_decay)
    warmup = int(warmup_ratio * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
