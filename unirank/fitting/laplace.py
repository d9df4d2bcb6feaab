"""How sure is the head? A last-layer Laplace approximation of the (calibrated) scalar head.

The head outputs r = θ·x̃, x̃ = [x, 1], x the input of the final linear layer. A decision reads a
margin u through a link F: an item's probability is σ(r); a pair's is σ(u), u = r_a − r_b
(bradley-terry), or Φ(u), u = Φ⁻¹(σ(r_a)) − Φ⁻¹(σ(r_b)) (thurstone). With g = ∂u/∂θ the curvature of
the training likelihood around the trained θ* (generalised Gauss-Newton, i.e. the Fisher) is

    H = Σ_labelled items σ'(r) x̃ x̃ᵀ + Σ_comparisons w · F'(u)² / (F(u)(1 − F(u))) · g gᵀ,

and with a prior N(0, τ⁻¹ I) the posterior of θ is N(θ*, Σ), Σ = (H + τ I)⁻¹. τ is MacKay's evidence
fixed point τ = γ / ‖θ*‖², γ = Σ_k λ_k / (λ_k + τ) over H's eigenvalues (the number of directions the
data determine). A margin's variance is v = gᵀ Σ g; its standard error √v; the posterior predictive
probability is approximated by moderating the margin, F(u / √(1 + v / c)), c = 8/π for σ (MacKay's
probit approximation) and c = 1 for Φ (exact for a Gaussian margin).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import special

from unirank.fitting.links import get_link


def augmented(features: np.ndarray) -> np.ndarray:
    """x̃ = [x, 1] (the bias's input), float64."""
    features = np.asarray(features, dtype=np.float64)
    return np.hstack([features, np.ones((features.shape[0], 1))])


def pair_margin(r_a, r_b, xa, xb, reading: str) -> tuple[np.ndarray, np.ndarray]:
    """(u, g): the margin a pair reading puts through its link, u = latent(r_a) − latent(r_b), and
    its gradient w.r.t. θ (rows), g = latent'(r_a)·x̃_a − latent'(r_b)·x̃_b."""
    link = get_link(reading)
    u = link.latent(r_a) - link.latent(r_b)
    return u, link.latent_slope(r_a)[:, None] * xa - link.latent_slope(r_b)[:, None] * xb


def fisher_weight(u: np.ndarray, reading: str) -> np.ndarray:
    """F'(u)² / (F(u)(1 − F(u))): the Fisher information of one Bernoulli observation through F."""
    link = get_link(reading)
    f = np.clip(link.cdf(u), 1e-12, 1 - 1e-12)
    return link.density(u) ** 2 / (f * (1 - f))


def moderated(u: np.ndarray, variance: np.ndarray, reading: str) -> np.ndarray:
    """The posterior predictive F(u / √(1 + v/c)) (c = 8/π for σ, 1 for Φ: the link's `moderation_scale`)."""
    link = get_link(reading)
    return link.cdf(np.asarray(u) / np.sqrt(1 + np.asarray(variance) / link.moderation_scale))


@dataclass
class HeadPosterior:
    """N(θ*, covariance) over the head's [weight, bias]; `variance(g)` = gᵀ Σ g for gradient rows g."""

    covariance: np.ndarray
    prior_precision: float
    effective_parameters: float
    info: dict = field(default_factory=dict)

    def variance(self, gradients: np.ndarray) -> np.ndarray:
        g = np.asarray(gradients, dtype=np.float64)
        return np.maximum(np.einsum("ij,jk,ik->i", g, self.covariance, g), 0.0)

    def item_variance(self, features: np.ndarray) -> np.ndarray:
        """Var(r) of each item, from the final layer's inputs x."""
        return self.variance(augmented(features))

    def pair_probability(self, r_a, r_b, fa, fb, reading: str) -> tuple[np.ndarray, np.ndarray]:
        """(posterior predictive P(a ≻ b), standard error of the margin) for rows of pairs."""
        u, g = pair_margin(r_a, r_b, augmented(fa), augmented(fb), reading)
        v = self.variance(g)
        return moderated(u, v, reading), np.sqrt(v)


def curvature(
    features: np.ndarray,
    logits: np.ndarray,
    *,
    label: np.ndarray | None = None,
    label_scale: float = 1.0,
    comp_a: np.ndarray | None = None,
    comp_b: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    comparison_scale: float = 1.0,
    reading: str = "bradley-terry",
) -> np.ndarray:
    """H over [weight, bias] from labelled items (label not NaN) and comparisons (rows of features);
    each part multiplied by its scale (the full split's count over the sample's, when subsampled)."""
    x = augmented(features)
    r = np.asarray(logits, dtype=np.float64)
    hessian = np.zeros((x.shape[1], x.shape[1]))
    if label is not None:
        known = ~np.isnan(np.asarray(label, dtype=np.float64))
        s = special.expit(r[known])
        hessian += label_scale * (x[known].T * (s * (1 - s))) @ x[known]
    if comp_a is not None and len(comp_a):
        u, g = pair_margin(r[comp_a], r[comp_b], x[comp_a], x[comp_b], reading)
        w = fisher_weight(u, reading) * (np.ones(len(u)) if weight is None else np.asarray(weight, np.float64))
        hessian += comparison_scale * (g.T * w) @ g
    return hessian


def fit_posterior(hessian: np.ndarray, theta: np.ndarray, iterations: int = 100) -> HeadPosterior:
    """Σ = (H + τI)⁻¹ with τ at MacKay's evidence fixed point τ = γ/‖θ*‖²."""
    hessian = (hessian + hessian.T) / 2
    eigenvalues, vectors = np.linalg.eigh(hessian)
    eigenvalues = np.maximum(eigenvalues, 0.0)
    norm = max(float(np.dot(theta, theta)), 1e-12)
    tau = 1.0
    for _ in range(iterations):
        gamma = float(np.sum(eigenvalues / (eigenvalues + tau)))
        new = max(gamma, 1e-6) / norm
        if abs(np.log(new / tau)) < 1e-8:
            tau = new
            break
        tau = new
    gamma = float(np.sum(eigenvalues / (eigenvalues + tau)))
    covariance = (vectors / (eigenvalues + tau)) @ vectors.T
    return HeadPosterior(covariance=covariance, prior_precision=tau, effective_parameters=gamma)
