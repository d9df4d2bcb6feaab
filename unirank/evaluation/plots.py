"""The reliability diagram: observed frequency against predicted probability, one line per model,
over a histogram of the predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unirank.atomic import atomic_path
from unirank.metrics.calibration import calibration_metrics, reliability_table


def reliability_plot(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str, n_bins: int = 15
) -> None:
    """Reliability diagram (mean label per probability bin, one line per model) over a histogram of
    the predicted probabilities."""
    tables = {
        name: (reliability_table(prob, label, n_bins), calibration_metrics(prob, label, n_bins)["ece"])
        for name, (prob, label) in curves.items()
    }
    reliability_plot_from_tables(tables, path, title)


def reliability_plot_from_tables(tables: dict[str, tuple[list[dict], float]], path: Path, title: str) -> None:
    """The same diagram from reliability tables ({name: (rows of reliability_table, ECE)}): the
    observed frequency against the mean probability of each bin above, the bin counts below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 7), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    for offset, (name, (table, ece)) in enumerate(tables.items()):
        filled = [row for row in table if row["count"]]
        top.plot([r["mean_prob"] for r in filled], [r["mean_label"] for r in filled], marker="o",
                 label=f"{name} (ECE {ece:.3f})")  # fmt: skip
        width = (table[0]["high"] - table[0]["low"]) / (len(tables) + 1)
        bottom.bar([r["low"] + width * (offset + 0.5) for r in table], [r["count"] for r in table], width=width,
                   label=name)  # fmt: skip
    top.set_ylabel("observed frequency")
    top.set_title(title)
    top.legend(loc="upper left", fontsize=8)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    bottom.set_yscale("log")
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("count")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
