"""Can a trained reward model tell inputs unlike its training data? Per response, a few signals of
"this input is unlike what the model trained on", each read as a detector of the shifted set:
its AUROC (the probability that a shifted response scores higher than an in-distribution test
response), with a 95 % bootstrap interval that resamples prompts within each set.

Signals: the head posterior's logit standard error (what `unirank score` reports); low |logit|;
on the head's input features and on the backbone's final hidden states mean-pooled over the input:
the Mahalanobis distance to the training sample (covariance shrunk 10 % towards its mean variance)
and the cosine distance to the nearest training response (on the pooled states: `unirank.model.novelty`,
what `unirank score` reports as novelty). Also where `unirank score`'s novelty percentile puts each
set: its median and the share above 0.95 (about 5 % for inputs drawn like the training data). And
both test sets' decided pairs pooled as one mixed deployment: accuracy over all of them, on the
familiar pairs only (neither response above the 95th percentile), and on as many of the most
certain pairs by |p − 0.5|.

    python benchmarks/ood.py --model DIR --data FILE --format F --shifted FILE --shifted-format F
        [--items 1000] [--validation-fraction 0.1 --test-fraction 0.3] [--name NAME]

The training sample: up to --items responses of the data's train split (the split the model
trained on, by the same fractions); in distribution: its test split; shifted: the other file's
test split. Writes benchmarks/results/ood-<name>.json.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import write_results  # noqa: E402
from unirank.domains.chat.source import Preferences  # noqa: E402
from unirank.metrics.bootstrap import grouped_interval  # noqa: E402
from unirank.metrics.calibration import pairwise_probability  # noqa: E402
from unirank.metrics.shift import UNFAMILIAR_ABOVE, novelty_percentiles  # noqa: E402
from unirank.model import Model  # noqa: E402
from unirank.model.novelty import fit_reference  # noqa: E402


def responses(path: str, fmt: str, split: str, fractions: tuple[float, float], limit: int | None):
    """(contexts, texts, prompt ids) of a split's responses; at most `limit`, drawn at random (seed 0)."""
    tables = Preferences(path, fmt, *fractions).load().split(split)
    contexts, texts, groups = tables.item_contexts(), tables.items["text"].to_list(), tables.items["group_id"].to_list()
    rows = np.arange(len(texts))
    if limit and len(rows) > limit:
        rows = np.sort(np.random.default_rng(0).choice(len(rows), limit, replace=False))
    return [contexts[i] for i in rows], [texts[i] for i in rows], np.asarray([groups[i] for i in rows])


def read_model(predictor, contexts: list, texts: list) -> dict[str, np.ndarray]:
    """Logits, the head's input features and the backbone's pooled final states (one pass)."""
    encoded = predictor.scorer.encode(contexts, texts)
    logits, features, states = predictor.scorer.score_encoded_with_features(encoded, states=True)
    return {"logits": logits, "features": features, "pooled": states}


def scored_pairs(predictor, reference, path: str, fmt: str, fractions: tuple[float, float]) -> dict[str, np.ndarray]:
    """Every decided test pair of a data set: whether the model orders it as the annotators do, its
    P(a ≻ b), whether either response is unfamiliar (novelty percentile > 0.95), and its prompt."""
    tables = Preferences(path, fmt, *fractions).load().split("test")
    read = read_model(predictor, tables.item_contexts(), tables.items["text"].to_list())
    logits, states = read["logits"], read["pooled"]
    comps = tables.indexed_comparisons()
    p = comps["p"].to_numpy()
    decided = p != 0.5
    a, b = comps["_a"].to_numpy()[decided], comps["_b"].to_numpy()[decided]
    prob = pairwise_probability(logits[a], logits[b], predictor.pairwise_link)
    percentile = novelty_percentiles(reference, states)
    return {
        "correct": ((prob > 0.5) == (p[decided] > 0.5)).astype(float),
        "prob": prob,
        "unfamiliar": np.maximum(percentile[a], percentile[b]) > UNFAMILIAR_ABOVE,
        "prompt": np.asarray([f"{path}:{g}" for g in comps["group_id"].to_numpy()[decided]]),
    }


def mixed_deployment(inside: dict, shifted: dict) -> dict:
    """Both test sets' pairs pooled, as traffic from both would arrive: accuracy over all, on the
    familiar pairs only (abstaining where a response is unfamiliar) and, at that same coverage, on
    the most certain pairs by |p − 0.5|; intervals over prompts."""
    pooled = {key: np.concatenate([inside[key], shifted[key]]) for key in inside}
    kept = ~pooled["unfamiliar"]
    by_certainty = np.zeros_like(kept)
    by_certainty[np.argsort(-np.abs(pooled["prob"] - 0.5), kind="stable")[: int(kept.sum())]] = True
    report = {"pairs": {"inside": len(inside["correct"]), "shifted": len(shifted["correct"])}}
    for name, rows in (
        ("all", np.ones_like(kept)),
        ("familiar only", kept),
        ("most certain, same coverage", by_certainty),
    ):
        correct, prompt = pooled["correct"][rows], pooled["prompt"][rows]
        interval, _ = grouped_interval(lambda r: float(correct[r].mean()), prompt)
        report[name] = {"coverage": float(rows.mean()), "accuracy": float(correct.mean()), "interval": interval}
    return report


def mahalanobis_to(train: np.ndarray):
    """x ↦ the Mahalanobis distance of each row of x to the training sample (covariance shrunk 10 %
    towards its mean variance), the covariance inverted once."""
    mean = train.mean(0)
    covariance = np.cov(train - mean, rowvar=False)
    covariance = 0.9 * covariance + 0.1 * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    precision = np.linalg.inv(covariance)
    return lambda x: np.einsum("ij,jk,ik->i", x - mean, precision, x - mean)


def auroc(shifted: np.ndarray, inside: np.ndarray) -> float:
    """P(a shifted response's signal > an in-distribution one's), ties counted half (Mann-Whitney)."""
    ranks = rankdata(np.concatenate([inside, shifted]))  # ties get their average rank
    n_in, n_out = len(inside), len(shifted)
    return float((ranks[n_in:].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out))


def grouped_auroc(
    shifted: np.ndarray, shifted_groups, inside: np.ndarray, inside_groups, resamples: int = 1000
) -> dict:
    """AUROC with a 95 % interval from resampling the prompts of each set (with replacement)."""
    members = [[np.flatnonzero(groups == g) for g in np.unique(groups)] for groups in (shifted_groups, inside_groups)]
    rng = np.random.default_rng(0)
    values = []
    for _ in range(resamples):
        rows = [np.concatenate([m[i] for i in rng.integers(0, len(m), len(m))]) for m in members]
        values.append(auroc(shifted[rows[0]], inside[rows[1]]))
    return {"auroc": auroc(shifted, inside), "interval": np.percentile(values, [2.5, 97.5]).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--format", required=True)
    parser.add_argument("--shifted", required=True)
    parser.add_argument("--shifted-format", required=True)
    parser.add_argument("--items", type=int, default=1000, help="training responses sampled (and shifted ones)")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--name", default="pandalm-model")
    args = parser.parse_args()
    torch.manual_seed(0)
    predictor = Model.from_pretrained(args.model)
    fractions = (args.validation_fraction, args.test_fraction)
    sets = {
        "train": responses(args.data, args.format, "train", fractions, args.items),
        "inside": responses(args.data, args.format, "test", fractions, None),
        "shifted": responses(args.shifted, args.shifted_format, "test", fractions, args.items),
    }
    read = {name: read_model(predictor, contexts, texts) for name, (contexts, texts, _) in sets.items()}
    train = read["train"]
    posterior = predictor.posterior
    head_distance, pooled_distance = mahalanobis_to(train["features"]), mahalanobis_to(train["pooled"])
    train_contexts = np.asarray(sets["train"][0])
    head_nearest = fit_reference(train["features"], train_contexts)
    pooled_nearest = fit_reference(train["pooled"], train_contexts)
    signals = {
        "head posterior: logit standard error": lambda r: np.sqrt(posterior.item_variance(r["features"])),
        "low |logit|": lambda r: -np.abs(r["logits"]),
        "head features: Mahalanobis distance": lambda r: head_distance(r["features"]),
        "head features: cosine distance to the nearest training response": lambda r: head_nearest.novelty(
            r["features"]
        ),
        "final hidden states (mean-pooled): Mahalanobis distance": lambda r: pooled_distance(r["pooled"]),
        "final hidden states (mean-pooled): cosine distance to the nearest training response (unirank's novelty)": (
            lambda r: pooled_nearest.novelty(r["pooled"])
        ),
    }
    rows = {}
    for name, signal in signals.items():
        rows[name] = grouped_auroc(
            signal(read["shifted"]), sets["shifted"][2], signal(read["inside"]), sets["inside"][2]
        )
        low, high = rows[name]["interval"]
        print(f"{name:90s} AUROC {rows[name]['auroc']:.3f} [{low:.3f}, {high:.3f}]")
    percentiles = {}
    for name in ("inside", "shifted"):
        share = pooled_nearest.percentile(pooled_nearest.novelty(read[name]["pooled"]))
        percentiles[name] = {"median": float(np.median(share)), "above_0.95": float((share > 0.95).mean())}
        print(f"novelty percentile, {name}: median {np.median(share):.3f}, above 0.95: {(share > 0.95).mean():.1%}")
    mixed = mixed_deployment(
        scored_pairs(predictor, pooled_nearest, args.data, args.format, fractions),
        scored_pairs(predictor, pooled_nearest, args.shifted, args.shifted_format, fractions),
    )
    for name in ("all", "familiar only", "most certain, same coverage"):
        row, (low, high) = mixed[name], mixed[name]["interval"]
        print(
            f"mixed test pairs, {name}: coverage {row['coverage']:.1%}, "
            f"accuracy {row['accuracy']:.3f} [{low:.3f}, {high:.3f}]"
        )
    report = {
        "benchmark": "ood",
        "machine": f"{platform.platform()}, 2 CPU cores, no GPU",
        "model": args.model,
        "data": {"train and inside": args.data, "shifted": args.shifted},
        "responses": {name: len(texts) for name, (_, texts, _) in sets.items()},
        "prompts": {name: len(np.unique(groups)) for name, (_, _, groups) in sets.items()},
        "auroc": rows,
        "novelty_percentile": percentiles,
        "mixed_deployment": mixed,
    }
    write_results(f"ood-{args.name}", False, report)


if __name__ == "__main__":
    main()
