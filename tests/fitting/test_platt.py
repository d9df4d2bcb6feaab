"""The final calibration σ(a·r + b): recovered from labels and from comparisons; the stage-1 score map."""

import numpy as np
import pytest
from scipy import special

from unirank.fitting import fit_score_map
from unirank.fitting.links import pairwise_reading
from unirank.fitting.platt import fit_platt


def test_platt_recovers_a_and_b_from_labels():
    rng = np.random.default_rng(0)
    r = rng.normal(0, 2, 20000)
    label = (rng.random(r.size) < special.expit(0.5 * r - 1.0)).astype(float)
    label[::7] = np.nan  # unlabelled rows are ignored
    fit = fit_platt(r, label=label)
    assert fit.evidence == "labels" and fit.n == int((~np.isnan(label)).sum())
    assert fit.a == pytest.approx(0.5, abs=0.03) and fit.b == pytest.approx(-1.0, abs=0.05)


@pytest.mark.parametrize("reading", ["bradley-terry", "thurstone"])
def test_platt_recovers_a_temperature_from_comparisons(reading):
    rng = np.random.default_rng(1)
    r = rng.normal(0, 1, 4000)
    a, b = rng.integers(0, r.size, (2, 20000))
    keep = a != b
    a, b = a[keep], b[keep]
    truth = pairwise_reading(0.4 * r[a], 0.4 * r[b], reading)
    p = (rng.random(a.size) < truth).astype(float)
    fit = fit_platt(r, label=np.full(r.size, np.nan), comp_a=a, comp_b=b, p=p, reading=reading, with_bias=False)
    assert fit.evidence == "comparisons" and fit.b == 0.0
    assert fit.a == pytest.approx(0.4, abs=0.04)


def test_platt_without_evidence_is_an_error():
    with pytest.raises(ValueError, match="needs labelled items or comparisons"):
        fit_platt(np.zeros(3), label=np.full(3, np.nan))


def test_score_map_puts_scores_on_the_anchor_scale():
    rng = np.random.default_rng(2)
    r = rng.normal(0, 1, 5000)
    latent = 1.5 * r - 0.7
    label = (rng.random(r.size) < special.ndtr(latent)).astype(float)
    a, b = rng.integers(0, r.size, (2, 5000))
    p = (rng.random(a.size) < special.ndtr(latent[a] - latent[b])).astype(float)
    alpha, beta = fit_score_map(r[a], r[b], p, np.ones(a.size), r, label, np.ones(r.size))
    assert alpha == pytest.approx(1.5, abs=0.1) and beta == pytest.approx(-0.7, abs=0.08)
