"""Link functions F for paired-comparison models: P(a ≻ b) = F(s_a − s_b).

Each link gives, for d = s_a − s_b and the observed preference p with evidence w, the per-comparison
negative log-likelihood

    ℓ(d) = −w [p log F(d) + (1 − p) log F(−d)]

and its first and second derivatives in d. Both links are log-concave, so ℓ'' ≥ 0 and the fit is
convex. Arrays in and out are numpy float64; the elementwise work runs in torch, which uses every
core (numpy's ufuncs use one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import special

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array)


def _mills(d: torch.Tensor) -> torch.Tensor:
    """Inverse Mills ratio λ(d) = φ(d) / Φ(d), computed in log space (stable for d ≪ 0)."""
    return torch.exp(-0.5 * d * d - _LOG_SQRT_2PI - torch.special.log_ndtr(d))


@dataclass(frozen=True)
class ProbitLink:
    """Thurstone (case V): F = Φ, the standard normal CDF."""

    name: str = "thurstone"
    moderation_scale: float = 1.0
    """c of the posterior predictive F(u / √(1 + v/c)): exact for Φ."""

    def cdf(self, d: np.ndarray) -> np.ndarray:
        return torch.special.ndtr(_t(np.asarray(d, dtype=np.float64))).numpy()

    def log_cdf(self, d: np.ndarray) -> np.ndarray:
        return special.log_ndtr(d)

    def density(self, d: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * np.asarray(d, dtype=np.float64) ** 2) / np.sqrt(2 * np.pi)

    def latent(self, r: np.ndarray) -> np.ndarray:
        """The item's latent behind a calibrated logit r: Φ⁻¹(σ(r)), so σ(r) = Φ(latent)."""
        return special.ndtri(np.clip(special.expit(np.asarray(r, dtype=np.float64)), EPS, 1 - EPS))

    def latent_slope(self, r: np.ndarray) -> np.ndarray:
        """∂latent/∂r = σ'(r) / φ(Φ⁻¹(σ(r)))."""
        s = np.clip(special.expit(np.asarray(r, dtype=np.float64)), EPS, 1 - EPS)
        return s * (1 - s) / np.maximum(self.density(special.ndtri(s)), 1e-300)

    def neg_log_likelihood(self, d: np.ndarray, p: np.ndarray, w: np.ndarray, soft: np.ndarray) -> float:
        """Σ ℓ(d); `soft` marks rows with p < 1 (the others need only the log F(d) term)."""
        d_, p_, w_ = _t(d), _t(p), _t(w)
        total = -torch.dot(w_, p_ * torch.special.log_ndtr(d_))
        if soft.any():
            s = _t(soft)
            total -= torch.dot(w_[s], (1.0 - p_[s]) * torch.special.log_ndtr(-d_[s]))
        return float(total)

    def derivatives(
        self, d: np.ndarray, p: np.ndarray, w: np.ndarray, soft: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """ℓ'(d) and ℓ''(d).

        d/dd log Φ(d) = λ(d) and d²/dd² log Φ(d) = −λ(d)(d + λ(d)); the (1 − p) term is the same at −d.
        """
        d_, p_, w_ = _t(d), _t(p), _t(w)
        lam = _mills(d_)
        wp_lam = w_ * p_ * lam
        grad = -wp_lam
        hess = wp_lam * (d_ + lam)
        if soft.any():
            s = _t(soft)
            ds, wq = d_[s], w_[s] * (1.0 - p_[s])
            lam_neg = _mills(-ds)
            grad[s] += wq * lam_neg
            hess[s] += wq * lam_neg * (lam_neg - ds)
        return grad.numpy(), hess.numpy()


@dataclass(frozen=True)
class LogitLink:
    """Bradley-Terry: F = σ, the logistic function."""

    name: str = "bradley-terry"
    moderation_scale: float = 8 / math.pi
    """c of the posterior predictive σ(u / √(1 + v·π/8)) (MacKay's probit approximation)."""

    def cdf(self, d: np.ndarray) -> np.ndarray:
        return torch.sigmoid(_t(np.asarray(d, dtype=np.float64))).numpy()

    def log_cdf(self, d: np.ndarray) -> np.ndarray:
        return special.log_expit(d)

    def density(self, d: np.ndarray) -> np.ndarray:
        s = special.expit(np.asarray(d, dtype=np.float64))
        return s * (1 - s)

    def latent(self, r: np.ndarray) -> np.ndarray:
        """A Bradley-Terry model's logit is its latent."""
        return np.asarray(r, dtype=np.float64)

    def latent_slope(self, r: np.ndarray) -> np.ndarray:
        return np.ones_like(np.asarray(r, dtype=np.float64))

    def neg_log_likelihood(self, d: np.ndarray, p: np.ndarray, w: np.ndarray, soft: np.ndarray) -> float:
        d_, p_, w_ = _t(d), _t(p), _t(w)
        total = -torch.dot(w_, p_ * torch.nn.functional.logsigmoid(d_))
        if soft.any():
            s = _t(soft)
            total -= torch.dot(w_[s], (1.0 - p_[s]) * torch.nn.functional.logsigmoid(-d_[s]))
        return float(total)

    def derivatives(
        self, d: np.ndarray, p: np.ndarray, w: np.ndarray, soft: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """ℓ'(d) = w (σ(d) − p) and ℓ''(d) = w σ(d) σ(−d), for any p."""
        d_, p_, w_ = _t(d), _t(p), _t(w)
        sig = torch.sigmoid(d_)
        return (w_ * (sig - p_)).numpy(), (w_ * sig * torch.sigmoid(-d_)).numpy()


THURSTONE = ProbitLink()
BRADLEY_TERRY = LogitLink()
LINKS = {THURSTONE.name: THURSTONE, BRADLEY_TERRY.name: BRADLEY_TERRY}
EPS = 1e-7  # σ(r) clipped to [EPS, 1 − EPS] before Φ⁻¹


def get_link(name: str) -> ProbitLink | LogitLink:
    """The link object of a name ("thurstone" or "bradley-terry"): the one source of F, its log,
    its density and the latent a calibrated logit reads as."""
    if name not in LINKS:
        raise ValueError(f"link must be one of {sorted(LINKS)}, got {name!r}")
    return LINKS[name]


def pairwise_reading(score_a, score_b, reading: str) -> np.ndarray:
    """P(a ≻ b) from two logits: F(latent(r_a) − latent(r_b)), i.e. σ(r_a − r_b) (bradley-terry) or
    Φ(Φ⁻¹σ(r_a) − Φ⁻¹σ(r_b)) (thurstone)."""
    link = get_link(reading)
    return link.cdf(link.latent(score_a) - link.latent(score_b))


def probability(logits):
    """σ(r) = 1 / (1 + e^(−r)): the probability a calibrated logit reads as (array or scalar, float64)."""
    return special.expit(np.asarray(logits, dtype=np.float64))
