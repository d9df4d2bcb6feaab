"""Pairwise accuracy for reward models, with RewardBench's conventions."""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def pairwise_accuracy(
    score_chosen, score_rejected, category=None, sections: dict[str, list[str]] | None = None
) -> dict:
    """Share of pairs where the chosen response scores strictly higher; a tie counts as wrong.

    category: a label per pair (RewardBench's subsets) → per-category accuracy.
    sections: {section: [categories]} → each section's prompt-weighted mean of its subsets, i.e.
    Σ n_s·acc_s / Σ n_s over its subsets (RewardBench's section scores).
    """
    chosen = np.asarray(score_chosen, dtype=np.float64)
    rejected = np.asarray(score_rejected, dtype=np.float64)
    if chosen.shape != rejected.shape:
        raise ValueError(f"{chosen.size} chosen scores but {rejected.size} rejected scores")
    if not (np.isfinite(chosen).all() and np.isfinite(rejected).all()):
        bad = int(np.flatnonzero(~(np.isfinite(chosen) & np.isfinite(rejected)))[0])
        raise ValueError(f"pair {bad}: a score is NaN or infinite")
    correct = chosen > rejected
    report = {
        "accuracy": float(correct.mean()) if correct.size else float("nan"),
        "n": int(correct.size),
        "ties": int((chosen == rejected).sum()),
    }
    if category is not None:
        groups: dict[str, list[bool]] = defaultdict(list)
        for label, ok in zip(category, correct):
            groups[str(label)].append(bool(ok))
        report["per_category"] = {c: {"accuracy": float(np.mean(v)), "n": len(v)} for c, v in sorted(groups.items())}
        if sections:
            per = report["per_category"]
            report["sections"] = {}
            for name, subsets in sections.items():
                present = [s for s in subsets if s in per]
                total = sum(per[s]["n"] for s in present)
                report["sections"][name] = (
                    sum(per[s]["accuracy"] * per[s]["n"] for s in present) / total if total else float("nan")
                )
    return report
