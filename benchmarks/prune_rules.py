"""Is it the stopping rule or the model? Stopping rules for a process reward model compared on the
same prefix probabilities (each step scored on its own prefix, as `unirank prune` scores it):

- first P < t (what `unirank prune` does);
- the chain's product of P's < t (P(no error so far) if steps were independent);
- a step's logit more than d below the chain's best logit so far;
- a step's logit more than d below the chain's mean logit so far;
- a step's P below t times the chain's best P so far.

For each rule: the parameter chosen on the validation problems as `unirank prune` chooses its
threshold (the largest that keeps ≥ --keep of the correct solutions' steps in --keep-confidence of
bootstrap resamples of the problems), what it keeps and stops on the test problems, and the best any
parameter could do on the test problems themselves at ≥ --keep kept (an upper bound no choice on
validation can beat): the share of wrong solutions stopped before their last step.

    python benchmarks/prune_rules.py --model DIR [--steps FILE] [--keep 0.95] [--keep-confidence 0.9]

Writes benchmarks/results/prune-rules.json.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, write_results  # noqa: E402

GRID = np.round(np.arange(0.005, 1.0, 0.005), 3)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _after_first(mask_from_second: np.ndarray) -> int | None:
    """A rule that compares a step with the steps before it never stops at the first step."""
    return _first(np.r_[False, mask_from_second])


RULES = {
    "first P < t": lambda p, t: _first(p < t),
    "product of P's < t": lambda p, t: _first(np.cumprod(p) < t),
    "logit below the best so far by more than 10·t": lambda p, t: _after_first(
        _logit(p[1:]) - np.maximum.accumulate(_logit(p))[:-1] < -10 * t
    ),
    "logit below the mean so far by more than 10·t": lambda p, t: _after_first(
        _logit(p[1:]) - (np.cumsum(_logit(p)) / np.arange(1, len(p) + 1))[:-1] < -10 * t
    ),
    "P < t × the best P so far": lambda p, t: _after_first(p[1:] < t * np.maximum.accumulate(p)[:-1]),
}


def outcomes(rule, probabilities: list, labels: list, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per solution: correct steps kept (0 for a wrong solution), its correct steps (0 likewise), and
    whether it is a wrong solution stopped before its last step."""
    kept, total, stopped = [], [], []
    for p, label in zip(probabilities, labels):
        p = np.nan_to_num(np.asarray(p, dtype=np.float64), nan=1.0)
        stop, wrong = rule(p, t), any(x == 0.0 for x in label)
        kept.append(0 if wrong else (len(p) if stop is None else stop))
        total.append(0 if wrong else len(p))
        stopped.append(wrong and stop is not None and stop < len(p) - 1)
    return np.array(kept), np.array(total), np.array(stopped)


def summary(rule, part: dict, t: float) -> dict:
    kept, total, stopped = outcomes(rule, part["probabilities"], part["labels"], t)
    return {"kept": kept.sum() / total.sum(), "stopped": stopped.sum() / part["wrong"]}


def choose(rule, part: dict, keep: float, confidence: float, resamples: int = 1000) -> float:
    """Of the parameters whose kept share is ≥ keep in `confidence` of resampled problems, the one
    that stops the most wrong validation chains, the largest on ties (for `first P < t`: what
    `unirank prune` chooses, on a grid twice as fine; the other rules' parameters need not act in
    the same direction)."""
    from unirank.domains.process.pruning import problem_draws

    draws = problem_draws(part["groups"], resamples)
    best, most = float(GRID[0]), -1.0
    for t in GRID:
        kept, total, stopped = outcomes(rule, part["probabilities"], part["labels"], float(t))
        share = (draws @ kept) / np.maximum(draws @ total, 1)
        if np.quantile(share, 1 - confidence) >= keep and stopped.mean() >= most:
            best, most = float(t), stopped.mean()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--steps", default=str(ROOT.parent / "shared" / "data" / "prmbench" / "target_data.jsonl"))
    parser.add_argument("--keep", type=float, default=0.95)
    parser.add_argument("--keep-confidence", type=float, default=0.9)
    args = parser.parse_args()
    from unirank.domains.process.pruning import prefix_probabilities
    from unirank.domains.process.source import StepSolutions
    from unirank.model import Model

    scorer = Model.from_pretrained(args.model).scorer
    tables = StepSolutions(str(Path(args.steps).resolve()), 0.1, 0.2).load()
    parts = {}
    for split in ("validation", "test"):
        part = tables.split(split)
        labels = part.items["step_labels"].to_list()
        parts[split] = {
            "probabilities": prefix_probabilities(scorer, part.item_contexts(), part.items["steps"].to_list()),
            "labels": labels,
            "groups": part.items["group_id"].to_numpy(),
            "wrong": sum(any(x == 0.0 for x in label) for label in labels),
        }
    rows = {}
    for name, rule in RULES.items():
        t = choose(rule, parts["validation"], args.keep, args.keep_confidence)
        on_test = summary(rule, parts["test"], t)
        ceiling = max(
            (s["stopped"], float(u)) for u in GRID if (s := summary(rule, parts["test"], float(u)))["kept"] >= args.keep
        )
        rows[name] = {"parameter": t, "test": on_test, "best_on_test": {"stopped": ceiling[0], "parameter": ceiling[1]}}
        print(
            f"{name:48s} t={t:.3f}: test kept {on_test['kept']:.3f}, stopped {on_test['stopped']:.3f}; "
            f"best on test at kept ≥ {args.keep}: stopped {ceiling[0]:.3f} (t={ceiling[1]:.3f})"
        )
    report = {
        "benchmark": "prune_rules",
        "machine": f"{platform.platform()}, 2 CPU cores, no GPU",
        "model": args.model,
        "keep": args.keep,
        "keep_confidence": args.keep_confidence,
        "solutions": {split: len(part["labels"]) for split, part in parts.items()},
        "wrong_solutions": {split: part["wrong"] for split, part in parts.items()},
        "rules": rows,
    }
    write_results("prune-rules", False, report)


if __name__ == "__main__":
    main()
