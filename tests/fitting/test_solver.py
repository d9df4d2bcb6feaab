"""fit_thurstone / fit_bradley_terry against brute-force optima, choix, finite differences."""

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import expit, log_expit

from unirank.fitting import fit_bradley_terry, fit_thurstone, sample_cycle_pairs

LOG_CDF = {"thurstone": stats.norm.logcdf, "bradley-terry": log_expit}
FITS = {"thurstone": fit_thurstone, "bradley-terry": fit_bradley_terry}


def penalised_nll(s, a, b, p, w, l2, mu, log_cdf):
    d = s[a] - s[b]
    return -np.sum(w * (p * log_cdf(d) + (1 - p) * log_cdf(-d))) + 0.5 * l2 * np.sum((s - mu) ** 2)


def random_problem(seed, n=12, m=40):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    p = rng.choice([0.0, 0.25, 0.5, 1.0, 0.9], size=m)
    w = rng.uniform(0.5, 3.0, m)
    mu = rng.normal(0, 0.5, n)
    return a, b, p, w, mu, n


def brute_force(a, b, p, w, l2, mu, n, link, anchor=None):
    free = np.ones(n, bool)
    if anchor is not None:
        free[anchor] = False
        mu = mu.copy()
        mu[anchor] = 0.0

    def full(x):
        s = np.zeros(n)
        s[free] = x
        return s

    def f(x):
        return penalised_nll(full(x), a, b, p, w, l2, mu, LOG_CDF[link])

    res = optimize.minimize(f, np.zeros(free.sum()), method="BFGS", options={"gtol": 1e-11, "maxiter": 10_000})
    return full(res.x)


@pytest.mark.parametrize("link", ["thurstone", "bradley-terry"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_optimum(link, seed):
    a, b, p, w, mu, n = random_problem(seed)
    result = FITS[link](a, b, p, w, l2=0.7, prior_mean=mu, tol=1e-12)
    assert result.converged
    np.testing.assert_allclose(result.latent, brute_force(a, b, p, w, 0.7, mu, n, link), atol=1e-5)


@pytest.mark.parametrize("link", ["thurstone", "bradley-terry"])
def test_matches_brute_force_with_anchor(link):
    a, b, p, w, mu, n = random_problem(5)
    result = FITS[link](a, b, p, w, l2=0.3, prior_mean=mu, anchor=3, tol=1e-12)
    assert result.latent[3] == 0.0 and result.std_err[3] == 0.0
    np.testing.assert_allclose(result.latent, brute_force(a, b, p, w, 0.3, mu, n, link, anchor=3), atol=1e-5)


@pytest.mark.parametrize("link", ["thurstone", "bradley-terry"])
def test_gradient_vanishes_and_std_err_is_curvature(link):
    a, b, p, w, mu, n = random_problem(7)
    result = FITS[link](a, b, p, w, l2=0.5, prior_mean=mu, tol=1e-12)

    def f(s):
        return penalised_nll(s, a, b, p, w, 0.5, mu, LOG_CDF[link])

    grad = optimize.approx_fprime(result.latent, f, 1e-7)
    assert np.abs(grad).max() < 1e-5
    eps = 1e-4
    curvature = np.array(
        [(f(result.latent + eps * e) - 2 * f(result.latent) + f(result.latent - eps * e)) / eps**2 for e in np.eye(n)]
    )
    np.testing.assert_allclose(result.std_err, 1 / np.sqrt(curvature), rtol=1e-4)
    assert result.log_likelihood == pytest.approx(-(f(result.latent) - 0.25 * np.sum((result.latent - mu) ** 2)))


@pytest.mark.parametrize("link", ["thurstone", "bradley-terry"])
def test_recovers_true_scores(link):
    rng = np.random.default_rng(11)
    n = 300
    true = rng.normal(0, 1.5, n)
    pairs = sample_cycle_pairs(n, k=20, seed=3)
    prob = stats.norm.cdf if link == "thurstone" else expit
    won = rng.random(len(pairs)) < prob(true[pairs[:, 0]] - true[pairs[:, 1]])
    result = FITS[link](pairs[:, 0], pairs[:, 1], won.astype(float), l2=0.1)
    assert result.converged
    assert stats.spearmanr(result.latent, true).statistic > 0.9


def test_bradley_terry_agrees_with_choix():
    choix = pytest.importorskip("choix")
    rng = np.random.default_rng(4)
    n, m, alpha = 40, 400, 0.05
    true = rng.normal(0, 1, n)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    won = rng.random(m) < expit(true[a] - true[b])
    winners, losers = np.where(won, a, b), np.where(won, b, a)
    reference = choix.opt_pairwise(n, list(zip(winners, losers)), alpha=alpha, tol=1e-12)
    result = fit_bradley_terry(winners, losers, n_items=n, l2=2 * alpha, tol=1e-12)
    np.testing.assert_allclose(result.latent, reference, atol=1e-5)


def test_ties_give_equal_latents_and_prior_centres_components():
    result = fit_thurstone([0, 2], [1, 3], [0.5, 1.0], n_items=5, prior_mean=[0, 0, 1, 1, -2])
    assert result.latent[0] == pytest.approx(result.latent[1])
    assert result.latent[2] > result.latent[3]
    assert result.latent[2] + result.latent[3] == pytest.approx(2.0)  # component mean = mean prior
    assert result.latent[4] == pytest.approx(-2.0)  # never compared: stays at its prior
    assert result.std_err[4] == pytest.approx(1.0)


def test_hard_labels_in_a_disconnected_pair_stay_finite():
    result = fit_thurstone([0] * 50, [1] * 50, l2=1e-3)
    assert np.all(np.isfinite(result.latent)) and result.converged
    assert result.latent[0] > 0 > result.latent[1]


def test_empty_comparisons_return_the_prior():
    result = fit_bradley_terry([], [], n_items=3, prior_mean=0.5, l2=4.0)
    np.testing.assert_allclose(result.latent, 0.5)
    np.testing.assert_allclose(result.std_err, 0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(item_a=[0, 1, 2], item_b=[1, 2, 2]), "comparison row 2: item 2 is compared with itself"),
        (dict(item_a=[0, 1], item_b=[1, 7], n_items=3), r"comparison row 1: item_b=7 is outside \[0, 3\)"),
        (dict(item_a=[0, -1], item_b=[1, 2]), r"comparison row 1: item_a=-1 is outside"),
        (dict(item_a=[0, 1], item_b=[1, 2], p=[1.0, 1.5]), r"comparison row 1: p=1.5 is not a probability"),
        (dict(item_a=[0, 1], item_b=[1, 2], p=[np.nan, 1.0]), r"comparison row 0: p=nan is not a probability"),
        (dict(item_a=[0, 1], item_b=[1, 2], weight=[1.0, -2.0]), r"comparison row 1: weight=-2.0 is not"),
        (dict(item_a=[0.5], item_b=[1]), "integer item indices"),
        (dict(item_a=[0, 1], item_b=[1, 2], l2=0.0), "l2 must be > 0"),
        (dict(item_a=[0, 1], item_b=[1, 2], anchor=5), "anchor=5 is outside"),
    ],
)
def test_bad_input_names_the_row(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_thurstone(**kwargs)
