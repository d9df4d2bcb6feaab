"""What a Thurstone / Bradley-Terry fit returns, and whether it is usable."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_STD_ERR = 5.0
"""The largest standard error of a latent a usable fit may have: at 5 the latent's 95 % interval
spans ±9.8, every probability from Φ(−9.8) to Φ(9.8), so the target says nothing. With the prior
l2 every standard error is at most 1/√l2, so this is reached only for l2 < 0.04."""


@dataclass(frozen=True)
class FitResult:
    """The fitted latents and how the fit went.

    latent: s per item (numpy float64, length n_items); the anchor, if any, is exactly 0.
    std_err: conditional standard error 1/sqrt(H_ii) per item, H the Hessian of the negative
        penalised log-likelihood at the optimum: the uncertainty of s_i with the other latents held
        at their estimates. It ignores covariance between items, so it is a lower bound on the
        marginal standard error sqrt((H⁻¹)_ii); the anchor's is 0.
    log_likelihood: Σ w [p log F(d) + (1 − p) log F(−d)] at the optimum (no penalty).
    objective: the minimised −L(s), penalty included.
    converged: max |∇| ≤ tol was reached within max_iter Newton steps.
    iterations: Newton steps taken; cg_iterations: conjugate-gradient steps over all of them.
    determined: converged, and no latent's standard error above MAX_STD_ERR: a small gradient at
        latents the data and the prior leave free (a vanishing l2 with one-sided comparisons) is not
        a fit to report or to train on.
    """

    latent: np.ndarray
    std_err: np.ndarray
    log_likelihood: float
    objective: float
    converged: bool
    iterations: int
    cg_iterations: int
    grad_norm: float

    @property
    def undetermined(self) -> int:
        """How many latents have a standard error above MAX_STD_ERR."""
        return int(np.sum(self.std_err > MAX_STD_ERR))

    @property
    def determined(self) -> bool:
        return self.converged and not self.undetermined

    def problem(self, what: str) -> str | None:
        """Why the fit of `what` cannot be used (None where it can), with what to do."""
        if not self.converged:
            return f"the fit of {what} did not converge in {self.iterations} Newton steps"
        if self.undetermined:
            return (
                f"the fit of {what} converged, but {self.undetermined} latent(s) have standard errors above "
                f"{MAX_STD_ERR:g} (up to {float(self.std_err.max()):.3g}): the data do not determine them "
                "(a vanishing l2, or comparisons all one way)"
            )
        return None
