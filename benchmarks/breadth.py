"""Leave one domain out: what training for breadth buys on a preference set no model saw.

Three preference sets of different kinds: HH-RLHF harmless (harmlessness, one annotator), PandaLM
(instruction following, three annotators) and PRMBench read as outcome pairs (math: a correct
solution ≻ a corrupted one). For each held-out set X:
- the models trained on each other set alone (benchmarks/shift_reward.py's models, and one on
  PRMBench), and the mixture of the two (lightning_configs/reward-mixture.yaml: equal sampling
  weights, one Thurstone fit across both), read on all of X: accuracy, pairwise ECE, the accuracy
  the probabilities promise, the unfamiliar share and the set test, each with a 95 % interval
  resampling prompts;
- the mixture minus each single model, paired over X's prompts (accuracy and ECE);
- the model trained on X itself, read on X's test split: what in-domain training reaches.
Every model trains at most --batches batches (16 comparisons) per epoch, 2 pairwise + 1 pointwise
epochs at 256 tokens, so a mixture takes no more steps than the largest single model.

    python benchmarks/breadth.py [--quick] [--batches 40]
Writes benchmarks/results/breadth.json (--quick: 2 batches per epoch, 64 tokens, into
runs/breadth-quick and breadth-quick.json: a smoke check).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, fit_command, machine, run_timed, write_results  # noqa: E402
from benchmarks.shift_reward import (  # noqa: E402
    SETS,
    TEST,
    VALIDATION,
    pairs_of,
    reading,
    sides_with,
    train,
    with_interval,
)


def train_mixture(names: list[str], out: Path, quick: bool, batches: int) -> float:
    """lightning_configs/reward-mixture.yaml on the train splits of `names`, equal weights (seconds;
    0 when the model is reused)."""
    if (out / "model" / "unirank.json").exists():
        return 0.0
    sources = [
        {
            "class_path": "unirank.domains.chat.source.Preferences",
            "init_args": {
                "path": str(SETS[name][0]),
                "format": SETS[name][1],
                "validation_fraction": VALIDATION,
                "test_fraction": TEST,
                "groups": "comparison",
            },
        }  # fmt: skip
        for name in names
    ]
    mixture = {"class_path": "unirank.data.mixture.Mixture",
               "init_args": {"names": names, "weights": [1.0] * len(names), "sources": sources}}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    data_config = out / "data.yaml"
    data_config.write_text(yaml.safe_dump({"data": {"source": mixture}}, sort_keys=False))
    extra = ["--trainer.limit_train_batches", "2" if quick else str(batches)]
    command = fit_command("lightning_configs/reward-mixture.yaml", ["--config", str(data_config)],
                          64 if quick else 256, 5e-5, (2, 1), out, extra)  # fmt: skip
    return run_timed(command)


def per_prompt_accuracy(pairs: dict, link: str) -> dict:
    """{prompt: [correct pairs, pairs]} for paired_difference."""
    from unirank.fitting.links import pairwise_reading

    correct = sides_with(pairwise_reading(pairs["r_a"], pairs["r_b"], link), pairs["p"])
    out: dict = {}
    for prompt, hit in zip(pairs["prompt"], correct):
        entry = out.setdefault(prompt, [0.0, 0])
        entry[0], entry[1] = entry[0] + float(hit), entry[1] + 1
    return out


def ece_difference(mixed: dict, single: dict, mixed_link: str, single_link: str) -> dict:
    """Pairwise ECE of the mixture minus a single model on the same pairs (each read with its own
    link), with a 95 % interval that resamples prompts (the same prompts for both)."""
    from unirank.metrics.bootstrap import grouped_interval

    def difference(rows: np.ndarray) -> float:
        return reading(mixed, rows, mixed_link)["pairwise_ece"] - reading(single, rows, single_link)["pairwise_ece"]

    interval = grouped_interval(difference, mixed["prompt"])[0]
    return {"difference": difference(np.arange(len(mixed["p"]))), "interval": interval}


def reading_of(model, pairs: dict) -> dict:
    """with_interval's figures, the set test and the share of pairs the model cannot tell apart (both
    responses cut to the same tokens, so r_a = r_b)."""
    from unirank.metrics.shift import novelty_percentiles, set_shift_test

    figures = with_interval(pairs, model.pairwise_link)
    figures["set_test"] = set_shift_test(novelty_percentiles(model.novelty, pairs["states"]))
    figures["tied_share"] = float(np.mean(pairs["r_a"] == pairs["r_b"]))
    return figures


def held_out(target: str, singles: dict, mixture) -> dict:
    """Every model that never saw `target`, read on all of it, and the mixture's paired differences."""
    from unirank.metrics.bootstrap import paired_difference

    link = mixture.pairwise_link
    mixed = pairs_of(mixture, target, split=None)
    out = {"pairs": len(mixed["p"]), "prompts": len(np.unique(mixed["prompt"]))}
    out["mixture"] = reading_of(mixture, mixed)
    for name, model in singles.items():
        if name == target:
            continue
        alone = pairs_of(model, target, split=None)
        assert np.array_equal(alone["prompt"], mixed["prompt"]), "both models must read the same pairs in one order"
        out[f"{name} alone"] = reading_of(model, alone)
        accuracy = paired_difference(per_prompt_accuracy(mixed, link), per_prompt_accuracy(alone, model.pairwise_link))
        ece = ece_difference(mixed, alone, link, model.pairwise_link)
        out[f"mixture − {name} alone"] = {"accuracy": accuracy, "pairwise_ece": ece}
    out["in-domain (test split)"] = reading_of(singles[target], pairs_of(singles[target], target))
    return out


def provenance(seconds: float) -> str:
    return f", trained in {seconds:.0f} s" if seconds else ", reused"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke check at the smallest sizes")
    parser.add_argument("--batches", type=int, default=40, help="at most this many batches per epoch")
    parser.add_argument("--singles", default=str(ROOT / "runs" / "shift-reward"),
                        help="single-set models: <singles>/<set>/model, trained when missing")  # fmt: skip
    parser.add_argument("--out", default=str(ROOT / "runs" / "breadth"))
    args = parser.parse_args()
    if args.quick:
        args.singles = args.out = str(ROOT / "runs" / "breadth-quick")
    from unirank.model import Model

    names = sorted(SETS)
    result = {"machine": machine(), "batches_per_epoch": args.batches, "models": {}, "held_out": {}}
    singles = {}
    for name in names:
        folder = Path(args.singles) / name
        seconds = train(name, folder, args.quick, args.batches)
        result["models"][name] = f"{name} train split" + provenance(seconds)
        singles[name] = Model.from_pretrained(folder / "model")
    for target in names:
        others = [name for name in names if name != target]
        folder = Path(args.out) / f"without-{target}"
        seconds = train_mixture(others, folder, args.quick, args.batches)
        result["models"][f"without-{target}"] = f"mixture of {' + '.join(others)}" + provenance(seconds)
        result["held_out"][target] = held_out(target, singles, Model.from_pretrained(folder / "model"))
        print(json.dumps(result["held_out"][target], indent=1)[:3000])
    write_results("breadth", args.quick, result)


if __name__ == "__main__":
    main()
