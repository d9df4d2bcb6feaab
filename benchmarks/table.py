"""The README's summary table, built from the JSON files in benchmarks/results/ (nothing is
measured here): one row per comparison, unirank against what people use instead, with the command
that produced each figure.

    python benchmarks/table.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import RESULTS  # noqa: E402


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def fitting_rows(data: dict) -> list[list[str]]:
    versus = data["versus_choix"]["methods"]
    thurstone = next(run for run in data["scale"] if run["link"] == "thurstone")
    return [
        [
            "BT fit, 10k items / 100k comparisons (time)",
            f"{versus['unirank.fit_bradley_terry']['median_s']:.3f} s",
            f"choix.opt_pairwise {versus['choix.opt_pairwise']['median_s']:.1f} s",
            f"**{data['versus_choix']['speedup_vs_fastest_choix']:.0f}×** faster, same objective",
            "`python benchmarks/fitting.py`",
        ],
        [
            "Thurstone fit, 1M items / 10M comparisons",
            f"{thurstone['median_s']:.1f} s, {thurstone['peak_rss_mb'] / 1024:.1f} GB",
            "",
            "",
            "`python benchmarks/fitting.py`",
        ],
    ]


def mining_rows(data: dict) -> list[list[str]]:
    versus = data["versus_sentence_transformers"]
    return [
        [
            "SciFact train mining, top 100 + 7 negatives (time)",
            f"{versus['unirank_first']['seconds']:.0f} s (bf16), {versus['unirank_cached']['seconds']:.1f} s cached",
            f"ST mine_hard_negatives {versus['sentence_transformers']['seconds']:.0f} s",
            f"**{versus['time_ratio_first']:.2f}×** the time; fp32 negatives identical in "
            f"{versus['fp32']['identical_negative_lists']}/{versus['single_positive_queries_compared']}",
            "`python benchmarks/mining.py`",
        ]
    ]


def throughput_rows(data: dict) -> list[list[str]]:
    best = data["best_comparisons_per_s"]
    return [
        [
            "training comparisons/s, MiniLM, 128 tokens, k = 8",
            f"{best['group']:.1f}",
            f"pair-wise encoding (TRL / ST) {best['pairwise']:.1f}",
            f"**{data['ratio']:.1f}×**",
            "`python benchmarks/throughput.py`",
        ]
    ]


def reranker_rows(data: dict) -> list[list[str]]:
    systems = data["systems"]
    st, bt, full = systems["CrossEncoderTrainer (BCE)"], systems["unirank BT only"], systems["unirank full"]
    first = systems["first stage"]
    return [
        [
            "SciFact test NDCG@10 (rerank top 100)",
            f"full {full['ndcg@10']:.3f}, BT only {bt['ndcg@10']:.3f}",
            f"CrossEncoderTrainer (BCE) {st['ndcg@10']:.3f}; first stage {first['ndcg@10']:.3f}",
            f"full {full['ndcg@10'] - st['ndcg@10']:+.3f} vs CrossEncoderTrainer, "
            f"{full['ndcg@10'] - first['ndcg@10']:+.3f} vs first stage",
            "`python benchmarks/reranker.py`",
        ],
        [
            "SciFact test ECE / Brier of σ(score)",
            f"full {full['ece']:.3f} / {full['brier']:.3f}; BT only {bt['ece']:.3f} / {bt['brier']:.3f}",
            f"CrossEncoderTrainer {st['ece']:.3f} / {st['brier']:.3f}",
            f"full's ECE {'below' if full['ece'] < st['ece'] else 'above'} CrossEncoderTrainer's, "
            f"BT only's is {bt['ece'] / full['ece']:.1f}× full's",
            "`python benchmarks/reranker.py`",
        ],
    ]


def reward_rows(data: dict) -> list[list[str]]:
    rows = []
    for name, result in data["datasets"].items():
        systems = result["systems"]
        trl, bt, full = systems["TRL RewardTrainer"], systems["unirank BT only"], systems["unirank full"]
        rows.append(
            [
                f"{name} test pairwise accuracy / pairwise ECE ({trl['n']} pairs)",
                f"full {full['accuracy']:.3f} / {full['pairwise_ece']:.3f}; "
                f"BT only {bt['accuracy']:.3f} / {bt['pairwise_ece']:.3f}",
                f"TRL RewardTrainer {trl['accuracy']:.3f} / {trl['pairwise_ece']:.3f}",
                f"full − TRL: accuracy {full['accuracy'] - trl['accuracy']:+.3f}, "
                f"ECE {full['pairwise_ece'] - trl['pairwise_ece']:+.3f}",
                "`python benchmarks/reward.py`",
            ]
        )
    return rows


def main() -> None:
    rows = []
    for name, build in (
        ("fitting", fitting_rows),
        ("mining", mining_rows),
        ("throughput", throughput_rows),
        ("reranker", reranker_rows),
        ("reward", reward_rows),
    ):
        data = load(name)
        if data is not None:
            rows += build(data)
    print("| what | unirank | the usual tool | | command |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
