"""Paired-comparison fitting: Thurstone and Bradley-Terry latents, pair sampling, targets.

Framework-free (numpy, scipy, polars): no Lightning, no transformers.
"""

from unirank.fitting.result import FitResult
from unirank.fitting.sampling import sample_cycle_pairs
from unirank.fitting.solver import fit_bradley_terry, fit_thurstone
from unirank.fitting.targets import (
    ANCHOR_ITEM,
    anchor_comparisons,
    fit_score_map,
    fit_score_scale,
    fit_targets,
)

__all__ = [
    "ANCHOR_ITEM",
    "FitResult",
    "anchor_comparisons",
    "fit_bradley_terry",
    "fit_score_map",
    "fit_score_scale",
    "fit_targets",
    "fit_thurstone",
    "sample_cycle_pairs",
]
