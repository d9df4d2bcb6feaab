"""Does a threshold mean the same thing in every group? Precision and recall of σ(r) > t."""

from __future__ import annotations

import numpy as np

from unirank.metrics.bootstrap import bootstrap_interval


def threshold_report(prob, label, group, thresholds=(0.3, 0.5, 0.7, 0.9)) -> list[dict]:
    """For each t: precision and recall of "prob > t" against label > 0.5 overall, the precision's 95 %
    bootstrap interval over groups (whole groups resampled: precision = Σ true positives / Σ predicted
    over the drawn groups), and the spread (standard deviation) of per-group precision over the groups
    with at least one prediction above t. A calibrated model's precision above t is about t or more,
    and its spread is small."""
    p = np.asarray(prob, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64) > 0.5
    _, owner = np.unique(np.asarray(group).astype(str), return_inverse=True)
    n_groups = int(owner.max()) + 1 if len(owner) else 0
    rows = []
    for t in thresholds:
        predicted = p > t
        predicted_per_group = np.bincount(owner, predicted, minlength=n_groups)
        true_per_group = np.bincount(owner, predicted & y, minlength=n_groups)
        with_predictions = predicted_per_group > 0
        precisions = true_per_group[with_predictions] / predicted_per_group[with_predictions]

        def precision_of(idx: np.ndarray, true=true_per_group, made=predicted_per_group) -> float:
            n = made[idx].sum()
            return float(true[idx].sum() / n) if n else float("nan")

        true_positive = int(true_per_group.sum())
        rows.append(
            {
                "threshold": float(t),
                "precision": true_positive / predicted.sum() if predicted.any() else None,
                "precision_interval": bootstrap_interval(precision_of, n_groups) if predicted.any() else None,
                "recall": true_positive / y.sum() if y.any() else None,
                "predicted_positive": int(predicted.sum()),
                "groups_with_predictions": int(with_predictions.sum()),
                "group_precision_std": float(np.std(precisions)) if len(precisions) > 1 else None,
            }
        )
    return rows
