"""Sparse pair sampling for judges: the union of random Hamiltonian cycles (zELO).

A single random cycle through n items is connected and puts every item in 2 comparisons; the
union of k/2 independent random cycles puts every item in k comparisons and, being close to a
random k-regular graph, has diameter O(log n), so the Thurstone fit ties every pair of items
together through short chains of evidence.
"""

from __future__ import annotations

import numpy as np


def sample_cycle_pairs(
    n_items: int, k: int = 8, seed: int | np.random.Generator | None = None, restarts: int = 20
) -> np.ndarray:
    """Sample comparison pairs among `n_items` items: the union of k/2 random Hamiltonian cycles.

    Returns an (m, 2) int64 array of item indices, each row (i, j) with i < j. For n_items ≤ k + 1
    every pair is returned (m = n(n−1)/2). Otherwise m = n·k/2 and every item is in exactly k
    pairs, with no pair twice: a cycle that repeats an edge of an earlier cycle is repaired by
    2-opt moves (reverse a segment, swapping the repeated edge for two unused ones). When n is
    close to k + 1 repair can get stuck; the whole draw is then restarted (up to `restarts` times)
    and, should every draw get stuck, the one with the most pairs is kept with its repeated edges
    dropped, so a few items get fewer than k pairs.
    """
    if k < 2 or k % 2:
        raise ValueError(f"k must be an even number >= 2, got {k}")
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, got {n_items}")
    if n_items <= k + 1:
        i, j = np.triu_indices(n_items, 1)
        return np.stack([i, j], axis=1).astype(np.int64)
    rng = np.random.default_rng(seed)
    best: set[int] = set()
    for _ in range(restarts):
        used: set[int] = set()
        for _ in range(k // 2):
            cycle = _repair(rng.permutation(n_items), used, rng)
            used.update(_edge_keys(cycle, n_items).tolist())
        if len(used) > len(best):
            best = used
        if len(best) == n_items * k // 2:
            break
    keys = np.fromiter(sorted(best), dtype=np.int64, count=len(best))
    return np.stack([keys // n_items, keys % n_items], axis=1)


def _edge_keys(cycle: np.ndarray, n: int) -> np.ndarray:
    """Key min·n + max of each edge (cycle[i], cycle[i+1]) of a closed cycle."""
    nxt = np.roll(cycle, -1)
    return np.minimum(cycle, nxt) * n + np.maximum(cycle, nxt)


def _repair(cycle: np.ndarray, used: set[int], rng: np.random.Generator, tries_per_edge: int = 200) -> np.ndarray:
    """Remove edges already in `used` from `cycle` by 2-opt moves; give up after a bounded number of tries."""
    n = cycle.size
    for _ in range(tries_per_edge * 4):
        bad = np.flatnonzero(np.isin(_edge_keys(cycle, n), np.fromiter(used, np.int64, len(used))))
        if bad.size == 0:
            return cycle
        cycle = np.roll(cycle, -int(bad[0]))  # the repeated edge is now (cycle[0], cycle[1])
        for _ in range(tries_per_edge):
            j = int(rng.integers(2, n - 1))  # reverse cycle[1..j]: edges (c0,cj) and (c1,c_{j+1}) come in
            c0, c1, cj, cj1 = cycle[0], cycle[1], cycle[j], cycle[(j + 1) % n]
            new_edges = (min(c0, cj) * n + max(c0, cj), min(c1, cj1) * n + max(c1, cj1))
            if new_edges[0] not in used and new_edges[1] not in used:
                cycle = cycle.copy()
                cycle[1 : j + 1] = cycle[1 : j + 1][::-1]
                break
        else:
            return cycle
    return cycle
