"""Fusion with the first stage: γ chosen on validation lists is never worse there than the reranker alone."""

import numpy as np

from unirank.metrics.fusion import fit_fusion_weight, ndcg_at_k


def lists(seed=0, queries=40, depth=30):
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(queries), depth)
    gains = np.zeros(group.size)
    gains[np.arange(queries) * depth + rng.integers(0, depth, queries)] = 1.0
    return rng, group, gains


def test_ndcg_of_a_perfect_and_a_reversed_ranking():
    group, gains = np.zeros(4, int), np.array([0.0, 1.0, 0.0, 0.0])
    assert ndcg_at_k(np.array([0.1, 0.9, 0.2, 0.3]), gains, group)[0] == 1.0
    assert ndcg_at_k(np.array([0.9, 0.1, 0.8, 0.7]), gains, group)[0] == 1 / np.log2(5)


def test_fusion_leans_on_the_better_signal_and_never_loses_on_its_own_lists():
    rng, group, gains = lists()
    first_stage = gains + rng.normal(0, 0.3, gains.size)  # informative
    noise = rng.normal(0, 1, gains.size)  # a reranker that learnt nothing
    fit = fit_fusion_weight(noise, first_stage, gains, group)
    assert fit["first_stage_weight"] > 1 and fit["ndcg@10"]["fused"] > fit["ndcg@10"]["reranker"] + 0.2
    perfect = 5 * gains
    fit = fit_fusion_weight(perfect, first_stage, gains, group)
    assert fit["ndcg@10"]["fused"] == fit["ndcg@10"]["reranker"] == 1.0
    assert fit["queries"] == 40
