"""Best-of-n and rejection sampling on calibrated scores: `unirank select`.

For each prompt with n candidate responses (or documents): every candidate's probability σ(r);
"kept" are those with P ≥ t (rejection sampling: accept a sample only if it is good with
probability t or more; with `conservative`, the one-sided 95 % lower bound from the head posterior
must reach t instead); "best" is the highest-scored candidate with its probability and the
probability that it beats the runner-up, read as the model's pairs are read (σ(r_a − r_b) for a
Bradley-Terry model, the Thurstone reading after the pointwise stage).
"""

from __future__ import annotations

import numpy as np

from unirank.metrics.calibration import pairwise_probability


def select_candidates(scored: list[dict], threshold: float | None, pairwise_link: str, conservative: bool) -> dict:
    """scored: one dict per candidate (score, probability[, probability_lower]), in input order.
    Returns {"kept": indices with P ≥ t (None without a threshold), "best": {...}}; a withheld
    bound (None: the set is shifted, `unirank.metrics.shift.withhold_when_shifted`) keeps nothing."""
    logits = np.array([s["score"] for s in scored], dtype=np.float64)
    order = np.argsort(-logits, kind="stable")
    best = int(order[0])
    chosen = {"index": best, "probability": scored[best]["probability"]}
    if "probability_lower" in scored[best]:
        chosen["probability_lower"] = scored[best]["probability_lower"]
    if len(order) > 1:
        runner_up = int(order[1])
        chosen["beats_runner_up"] = float(pairwise_probability(logits[[best]], logits[[runner_up]], pairwise_link)[0])
    kept = None
    if threshold is not None:
        key = "probability_lower" if conservative else "probability"
        kept = [i for i in order.tolist() if scored[i][key] is not None and scored[i][key] >= threshold]
    return {"kept": kept, "best": chosen}


def selection_summary(selections: list[dict], threshold: float | None) -> str:
    """One line: prompts, candidates, how many were kept and how many prompts kept none."""
    n = sum(len(s["scores"]) for s in selections)
    line = f"{len(selections)} prompts, {n} candidates"
    if threshold is not None:
        kept = sum(len(s["kept"]) for s in selections)
        empty = sum(not s["kept"] for s in selections)
        line += f"; P ≥ {threshold:g}: {kept} kept ({kept / max(1, n):.1%}), {empty} prompts with none"
    best = np.mean([s["best"]["probability"] for s in selections]) if selections else float("nan")
    return line + f"; mean P of the best candidate {best:.3f}"
