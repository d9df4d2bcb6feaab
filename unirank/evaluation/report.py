"""`unirank evaluate`'s report: metrics.json, the reliability diagram, per-category tables and the
printed summary (the domain's own lines, then those every domain shares)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from unirank.atomic import atomic_path
from unirank.evaluation.plots import reliability_plot


def write_report(report: dict, out_dir: str | Path, domain) -> str:
    """metrics.json, reliability.png, per_category.csv and summary.txt into out_dir (`domain`: the
    `unirank.domains.Domain` whose evaluation made the report); returns the printed summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = {name: entry.pop("_curve") for name, entry in report["systems"].items() if "_curve" in entry}
    if curves:
        reliability_plot(curves, out_dir / "reliability.png", domain.reliability_title)
    with atomic_path(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    rows = [
        {"system": name, "category": cat, **values}
        for name, entry in report["systems"].items()
        for cat, values in entry.get("per_category", {}).items()
    ]
    if rows:
        with atomic_path(out_dir / "per_category.csv") as tmp:
            pl.DataFrame(rows).write_csv(tmp)
    summary = summarise(report, domain.summary_lines(report))
    with atomic_path(out_dir / "summary.txt") as tmp:
        tmp.write_text(summary + "\n")
    return summary


def summarise(report: dict, domain_lines: list[str]) -> str:
    """The domain's fixed-width table (one line per system, each figure with its 95 % bootstrap
    interval over groups and the sample size), then the lines every domain shares: selective
    prediction, the head posterior, the calibrated reference and novelty."""
    lines = list(domain_lines)
    lines += [_selective_line(name, e) for name, e in report["systems"].items() if "selective" in e]
    lines += [_uncertainty_line(name, e) for name, e in report["systems"].items() if "selective_uncertainty" in e]
    lines += [_calibrated_line(name, e) for name, e in report["systems"].items() if _calibration(e)]
    lines += [shift_line(name, e["shift"]) for name, e in report["systems"].items() if "shift" in e]
    return "\n".join(lines)


def interval_text(entry: dict, metric: str) -> str:
    """An entry's 95 % interval of `metric` as "[low, high]"."""
    low, high = entry.get("intervals", {}).get(metric, [float("nan")] * 2)
    return f"[{low:.3f}, {high:.3f}]"


def _calibration(entry: dict) -> dict | None:
    """The entry's calibration block that carries a calibrated reference (any domain), or None."""
    for key in ("calibration", "pairwise_calibration", "step_calibration"):
        if (entry.get(key) or {}).get("calibrated_reference"):
            return entry[key]
    return None


def _calibrated_line(name: str, entry: dict) -> str:
    """The observed ECE beside what a perfectly calibrated model would read on the same sample."""
    cal = _calibration(entry)
    ref = cal["calibrated_reference"]
    low, high = ref["interval"]
    return (
        f"{name:40s} ECE {cal['ece']:.4f}; a perfectly calibrated model would read {ref['mean']:.4f} "
        f"[{low:.4f}, {high:.4f}] on this sample (p = {ref['p_value']:.2f})"
    )


def shift_line(name: str, shift: dict) -> str:
    """How many inputs are unlike the training data, and (pairs) the accuracy on and off them."""
    line = (
        f"{name:40s} novelty: {shift['unfamiliar_share']:.1%} of {shift['inputs']} inputs beyond the "
        f"{shift['unfamiliar_above']:.0%} percentile of the training inputs (≈{shift['expected_in_distribution']:.0%} "
        f"in distribution), median percentile {shift['median_percentile']:.2f}"
    )
    for side, e in shift.get("pairs", {}).items():
        if e["n"]:
            low, high = e["interval"]
            line += f"; accuracy {e['accuracy']:.3f} [{low:.3f}, {high:.3f}] on {e['n']} {side} pairs"
    test = shift.get("set_test")
    if test and test["shifted"]:
        from unirank.metrics.shift import shift_sentence

        line += f"\n{'':40s} SHIFTED: {shift_sentence(test)}; the calibration figures above do not carry either"
    return line


def _uncertainty_line(name: str, entry: dict) -> str:
    """The same, abstaining by the posterior predictive probability (the head's uncertainty included)."""
    sel = entry["selective_uncertainty"]
    low, high = sel["aurc_minus_plain_interval"]
    return (
        f"{name:40s} ... by the head posterior: {sel['accuracy_at'].get('80%', float('nan')):.3f} on 80 %; AURC "
        f"{sel['aurc']:.3f}, {sel['aurc_minus_plain']:+.4f} [{low:+.4f}, {high:+.4f}] against |p − 0.5| alone"
    )


def threshold_lines(report: dict, groups: str, reading: str) -> list[str]:
    """Every system's threshold rows (`threshold_line`), in system order."""
    return [
        threshold_line(n, row, groups, reading) for n, e in report["systems"].items() for row in e.get("thresholds", [])
    ]


def threshold_line(name: str, row: dict, groups: str, reading: str) -> str:
    """Precision and recall of "probability > t", and the spread of precision across groups."""
    precision = "-" if row["precision"] is None else f"{row['precision']:.3f}"
    if row.get("precision_interval"):
        precision += " [{:.3f}, {:.3f}]".format(*row["precision_interval"])
    recall = "-" if row["recall"] is None else f"{row['recall']:.3f}"
    spread = "-" if row["group_precision_std"] is None else f"{row['group_precision_std']:.3f}"
    return (
        f"{name:40s} {reading} > {row['threshold']:.2f}: {row['predicted_positive']:6d} predicted, precision "
        f"{precision}, recall {recall}, precision spread across {row['groups_with_predictions']} {groups} {spread}"
    )


def _selective_line(name: str, entry: dict) -> str:
    """Accuracy of the decisions p > 0.5 when abstaining on the least certain (smallest |p − 0.5|)."""
    sel = entry["selective"]
    at, promised = sel["accuracy_at"], sel.get("promised_at", {})
    nan = float("nan")
    bound = sel.get("calibrated_gain_bound_80")
    gain = (
        f"a calibrated model this accurate gains at most {bound:+.3f}"
        if bound is not None
        else "below chance: no calibrated model is this inaccurate, so no bound applies"
    )
    return (
        f"{name:40s} decisions p > 0.5, most certain first: accuracy {at.get('100%', nan):.3f} on all "
        f"{sel['n']}, {at.get('80%', nan):.3f} on 80 % (the probabilities promise {promised.get('80%', nan):.3f}; "
        f"{gain}), {at.get('50%', nan):.3f} on 50 %; AURC {sel['aurc']:.3f}"
    )
