"""Abstaining on the least certain decisions raises accuracy exactly as far as the probabilities are right."""

import numpy as np
import pytest

from unirank.metrics.selective import selective_report


def test_calibrated_probabilities_gain_accuracy_by_abstaining():
    rng = np.random.default_rng(0)
    prob = rng.uniform(0, 1, 20_000)
    label = (rng.uniform(0, 1, prob.size) < prob).astype(float)  # calibrated by construction
    report = selective_report(prob, label)
    at = report["accuracy_at"]
    assert at["100%"] == pytest.approx(0.75, abs=0.01)  # E[max(p, 1 - p)] for p ~ U(0, 1)
    assert at["80%"] == pytest.approx(0.80, abs=0.01)  # |p - 0.5| > 0.1: E[max(p, 1 - p)] = 0.8
    assert at["50%"] == pytest.approx(0.875, abs=0.01)
    assert report["n"] == prob.size
    for coverage, accuracy in at.items():  # calibrated: the probabilities promise what is observed
        assert report["promised_at"][coverage] == pytest.approx(accuracy, abs=0.01)
    assert report["calibrated_gain_bound_80"] == pytest.approx(0.25 * (0.75 - 0.5), abs=0.003)
    assert at["80%"] - at["100%"] <= report["calibrated_gain_bound_80"] + 0.005


def test_the_gain_bound_is_reached_by_a_calibrated_model_with_coin_flips_at_the_bottom():
    # 80 % of decisions at p = 0.75 (right 3 in 4), 20 % at p = 0.5 exactly a coin: A = 0.7
    prob = np.r_[np.full(8000, 0.75), np.full(2000, 0.5001)]
    label = np.r_[np.arange(8000) % 4 != 0, np.arange(2000) % 2 == 0].astype(float)
    report = selective_report(prob, label)
    assert report["accuracy_at"]["100%"] == pytest.approx(0.70, abs=1e-3)
    gain = report["accuracy_at"]["80%"] - report["accuracy_at"]["100%"]
    assert gain == pytest.approx(report["calibrated_gain_bound_80"], abs=1e-3) and gain == pytest.approx(0.05, abs=1e-3)


def test_a_confidence_that_says_nothing_gains_nothing_and_the_area_tells():
    rng = np.random.default_rng(1)
    informative = rng.uniform(0, 1, 20_000)
    label = (rng.uniform(0, 1, informative.size) < informative).astype(float)
    uninformative = rng.uniform(0.45, 0.55, label.size)  # near 0.5 and unrelated to the label
    good, bad = selective_report(informative, label), selective_report(uninformative, label)
    assert bad["accuracy_at"]["80%"] == pytest.approx(bad["accuracy_at"]["100%"], abs=0.02)
    assert good["aurc"] < bad["aurc"]


def test_no_decisions_is_not_a_number():
    assert selective_report([], [])["n"] == 0
