"""Steps 4-5 of mining: sample pairs among a query's candidates and label them from the qrels.

Pairs are the union of k/2 random Hamiltonian cycles (`unirank.fitting.sample_cycle_pairs`), plus,
when asked, every positive-vs-negative pair the cycles missed. Labels: the higher grade is
preferred (p = 1 for it), equal grades are a tie (p = 0.5).
"""

from __future__ import annotations

import numpy as np

from unirank.fitting import sample_cycle_pairs


def label_pairs(
    grades: list[int], *, k: int = 8, all_positive_pairs: bool = False, seed: int | np.random.Generator | None = None
) -> list[tuple[int, int, float]]:
    """(i, j, p) over candidate indices, p = P(candidate i ≻ candidate j) from the grades."""
    pairs = {tuple(pair) for pair in sample_cycle_pairs(len(grades), k=k, seed=seed).tolist()}
    if all_positive_pairs:
        relevant = [i for i, g in enumerate(grades) if g > 0]
        pairs |= {(min(i, j), max(i, j)) for i in relevant for j, g in enumerate(grades) if g < grades[i]}
    labelled = []
    for i, j in sorted(pairs):
        p = 1.0 if grades[i] > grades[j] else 0.0 if grades[i] < grades[j] else 0.5
        labelled.append((i, j, p))
    return labelled
