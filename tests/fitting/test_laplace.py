"""The head posterior: its covariance matches the spread of refitted heads, and its readings."""

import numpy as np
import pytest
from scipy import optimize, special

from unirank.fitting.laplace import (
    augmented,
    curvature,
    fisher_weight,
    fit_posterior,
    moderated,
    pair_margin,
)


def _map_logistic(x, y, tau):
    """MAP of a logistic regression on x̃ = [x, 1] with prior N(0, 1/τ)."""
    xa = augmented(x)

    def loss(theta):
        r = xa @ theta
        return np.sum(np.logaddexp(0, r) - y * r) + 0.5 * tau * theta @ theta

    def grad(theta):
        return xa.T @ (special.expit(xa @ theta) - y) + tau * theta

    return optimize.minimize(loss, np.zeros(xa.shape[1]), jac=grad, method="L-BFGS-B").x


def test_laplace_covariance_matches_the_spread_of_heads_refitted_on_fresh_data():
    rng = np.random.default_rng(0)
    truth = np.array([1.5, -1.0, 0.3])
    n, tau = 400, 1.0

    def draw():
        x = rng.normal(size=(n, 2)) * [1.0, 0.3]  # the second direction barely varies: less determined
        return x, (rng.random(n) < special.expit(augmented(x) @ truth)).astype(float)

    x, y = draw()
    theta = _map_logistic(x, y, tau)
    hessian = curvature(x, augmented(x) @ theta, label=y)
    covariance = np.linalg.inv(hessian + tau * np.eye(3))
    refits = np.array([_map_logistic(*draw(), tau) for _ in range(200)])
    np.testing.assert_allclose(np.sqrt(np.diag(covariance)), refits.std(axis=0), rtol=0.25)
    assert covariance[1, 1] > 3 * covariance[0, 0]  # the poorly spread feature is the uncertain one


def test_comparisons_determine_no_bias_and_the_evidence_fixed_point_holds():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    logits = augmented(x) @ np.array([1.0, 0.5, -0.5, 0.2])
    comp_a, comp_b = np.arange(0, 200, 2), np.arange(1, 200, 2)
    hessian = curvature(x, logits, comp_a=comp_a, comp_b=comp_b)
    assert np.allclose(hessian[-1], 0) and np.allclose(hessian[:, -1], 0)  # r_a − r_b: the bias cancels
    theta = np.array([1.0, 0.5, -0.5, 0.2])
    posterior = fit_posterior(hessian, theta)
    eigenvalues = np.linalg.eigvalsh(hessian)
    gamma = np.sum(eigenvalues / (eigenvalues + posterior.prior_precision))
    assert posterior.prior_precision == pytest.approx(gamma / (theta @ theta), rel=1e-6)
    assert 2.5 < posterior.effective_parameters < 3.01  # three directions seen, the bias not
    np.testing.assert_allclose(posterior.covariance @ (hessian + posterior.prior_precision * np.eye(4)), np.eye(4),
                               atol=1e-8)  # fmt: skip


def test_thurstone_fisher_weight_is_the_bernoulli_information_through_phi():
    u, h = 0.7, 1e-4
    p = lambda v: special.ndtr(v)  # noqa: E731
    derivative = (p(u + h) - p(u - h)) / (2 * h)
    assert fisher_weight(np.array([u]), "thurstone")[0] == pytest.approx(derivative**2 / (p(u) * (1 - p(u))), rel=1e-6)
    s = special.expit(u)
    assert fisher_weight(np.array([u]), "bradley-terry")[0] == pytest.approx(s * (1 - s))


def test_thurstone_margin_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    xa, xb = augmented(rng.normal(size=(1, 3))), augmented(rng.normal(size=(1, 3)))
    theta = rng.normal(size=4)
    u, g = pair_margin(xa @ theta, xb @ theta, xa, xb, "thurstone")
    h = 1e-6
    numeric = [
        (pair_margin(xa @ (theta + h * e), xb @ (theta + h * e), xa, xb, "thurstone")[0] - u) / h for e in np.eye(4)
    ]
    np.testing.assert_allclose(g[0], np.ravel(numeric), rtol=1e-4, atol=1e-6)


def test_moderation_pulls_toward_a_half_and_is_exact_for_a_gaussian_probit_margin():
    u = np.array([2.0, -1.0])
    assert np.allclose(moderated(u, np.zeros(2), "bradley-terry"), special.expit(u))
    wide = moderated(u, np.full(2, 4.0), "bradley-terry")
    assert np.all(np.abs(wide - 0.5) < np.abs(special.expit(u) - 0.5))
    samples = np.random.default_rng(3).normal(1.0, 1.5, size=400_000)
    assert moderated(np.array([1.0]), np.array([1.5**2]), "thurstone")[0] == pytest.approx(
        special.ndtr(samples).mean(), abs=2e-3
    )
    assert moderated(np.array([1.0]), np.array([1.5**2]), "bradley-terry")[0] == pytest.approx(
        special.expit(samples).mean(), abs=1e-2
    )
