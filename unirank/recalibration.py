"""Recalibration on a new domain: σ(a·r + b) refitted on a few of its labels, with the ECE before
and after measured on labels the fit did not see.

A model moved to another collection or another kind of prompt keeps its ranking far better than
its probabilities (the base rate shifts, the scale stretches). Refitting the affine map of the
logits on the new domain's labels (absolute labels; else comparisons, a temperature: docs/math.md)
and folding it into the head restores the probability without touching the order. The held-out
ECE before and after: `unirank.metrics.cross_fit`.
"""

from __future__ import annotations

from pathlib import Path


def write_recalibrated(model, out: Path, record: dict) -> Path:
    """A new export in `out` (never over the folder `model` was loaded from): σ(a·r + b) folded
    into the head (a yes/no export: into the LM head's "yes" row, b = 0), the head posterior's
    covariance scaled by a² (r' = a·r + b), and the recalibration recorded in unirank.json (with
    γ of the fused ranking where it was refitted: `unirank.model.Model.fusion_weight` reads it)."""
    a, b = record["a"], record["b"]
    model.scorer.fold_affine(a, b)
    if model.posterior is not None:
        model.posterior.covariance = model.posterior.covariance * a**2
    calibration = dict(model.info["calibration"])
    earlier = calibration.get("recalibration") or {}
    if "fusion" not in record and "fusion" in earlier:  # refitted only from ranked lists: kept otherwise
        record = {**record, "fusion": earlier["fusion"]}
    calibration["recalibration"] = {"from": str(model.source), **record}
    calibration["probability"] += f"; recalibrated: sigmoid({a:.4g}·r + {b:.4g}) on {record['fitted_on']}"
    model.info = {**model.info, "calibration": calibration}
    return model.save_pretrained(out)
