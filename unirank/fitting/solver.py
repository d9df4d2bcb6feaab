"""Penalised maximum-likelihood fit of paired-comparison latents by sparse Newton-CG.

The model: one latent s_i per item and P(a ≻ b) = F(s_a − s_b), F = Φ (Thurstone case V) or σ
(Bradley-Terry). The fit maximises

    L(s) = Σ_c w_c [p_c log F(s_a − s_b) + (1 − p_c) log F(s_b − s_a)] − l2/2 Σ_i (s_i − μ_i)²

which is strictly concave for l2 > 0 (F is log-concave), so the optimum is unique and items never
compared (or whole disconnected components) stay finite at their prior. Without an anchor, the
gradient of the comparison terms sums to zero over every connected component, so at the optimum
each component's mean latent equals its mean prior: with μ = 0, every group is centred on zero.
With an anchor, that item is fixed at s = 0 and the others are measured against it.

The Hessian of −L is a weighted graph Laplacian plus l2·I. It is never formed densely: a CSR matrix
A holds one entry h_c = ℓ''(d_c) per comparison (row a, column b), so H v = D v − A v − Aᵀ v with
D the weighted degree plus l2. Each Newton step solves H Δ = −∇ by conjugate gradients with the
Jacobi preconditioner D⁻¹ to a forcing tolerance that tightens as the gradient shrinks (inexact
Newton, superlinear), then backtracks along Δ until the Armijo condition holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse

from unirank.fitting.links import BRADLEY_TERRY, THURSTONE, LogitLink, ProbitLink
from unirank.fitting.result import FitResult

ArrayLike = np.ndarray | list | tuple


def fit_thurstone(
    item_a: ArrayLike,
    item_b: ArrayLike,
    p: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    *,
    n_items: int | None = None,
    l2: float = 1.0,
    prior_mean: float | ArrayLike | None = None,
    anchor: int | None = None,
    tol: float = 1e-8,
    max_iter: int = 100,
) -> FitResult:
    """Fit Thurstone case V, P(a ≻ b) = Φ(s_a − s_b), to weighted soft comparisons.

    Maximises Σ w [p log Φ(s_a − s_b) + (1 − p) log Φ(s_b − s_a)] − l2/2 Σ (s − μ)².
    item_a, item_b: integer item indices in [0, n_items); p: probability that a is preferred
    (default 1; 0.5 is a tie); weight: evidence w > 0 (default 1); prior_mean: μ, a scalar or one
    value per item (default 0); anchor: index of an item fixed at s = 0. Bad input raises
    ValueError naming the first offending comparison row.
    """
    return _fit(THURSTONE, item_a, item_b, p, weight, n_items, l2, prior_mean, anchor, tol, max_iter)


def fit_bradley_terry(
    item_a: ArrayLike,
    item_b: ArrayLike,
    p: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    *,
    n_items: int | None = None,
    l2: float = 1.0,
    prior_mean: float | ArrayLike | None = None,
    anchor: int | None = None,
    tol: float = 1e-8,
    max_iter: int = 100,
) -> FitResult:
    """Fit Bradley-Terry, P(a ≻ b) = σ(s_a − s_b), to weighted soft comparisons.

    Maximises Σ w [p log σ(s_a − s_b) + (1 − p) log σ(s_b − s_a)] − l2/2 Σ (s − μ)²; the arguments
    are those of `fit_thurstone`. choix's `opt_pairwise(alpha=α)` is this objective with l2 = 2α.
    """
    return _fit(BRADLEY_TERRY, item_a, item_b, p, weight, n_items, l2, prior_mean, anchor, tol, max_iter)


@dataclass(frozen=True)
class _Comparisons:
    """Validated comparisons, oriented so that p ≥ 0.5 and sorted by item_a."""

    a: np.ndarray
    b: np.ndarray
    p: np.ndarray
    w: np.ndarray
    soft: np.ndarray  # p < 1


def _first_bad_row(mask: np.ndarray) -> int | None:
    rows = np.flatnonzero(mask)
    return int(rows[0]) if rows.size else None


def _as_index_array(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer item indices, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _as_value_array(values: ArrayLike | None, name: str, size: int, default: float) -> np.ndarray:
    if values is None:
        return np.full(size, default)
    array = np.array(values, dtype=np.float64)  # a writable copy: torch reads it without copying
    if array.shape != (size,):
        raise ValueError(f"{name} must have one value per comparison ({size}), got shape {array.shape}")
    return array


def _check(bad: np.ndarray, message: Callable[[int], str]) -> None:
    row = _first_bad_row(bad)
    if row is not None:
        raise ValueError(f"comparison row {row}: {message(row)}")


def _validate(item_a, item_b, p, weight, n_items) -> tuple[np.ndarray, ...]:
    a = _as_index_array(item_a, "item_a")
    b = _as_index_array(item_b, "item_b")
    if a.shape != b.shape:
        raise ValueError(f"item_a and item_b differ in length ({a.size} vs {b.size})")
    p = _as_value_array(p, "p", a.size, 1.0)
    w = _as_value_array(weight, "weight", a.size, 1.0)
    if n_items is None:
        n_items = int(max(a.max(initial=-1), b.max(initial=-1))) + 1
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, got {n_items}")
    _check((a < 0) | (a >= n_items), lambda r: f"item_a={a[r]} is outside [0, {n_items})")
    _check((b < 0) | (b >= n_items), lambda r: f"item_b={b[r]} is outside [0, {n_items})")
    _check(a == b, lambda r: f"item {a[r]} is compared with itself")
    _check(~((p >= 0.0) & (p <= 1.0)), lambda r: f"p={p[r]} is not a probability in [0, 1]")
    _check(~(np.isfinite(w) & (w > 0.0)), lambda r: f"weight={w[r]} is not a finite number > 0")
    return a, b, p, w, n_items


def _oriented(a, b, p, w) -> _Comparisons:
    """Flip rows with p < 0.5 (a ↔ b, p → 1 − p) so hard labels all read p = 1, then sort by a."""
    flip = p < 0.5
    a, b = np.where(flip, b, a), np.where(flip, a, b)
    p = np.where(flip, 1.0 - p, p)
    order = torch.argsort(torch.from_numpy(a), stable=True)
    a, b, p, w = (torch.from_numpy(x).index_select(0, order).numpy() for x in (a, b, p, w))
    return _Comparisons(a=a, b=b, p=p, w=w, soft=p < 1.0)


def _difference(v: np.ndarray, comps: _Comparisons) -> np.ndarray:
    """v[a] − v[b] per comparison (torch's gather runs on every core)."""
    v_, a_, b_ = torch.from_numpy(v), torch.from_numpy(comps.a), torch.from_numpy(comps.b)
    return (v_.index_select(0, a_) - v_.index_select(0, b_)).numpy()


def _prior(prior_mean, n_items: int, anchor: int | None) -> np.ndarray:
    if prior_mean is None:
        mu = np.zeros(n_items)
    else:
        mu = np.asarray(prior_mean, dtype=np.float64)
        mu = np.full(n_items, float(mu)) if mu.ndim == 0 else mu.copy()
        if mu.shape != (n_items,):
            raise ValueError(f"prior_mean must be a scalar or one value per item ({n_items}), got shape {mu.shape}")
        row = _first_bad_row(~np.isfinite(mu))
        if row is not None:
            raise ValueError(f"prior_mean[{row}]={mu[row]} is not finite")
    if anchor is not None:
        mu[anchor] = 0.0  # the anchor sits at 0; zeroing its prior keeps its penalty and gradient at 0
    return mu


class _Hessian:
    """H = D − A − Aᵀ (+ l2 on D): the Laplacian of the comparison graph weighted by ℓ''(d)."""

    def __init__(self, comps: _Comparisons, n_items: int, l2: float, anchor: int | None):
        indptr = np.zeros(n_items + 1, dtype=np.int64)
        np.cumsum(np.bincount(comps.a, minlength=n_items), out=indptr[1:])
        index_dtype = np.int32 if max(n_items, comps.a.size) < 2**31 - 1 else np.int64
        self._matrix = sparse.csr_matrix(
            (np.zeros(comps.a.size), comps.b.astype(index_dtype), indptr.astype(index_dtype)),
            shape=(n_items, n_items),
        )
        self._comps, self._n, self._l2, self._anchor = comps, n_items, l2, anchor
        self.diagonal = np.full(n_items, l2)

    def update(self, hess: np.ndarray) -> None:
        """Set the per-comparison curvatures ℓ''(d_c) (in comparison order)."""
        self._matrix.data[:] = hess
        self.diagonal = np.bincount(self._comps.a, hess, self._n) + np.bincount(self._comps.b, hess, self._n) + self._l2
        if self._anchor is not None:
            self.diagonal[self._anchor] = 1.0

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """H v, with the anchor's row and column replaced by the identity."""
        if self._anchor is not None:
            v_anchor = v[self._anchor]
            v = v.copy()
            v[self._anchor] = 0.0
        out = self.diagonal * v - self._matrix @ v - self._matrix.T @ v
        if self._anchor is not None:
            out[self._anchor] = v_anchor
        return out


def _conjugate_gradient(hessian: _Hessian, rhs: np.ndarray, rtol: float, max_iter: int) -> tuple[np.ndarray, int]:
    """Solve H x = rhs by Jacobi-preconditioned CG to ‖r‖ ≤ rtol ‖rhs‖."""
    inv_diag = 1.0 / hessian.diagonal
    x = np.zeros_like(rhs)
    residual = rhs.copy()
    z = inv_diag * residual
    direction = z.copy()
    rz = residual @ z
    target = rtol * np.linalg.norm(rhs)
    for step in range(1, max_iter + 1):
        h_dir = hessian.matvec(direction)
        alpha = rz / (direction @ h_dir)
        x += alpha * direction
        residual -= alpha * h_dir
        if np.linalg.norm(residual) <= target:
            return x, step
        z = inv_diag * residual
        rz_next = residual @ z
        direction = z + (rz_next / rz) * direction
        rz = rz_next
    return x, max_iter


def _fit(link, item_a, item_b, p, weight, n_items, l2, prior_mean, anchor, tol, max_iter) -> FitResult:
    if not isinstance(link, (ProbitLink, LogitLink)):
        raise TypeError(f"unknown link {link!r}")
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0 (it keeps uncompared items finite), got {l2}")
    a, b, p, w, n_items = _validate(item_a, item_b, p, weight, n_items)
    if anchor is not None and not 0 <= anchor < n_items:
        raise ValueError(f"anchor={anchor} is outside [0, {n_items})")
    comps = _oriented(a, b, p, w)
    mu = _prior(prior_mean, n_items, anchor)

    def objective(s: np.ndarray, d: np.ndarray) -> float:
        return link.neg_log_likelihood(d, comps.p, comps.w, comps.soft) + 0.5 * l2 * float(np.sum((s - mu) ** 2))

    s = mu.copy()
    d = _difference(s, comps)
    f = objective(s, d)
    hessian = _Hessian(comps, n_items, l2, anchor)
    cg_total, converged, iterations = 0, False, 0
    grad_norm, first_grad_l2 = np.inf, None
    for iterations in range(max_iter + 1):
        g_c, h_c = link.derivatives(d, comps.p, comps.w, comps.soft)
        grad = np.bincount(comps.a, g_c, n_items) - np.bincount(comps.b, g_c, n_items) + l2 * (s - mu)
        if anchor is not None:
            grad[anchor] = 0.0
        hessian.update(h_c)
        grad_norm = float(np.abs(grad).max(initial=0.0))
        if grad_norm <= tol:
            converged = True
            break
        if iterations == max_iter:
            break
        grad_l2 = float(np.linalg.norm(grad))
        first_grad_l2 = first_grad_l2 or grad_l2
        forcing = min(0.05, grad_l2 / first_grad_l2)  # quadratic forcing: CG is cheap next to a Newton step
        step, cg_steps = _conjugate_gradient(hessian, -grad, forcing, max_iter=max(50, n_items))
        cg_total += cg_steps
        s, d, f = _line_search(objective, s, d, f, grad, step, comps)
    std_err = 1.0 / np.sqrt(hessian.diagonal)
    if anchor is not None:
        std_err[anchor] = 0.0
    log_likelihood = -link.neg_log_likelihood(_difference(s, comps), comps.p, comps.w, comps.soft)
    return FitResult(
        latent=s,
        std_err=std_err,
        log_likelihood=log_likelihood,
        objective=f,
        converged=converged,
        iterations=iterations,
        cg_iterations=cg_total,
        grad_norm=grad_norm,
    )


def _line_search(objective, s, d, f, grad, step, comps, armijo: float = 1e-4, max_halvings: int = 40):
    """Backtrack t = 1, 1/2, ... until −L(s + tΔ) ≤ −L(s) + armijo·t·∇ᵀΔ (round-off tolerated)."""
    d_step = _difference(step, comps)
    slope = float(grad @ step)
    slack = 1e-12 * max(1.0, abs(f))
    t = 1.0
    for _ in range(max_halvings):
        s_new, d_new = s + t * step, d + t * d_step
        f_new = objective(s_new, d_new)
        if f_new <= f + armijo * t * slope + slack:
            return s_new, d_new, f_new
        t *= 0.5
    return s, d, f
