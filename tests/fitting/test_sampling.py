"""sample_cycle_pairs: the zELO random-cycle sampler."""

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, shortest_path

from unirank.fitting import sample_cycle_pairs


def degrees(pairs, n):
    return np.bincount(pairs.ravel(), minlength=n)


@pytest.mark.parametrize("n", [11, 12, 17, 30, 100, 1000])
def test_every_item_in_k_pairs_without_duplicates(n):
    pairs = sample_cycle_pairs(n, k=8, seed=n)
    assert pairs.shape == (n * 4, 2)
    assert np.all(pairs[:, 0] < pairs[:, 1])
    assert len({tuple(row) for row in pairs.tolist()}) == len(pairs)
    assert np.all(degrees(pairs, n) == 8)


def test_connected_with_small_diameter():
    n = 2000
    pairs = sample_cycle_pairs(n, k=8, seed=0)
    graph = csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    assert connected_components(graph, directed=False)[0] == 1
    hops = shortest_path(graph, directed=False, unweighted=True, indices=[0, 1, 2])
    assert hops.max() <= 8  # a random 8-regular graph on 2000 nodes has diameter ≈ log_7(2000) + small


@pytest.mark.parametrize("n", [0, 1, 2, 5, 9])
def test_small_groups_get_every_pair(n):
    pairs = sample_cycle_pairs(n, k=8, seed=0)
    assert len(pairs) == n * (n - 1) // 2


def test_seed_makes_it_reproducible_and_k_is_checked():
    np.testing.assert_array_equal(sample_cycle_pairs(50, seed=3), sample_cycle_pairs(50, seed=3))
    assert not np.array_equal(sample_cycle_pairs(50, seed=3), sample_cycle_pairs(50, seed=4))
    with pytest.raises(ValueError, match="even"):
        sample_cycle_pairs(50, k=3)
