"""Reward models moved between preference sets: trained on one of PandaLM / HH-RLHF harmless, read on
the other. Per direction: accuracy, pairwise ECE and the accuracy the probabilities promise (mean
max(P, 1 − P) over the decided pairs: what `evaluate` prints) in domain and on the shifted set; then
`unirank recalibrate`'s fit on n = 25 / 50 / 100 / 200 labelled pairs of the shifted set.

Models: `lightning_configs/reward.yaml` on each set's train split (validation 0.1, test 0.3 by prompt,
as benchmarks/reward.py splits), reused from runs/shift-reward/<set>/model when there. Recalibration
curve: per repeat the shifted test split's prompts are halved at random; n pairs drawn from the
first half fit the temperature (σ(a·r), as `recalibrate` fits on preference pairs) and the other half
(prompts the fit never saw) is read before and after: pairwise ECE (both orders), accuracy and the
promise; the median over repeats with its 2.5–97.5 % range. Decisions (benchmarks/decisions.py):
"this response is preferred" at P ≥ 0.5 / 0.7, plain, conservative and shift-aware, in domain and
shifted.

    python benchmarks/shift_reward.py [--quick] [--repeats 20] [--hh-batches N]
Writes benchmarks/results/shift-reward.json (--quick: 2 batches per epoch, 64 tokens, 3 repeats,
into runs/shift-reward-quick and shift-reward-quick.json: a smoke check).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, fit_command, machine, median_range, run_timed, write_results  # noqa: E402
from benchmarks.decisions import pair_decisions  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
SETS = {
    "pandalm": (SHARED / "pandalm" / "testset-v1.json", "pandalm"),
    "hh-rlhf": (SHARED / "hh-rlhf-harmless" / "test.jsonl.gz", "hh-rlhf"),
    "prmbench": (SHARED / "prmbench" / "target_data.jsonl", "prmbench"),
}
VALIDATION, TEST = 0.1, 0.3
LABELS = (25, 50, 100, 200)


def train(name: str, out: Path, quick: bool, batches: int | None = None) -> float:
    """The reward recipe on one set's train split (seconds; 0 when the model is reused); batches:
    at most this many batches per epoch (a screen at reduced cost)."""
    if (out / "model" / "unirank.json").exists():
        return 0.0
    path, kind = SETS[name]
    data = [
        "--data.source.init_args.path", str(path), "--data.source.init_args.format", kind,
        "--data.source.init_args.validation_fraction", str(VALIDATION),
        "--data.source.init_args.test_fraction", str(TEST),
    ]  # fmt: skip
    extra = ["--trainer.limit_train_batches", "2" if quick else str(batches)] if quick or batches else []
    return run_timed(fit_command("lightning_configs/reward.yaml", data, 64 if quick else 256, 5e-5, (2, 1), out, extra))


def pairs_of(model, name: str, split: str | None = "test") -> dict:
    """The decided comparisons of a set's `split` (None: the whole set), scored: r of both items, p,
    prompt."""
    from unirank.domains.chat.source import Preferences
    from unirank.evaluation.reading import read_items

    path, kind = SETS[name]
    tables = Preferences(str(path), kind, validation_fraction=VALIDATION, test_fraction=TEST).load()
    tables = tables.split(split) if split else tables
    comps = tables.indexed_comparisons()
    scores, features, states = read_items(model, tables)
    decided = comps["p"].to_numpy() != 0.5
    chosen = comps.filter(decided)
    a, b = chosen["_a"].to_numpy(), chosen["_b"].to_numpy()
    return {
        "r_a": np.asarray(scores)[a],
        "r_b": np.asarray(scores)[b],
        "p": chosen["p"].to_numpy(),
        "prompt": chosen["group_id"].to_numpy(),
        "f_a": features[a],
        "f_b": features[b],
        "states": states,
    }


def sides_with(prob: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Whether each pair's reading sides with its observed preference (a tie, P = 0.5, is wrong:
    RewardBench's convention)."""
    return (prob > 0.5) == (p > 0.5)


def reading(pairs: dict, rows: np.ndarray, link: str, a: float = 1.0) -> dict:
    """Accuracy, the promise and the pairwise ECE of σ-read pairs `rows` with the logits scaled by a."""
    from unirank.fitting.links import pairwise_reading
    from unirank.metrics.calibration import both_orders, calibration_error

    prob = pairwise_reading(a * pairs["r_a"][rows], a * pairs["r_b"][rows], link)
    p = pairs["p"][rows]
    correct = sides_with(prob, p)
    return {
        "accuracy": float(correct.mean()),
        "promised": float(np.maximum(prob, 1 - prob).mean()),
        "pairwise_ece": calibration_error(*both_orders(prob, p)),
    }


def with_interval(pairs: dict, link: str) -> dict:
    """The reading of every pair, with 95 % intervals resampling prompts."""
    from unirank.metrics.bootstrap import grouped_interval

    rows = np.arange(len(pairs["p"]))
    figures = reading(pairs, rows, link)
    for key in list(figures):
        figures[f"{key}_interval"] = grouped_interval(
            lambda picked: reading(pairs, picked, link)[key], pairs["prompt"]
        )[0]
    figures["pairs"], figures["prompts"] = len(rows), len(np.unique(pairs["prompt"]))
    figures["promise_minus_accuracy"] = figures["promised"] - figures["accuracy"]
    return figures


def decisions_of(model, pairs: dict) -> dict:
    """Plain, conservative and shift-aware decisions on the pairs (benchmarks/decisions.py)."""
    return pair_decisions(model, pairs["r_a"], pairs["r_b"], pairs["f_a"], pairs["f_b"], pairs["states"],
                          pairs["p"], pairs["prompt"])  # fmt: skip


def recalibration_curve(pairs: dict, link: str, repeats: int, seed: int = 0) -> dict:
    """Held-out readings after a temperature fit on n labelled pairs (see the module doc)."""
    from unirank.fitting.platt import fit_platt

    rng = np.random.default_rng(seed)
    prompts = np.unique(pairs["prompt"])
    scores = np.concatenate([pairs["r_a"], pairs["r_b"]])
    n_pairs = len(pairs["p"])
    runs: dict[str, list[dict]] = {"as_trained": [], **{f"{n}_labels": [] for n in LABELS}}
    for _ in range(repeats):
        half = rng.permutation(prompts)[: len(prompts) // 2]
        pool = np.flatnonzero(np.isin(pairs["prompt"], half))
        held = np.flatnonzero(~np.isin(pairs["prompt"], half))
        runs["as_trained"].append(reading(pairs, held, link))
        for n in LABELS:
            chosen = rng.choice(pool, size=min(n, len(pool)), replace=False)
            fit = fit_platt(scores, comp_a=chosen, comp_b=chosen + n_pairs, p=pairs["p"][chosen], reading=link)
            runs[f"{n}_labels"].append(reading(pairs, held, link, fit.a) | {"a": fit.a})

    return {
        name: {key: median_range([run[key] for run in rows]) for key in rows[0]}
        | {"promise_minus_accuracy": median_range([run["promised"] - run["accuracy"] for run in rows])}
        for name, rows in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke check at the smallest sizes")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--hh-batches", type=int, help="at most this many batches per epoch on HH-RLHF (a screen)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "shift-reward"))
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.out = 3, str(ROOT / "runs" / "shift-reward-quick")
    from unirank.model import Model

    result = {"machine": machine(), "directions": {}, "repeats": args.repeats}
    for trained_on, shifted in (("pandalm", "hh-rlhf"), ("hh-rlhf", "pandalm")):
        folder = Path(args.out) / trained_on
        batches = args.hh_batches if trained_on == "hh-rlhf" else None
        seconds = train(trained_on, folder, args.quick, batches)
        model = Model.from_pretrained(folder / "model")
        link = model.pairwise_link
        inside, moved = pairs_of(model, trained_on), pairs_of(model, shifted)
        result["directions"][f"{trained_on} → {shifted}"] = {
            "model": f"lightning_configs/reward.yaml on {trained_on} train"
            + (f", at most {batches} batches per epoch (a screen at reduced cost)" if batches else "")
            + (f", trained in {seconds:.0f} s" if seconds else ", reused from an earlier run of this script"),
            "final_calibration": (model.info["calibration"].get("final_fit") or {}).get("applied", "none"),
            "in_domain": with_interval(inside, link) | {"decisions": decisions_of(model, inside)},
            "shifted": with_interval(moved, link) | {"decisions": decisions_of(model, moved)},
            "recalibration_on_held_out_prompts": recalibration_curve(moved, link, args.repeats),
        }
        print(json.dumps(result["directions"][f"{trained_on} → {shifted}"], indent=1)[:3000])
    write_results("shift-reward", args.quick, result)


if __name__ == "__main__":
    main()
