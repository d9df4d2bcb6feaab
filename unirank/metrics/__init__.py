"""The measures every layer shares, below training and evaluation alike: retrieval metrics (trec_eval's
code via ir-measures), pairwise accuracy, calibration (ECE, Brier, NLL), bootstrap intervals,
selective prediction, thresholds, novelty shares, and the fused ranking's weight."""

from unirank.metrics.calibration import calibration_metrics, pairwise_calibration, pairwise_probability
from unirank.metrics.pairwise import pairwise_accuracy
from unirank.metrics.retrieval import retrieval_metrics
from unirank.metrics.thresholds import threshold_report

__all__ = [
    "calibration_metrics",
    "pairwise_accuracy",
    "pairwise_calibration",
    "pairwise_probability",
    "retrieval_metrics",
    "threshold_report",
]
