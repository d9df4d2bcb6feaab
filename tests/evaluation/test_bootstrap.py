"""Bootstrap intervals over groups cover the true value at about their level."""

import numpy as np

from unirank.evaluation.bootstrap import ece_fast, grouped_interval, mean_interval
from unirank.evaluation.calibration import calibration_metrics


def test_mean_interval_covers_a_known_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(200):
        sample = rng.normal(0.6, 0.2, 150)
        low, high = mean_interval(sample, resamples=400, seed=trial)
        covered += low <= 0.6 <= high
    assert 0.9 <= covered / 200 <= 0.99


def test_grouped_interval_resamples_whole_groups():
    rng = np.random.default_rng(1)
    group = np.repeat(np.arange(50), 20)
    offsets = rng.normal(0, 1, 50)[group]  # values within a group move together
    values = offsets + rng.normal(0, 0.1, group.size)
    (low, high), n = grouped_interval(lambda rows: float(values[rows].mean()), group, resamples=400)
    naive_low, naive_high = mean_interval(values, resamples=400)
    assert n == 50
    assert (high - low) > 3 * (naive_high - naive_low)  # rows of a group are not independent samples


def test_fast_ece_equals_the_reported_ece():
    rng = np.random.default_rng(2)
    prob = rng.random(3000)
    label = (rng.random(3000) < prob**1.5).astype(float)
    assert abs(ece_fast(prob, label) - calibration_metrics(prob, label)["ece"]) < 1e-6
