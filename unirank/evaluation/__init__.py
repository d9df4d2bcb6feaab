"""Rank quality and calibration, side by side: retrieval metrics (trec_eval's code via ir-measures),
RewardBench-style pairwise accuracy, calibration (ECE, Brier, NLL) and threshold reports."""

from unirank.evaluation.calibration import calibration_metrics, pairwise_calibration, pairwise_probability
from unirank.evaluation.pairwise import pairwise_accuracy
from unirank.evaluation.retrieval import retrieval_metrics
from unirank.evaluation.thresholds import threshold_report

__all__ = [
    "calibration_metrics",
    "pairwise_accuracy",
    "pairwise_calibration",
    "pairwise_probability",
    "retrieval_metrics",
    "threshold_report",
]
