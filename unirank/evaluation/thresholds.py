"""Does a threshold mean the same thing in every group? Precision and recall of σ(r) > t."""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def threshold_report(prob, label, group, thresholds=(0.3, 0.5, 0.7, 0.9)) -> list[dict]:
    """For each t: precision and recall of "prob > t" against label > 0.5 overall, and the spread
    (standard deviation) of per-group precision over the groups with at least one prediction above t.
    A calibrated model keeps that spread small."""
    p = np.asarray(prob, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64) > 0.5
    groups = np.asarray(group)
    rows = []
    for t in thresholds:
        predicted = p > t
        true_positive = int((predicted & y).sum())
        per_group: dict[str, list[bool]] = defaultdict(list)
        for g, pred, truth in zip(groups, predicted, y):
            if pred:
                per_group[str(g)].append(bool(truth))
        precisions = [float(np.mean(v)) for v in per_group.values()]
        rows.append(
            {
                "threshold": float(t),
                "precision": true_positive / predicted.sum() if predicted.any() else None,
                "recall": true_positive / y.sum() if y.any() else None,
                "predicted_positive": int(predicted.sum()),
                "groups_with_predictions": len(precisions),
                "group_precision_std": float(np.std(precisions)) if len(precisions) > 1 else None,
            }
        )
    return rows
