"""docs/results.md and the README's summary table, built from the JSON files in benchmarks/results/
(nothing is measured here): one row per comparison, unirank against what people use instead, with
the command that produced each figure; then every detailed table.

    python benchmarks/table.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import RESULTS, ROOT  # noqa: E402
from benchmarks.jobs import slug  # noqa: E402
from benchmarks.reward import RECIPE  # noqa: E402


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


def on_machine(row: dict) -> str:
    """The suffix " (CPU model, vector extension)" naming the machine a throughput row was measured on."""
    measured_on = row.get("machine")
    return f" ({measured_on['cpu']}, {measured_on['vector']})" if isinstance(measured_on, dict) else ""


def throughput_rows(data: dict) -> list[list[str]]:
    rows = []
    command = "`python benchmarks/throughput.py`"
    for precision, pair in data.get("pair_only", {}).items():
        best, memory = pair["best_sequences_per_s"], pair["peak_rss_mb"]
        rows.append([
            f"training sequences/s, pair-only preferences (HH-RLHF, k = 1, 256 tokens), {precision}{on_machine(pair)}",
            f"{best['unirank']:.2f} (peak {memory['unirank'] / 1024:.1f} GB)",
            f"TRL RewardTrainer {best['trl']:.2f} (peak {memory['trl'] / 1024:.1f} GB)",
            f"**{pair['ratio']:.2f}×**",
            command,
        ])  # fmt: skip
    group = data.get("group_k8", data)  # results from before the three sections held this row alone
    if "best_comparisons_per_s" in group:
        best = group["best_comparisons_per_s"]
        rows.append([
            f"training comparisons/s, MiniLM, 128 tokens, k = 8{on_machine(group)}",
            f"{best['group']:.1f}",
            f"pair-wise encoding (TRL / ST) {best['pairwise']:.1f}",
            f"**{group['ratio']:.1f}×**",
            command,
        ])  # fmt: skip
    for precision, row in data.get("scoring", {}).items():
        best = row["best_sequences_per_s"]
        rows.append([
            f"scoring sequences/s, 1,500 SciFact pairs, 128 tokens, {precision}{on_machine(row)}",
            f"{best['unirank']:.1f}",
            f"CrossEncoder.predict {best['crossencoder']:.1f}",
            f"**{row['ratio']:.2f}×** ("
            + (f"median of {len(row['round_ratios'])} back-to-back rounds" if "round_ratios" in row else "")
            + (" [{:.2f}, {:.2f}]".format(*row["ratio_interval"]) if "ratio_interval" in row else "")
            + ("; " if "round_ratios" in row else "")
            + ("identical scores" if row["max_abs_score_difference"] == 0 else
               f"scores within {row['max_abs_score_difference']:.0e}") + ")",  # fmt: skip
            command,
        ])  # fmt: skip
    return rows


def decoder_rows(data: dict) -> list[list[str]]:
    """The decoder recipe against TRL's RewardTrainer (benchmarks/decoder.py): one summary row."""
    best = data["summary"]["unirank padding-free + prefix sharing"]
    trl = data["summary"]["trl"]
    speed, memory = best["speed_vs_trl"], best["memory_vs_trl"]
    ratio = "**{:.2f}×** [{:.2f}, {:.2f}]".format(speed["median"], *speed["interval"])
    return [[
        f"decoder RM training tokens/s, LoRA r = 16 + checkpointing, {data['model']}{on_machine(data)}",
        f"{best['tokens_per_s_median']:.0f} (peak {best['peak_rss_mb_median'] / 1024:.1f} GB)",
        f"TRL RewardTrainer + peft {trl['tokens_per_s_median']:.0f} (peak {trl['peak_rss_mb_median'] / 1024:.1f} GB)",
        f"{ratio} at {memory['median']:.2f}× the memory",
        "`python benchmarks/decoder.py`",
    ]]  # fmt: skip


def decoder_table(data: dict) -> list[str]:
    """Every contender of benchmarks/decoder.py: tokens/s and peak memory, each against TRL's run of
    the same round (median [95 % bootstrap interval over rounds])."""
    lines = [
        "| contender | tokens/s | × TRL | tokens encoded | peak memory | × TRL |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in data["summary"].items():
        speed, memory = row.get("speed_vs_trl"), row.get("memory_vs_trl")
        ratio = lambda r: "{:.2f} [{:.2f}, {:.2f}]".format(r["median"], *r["interval"]) if r else "1"  # noqa: E731
        encoded = f"{row['encoded_tokens']:,}" if row["encoded_tokens"] else f"({row['tokens']:,} + padding)"
        lines.append(
            f"| {name} | {row['tokens_per_s_median']:.1f} | {ratio(speed)} | {encoded} | "
            f"{row['peak_rss_mb_median']:,.0f} MB | {ratio(memory)} |"
        )
    return lines


def interval(row: dict, metric: str) -> str:
    low, high = row.get("intervals", {}).get(metric, [float("nan")] * 2)
    return f"[{low:.3f}, {high:.3f}]"


def reranker_rows(data: dict) -> list[list[str]]:
    systems = data["systems"]
    full, bt, first = systems["unirank full"], systems["unirank BT only"], systems["first stage"]
    fused = systems.get("unirank full + first stage")
    st = max((systems[n] for n in systems if n.startswith("CrossEncoderTrainer")), key=lambda r: r["ndcg@10"])
    st_name = next(n for n in systems if systems[n] is st)
    command = f"`{data.get('command', 'python benchmarks/reranker.py')}`"
    tokens = data["setup"]["max_length"]
    return [
        [
            f"SciFact test NDCG@10 ({full['n_queries']} queries, top 100 reranked, {tokens} tokens)",
            f"full {full['ndcg@10']:.3f} {interval(full, 'ndcg@10')}"
            + (f"; fused with the first stage {fused['ndcg@10']:.3f}" if fused else ""),
            f"{st_name} {st['ndcg@10']:.3f}; BT only {bt['ndcg@10']:.3f}; first stage {first['ndcg@10']:.3f}",
            f"full {full['ndcg@10'] - st['ndcg@10']:+.3f} vs the best CrossEncoderTrainer recipe, "
            f"{full['ndcg@10'] - bt['ndcg@10']:+.3f} vs BT only",
            command,
        ],
        [
            f"SciFact test ECE of σ(score) ({full['n_candidates']:,} candidates, {tokens} tokens)",
            f"full {full['ece']:.3f} {interval(full, 'ece')}",
            f"{st_name} {st['ece']:.3f}; BT only {bt['ece']:.3f}",
            f"**{st['ece'] / full['ece']:.0f}×** lower than CrossEncoderTrainer's",
            command,
        ],
    ]


def paired_text(result: dict, other: str, full: dict, row: dict) -> str:
    """full − other with its paired interval (the results hold other − full), or the plain difference."""
    paired = result.get("versus_full", {}).get(other)
    if paired is None:
        return f"{full['accuracy'] - row['accuracy']:+.3f}"
    low, high = paired["interval"]
    return f"{-paired['difference']:+.3f} [{-high:+.3f}, {-low:+.3f}] paired"


def reward_rows(data: dict) -> list[list[str]]:
    rows = []
    for name, result in data["datasets"].items():
        systems = result["systems"]
        recipe = RECIPE if RECIPE in systems else "unirank full"  # the reward recipe's own configuration
        trl, full = systems["TRL RewardTrainer"], systems[recipe]
        paired = {**result, "versus_full": result["versus_recipe"]} if recipe == RECIPE else result
        rows.append(
            [
                f"{name} test pairwise accuracy / pairwise ECE ({trl['n']} pairs, {trl['n_prompts']} prompts)",
                f"full (recipe) {full['accuracy']:.3f} {interval(full, 'accuracy')} / {full['pairwise_ece']:.3f}",
                f"TRL RewardTrainer {trl['accuracy']:.3f} {interval(trl, 'accuracy')} / {trl['pairwise_ece']:.3f}",
                f"full − TRL: accuracy {paired_text(paired, 'TRL RewardTrainer', full, trl)}, "
                f"ECE {full['pairwise_ece'] - trl['pairwise_ece']:+.3f}",
                f"`{data.get('command', 'python benchmarks/reward.py')}`",
            ]
        )
    return rows


def versus(data: dict, name: str, metric: str) -> str:
    """The paired difference system − unirank full with its interval, where the results hold one."""
    paired = data.get("versus_full", {}).get(metric, {}).get(name)
    if paired is None:
        return "" if name != "unirank full" else "0"
    low, high = paired["interval"]
    return f"{paired['difference']:+.3f} [{low:+.3f}, {high:+.3f}]"


def reranker_ablation(data: dict) -> list[str]:
    """One row per contender: NDCG@10 and ECE with their intervals, the paired difference to unirank
    full, training time."""
    lines = [
        "| system | NDCG@10 [95 % CI] | − full, paired [95 % CI] | MRR@10 | ECE [95 % CI] | Brier | σ > 0.5: "
        "predicted / precision / spread across queries | training |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in data["systems"].items():
        cells = [name, f"{row['ndcg@10']:.3f} {interval(row, 'ndcg@10')}", versus(data, name, "ndcg@10")]
        cells.append(f"{row['mrr@10']:.3f}")
        if "ece" in row:
            half = row["thresholds"]["0.5"]
            precision = "–" if half["precision"] is None else f"{half['precision']:.2f}"
            spread = "–" if half["group_precision_std"] is None else f"{half['group_precision_std']:.2f}"
            cells += [f"{row['ece']:.3f} {interval(row, 'ece')}", f"{row['brier']:.4f}",
                      f"{half['predicted_positive']:,} / {precision} / {spread}"]  # fmt: skip
        else:
            cells += ["", "", ""]
        seconds = data["train_s"].get(name)
        cells.append(f"{seconds:.0f} s" if seconds else "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def reward_ablation(data: dict) -> list[str]:
    lines = [
        "| data | system | accuracy [95 % CI] | − full, paired [95 % CI] | pairwise ECE [95 % CI] | pairwise Brier "
        "| training |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset, result in data["datasets"].items():
        for name, row in result["systems"].items():
            seconds = result["train_s"].get(name)
            lines.append(
                f"| {dataset} ({row['n']} pairs, {row['n_prompts']} prompts) | {name} | "
                f"{row['accuracy']:.3f} {interval(row, 'accuracy')} | "
                f"{versus({'versus_full': {'accuracy': result.get('versus_full', {})}}, name, 'accuracy')} | "
                f"{row['pairwise_ece']:.3f} {interval(row, 'pairwise_ece')} | {row['pairwise_brier']:.3f} | "
                f"{seconds:.0f} s |"
            )
    return lines


def reward_seeds() -> list[str]:
    """Accuracy per training seed (reward.json is seed 0, reward-seed-N.json the others) and the
    mean over seeds, for the contenders every seed ran: the spread of training, which the bootstrap
    over test prompts does not see."""
    runs = {0: load("reward")}
    for path in sorted(RESULTS.glob("reward*-seed-*.json")):
        found = re.fullmatch(r"reward(-pandalm|-hh-rlhf)?-seed-(\d+)", path.stem)  # not the CPU-only run's files
        if found:
            runs[int(found.group(2))] = json.loads(path.read_text())
    runs = {seed: run for seed, run in runs.items() if run}
    if len(runs) < 2:
        return []
    seeds = sorted(runs)
    lines = ["| data | system | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
             "|---|---|" + "---|" * (len(seeds) + 1)]  # fmt: skip
    for dataset in runs[seeds[0]]["datasets"]:
        for name in runs[seeds[0]]["datasets"][dataset]["systems"]:
            values = [
                runs[s]["datasets"].get(dataset, {}).get("systems", {}).get(name, {}).get("accuracy") for s in seeds
            ]
            if any(v is None for v in values):
                continue
            cells = [f"{v:.3f}" for v in values] + [f"{sum(values) / len(values):.3f}"]
            lines.append(f"| {dataset} | {name} | " + " | ".join(cells) + " |")
    return lines


def numbered_results(prefix: str) -> dict[int, dict]:
    """{N: results} of every results/<prefix>N.json (N digits only: `reranker-len` does not pick up
    `reranker-len256-seed-1`), in order of N."""
    found = {}
    for path in RESULTS.glob(f"{prefix}*.json"):
        number = re.fullmatch(rf"{re.escape(prefix)}(\d+)", path.stem)
        if number:
            found[int(number.group(1))] = json.loads(path.read_text())
    return dict(sorted(found.items()))


def reranker_seeds(stem: str = "reranker") -> list[str]:
    """NDCG@10 per training seed of one setting (results/<stem>.json is seed 0, <stem>-seed-N.json
    the others; stem `reranker`, `reranker-depth30`, `reranker-len256`, ...) and the mean over the
    seeds a system ran; beside it, the system minus unirank full over the seeds both ran, each
    query's NDCG@10 averaged over those seeds first, paired over the test queries (the interval sees
    the queries; the average damps the training run's spread)."""
    from unirank.metrics.bootstrap import paired_difference

    runs = {0: load(stem), **numbered_results(f"{stem}-seed-")}
    runs = {seed: run for seed, run in runs.items() if run}
    seeds = sorted(runs)
    if len(seeds) < 2:
        return []
    names = [name for name in runs[seeds[0]]["systems"] if sum(name in run["systems"] for run in runs.values()) > 1]
    lines = ["| system | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | − unirank full, the same seeds' "
             "mean, paired over queries [95 % CI] | ECE, mean |",
             "|---|" + "---|" * (len(seeds) + 3)]  # fmt: skip
    for name in names:
        ran = [s for s in seeds if name in runs[s]["systems"]]
        values = [runs[s]["systems"][name]["ndcg@10"] for s in ran]
        cells = [f"{runs[s]['systems'][name]['ndcg@10']:.3f}" if s in ran else "–" for s in seeds]
        cells.append(f"{sum(values) / len(values):.3f}")
        both = [s for s in ran if "unirank full" in runs[s]["systems"]]
        mine = [_per_query(runs[s], name) for s in both]
        full = [_per_query(runs[s], "unirank full") for s in both]
        if name != "unirank full" and both and all(mine) and all(full):
            d = paired_difference(_mean_over_seeds(mine), _mean_over_seeds(full))
            low, high = d["interval"]
            cells.append(f"{d['difference']:+.3f} [{low:+.3f}, {high:+.3f}] ({len(both)} seeds)")
        else:
            cells.append("0" if name == "unirank full" else "")
        eces = [runs[s]["systems"][name].get("ece") for s in ran]
        cells.append(f"{sum(eces) / len(eces):.3f}" if all(e is not None for e in eces) else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def reranker_lengths(depth: str = "") -> list[str]:
    """Each system trained and scored on inputs of another length (reranker{depth}-lenL.json)
    against the same system and seed at 128 tokens (reranker{depth}.json): NDCG@10, the difference
    paired over the test queries, ECE and training time (a longer input costs about its length)."""
    from unirank.metrics.bootstrap import paired_difference

    base = load(f"reranker{depth}")
    lines = []
    for length, run in numbered_results(f"reranker{depth}-len").items() if base else []:
        for name in (n for n in run["systems"] if n in base["systems"] and n != "first stage"):  # reads no tokens
            longer, short = _per_query(run, name), _per_query(base, name)
            if not (longer and short):
                continue
            d = paired_difference(longer, short)
            (low, high), ece = d["interval"], [r["systems"][name].get("ece") for r in (base, run)]
            seconds = [r.get("train_s", {}).get(name) for r in (base, run)]
            lines.append(
                f"| {name} | {length} | {base['systems'][name]['ndcg@10']:.3f} | "
                f"{run['systems'][name]['ndcg@10']:.3f} | {d['difference']:+.3f} [{low:+.3f}, {high:+.3f}] "
                f"({d['n_groups']} queries) | "
                + " | ".join("" if v is None else f"{v:.3f}" for v in ece)
                + " | "
                + " | ".join("" if v is None else f"{v:,.0f} s" for v in seconds)
                + " |"
            )
    header = [
        "| system | tokens | NDCG@10 at 128 | at that length | difference, paired over queries [95 % CI] | "
        "ECE at 128 | at that length | training at 128 | at that length |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    return header + lines if lines else []


def _per_query(run: dict, name: str) -> dict | None:
    """{query: NDCG@10} of one system, from the contender's report that holds it (None without one)."""
    for contender in run["setup"]["contenders"]:
        path = ROOT / run["reports"] / slug(contender) / "metrics.json"
        systems = json.loads(path.read_text())["systems"] if path.exists() else {}
        if name in systems:
            return systems[name].get("per_group", {}).get("ndcg@10")
    return None


def _mean_over_seeds(values: list[dict]) -> dict:
    """{query: the mean over seeds} for the queries every seed scored."""
    shared = set.intersection(*(set(v) for v in values))
    return {q: sum(v[q] for v in values) / len(values) for q in shared}


def reward_selective(data: dict) -> list[str]:
    """Selective prediction: accuracy when abstaining on the least certain pairs, by |p − 0.5| and,
    for models with a head posterior, by the posterior predictive (the AURC difference is paired)."""
    lines = [
        "| data | system | accuracy, all | at 80 % coverage | gain | AURC by \\|p − 0.5\\| | AURC by the posterior, "
        "− \\|p − 0.5\\| [95 % CI] | margin s.e. (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset, result in data["datasets"].items():
        for name, row in result["systems"].items():
            sel = row.get("selective")
            if not sel:
                continue
            at = sel["accuracy_at"]
            posterior = row.get("selective_uncertainty")
            by_posterior, spread = "", ""
            if posterior:
                low, high = posterior["aurc_minus_plain_interval"]
                by_posterior = (
                    f"{posterior['aurc']:.4f}, {posterior['aurc_minus_plain']:+.4f} [{low:+.4f}, {high:+.4f}]"
                )
                spread = f"{posterior['margin_std_error_median']:.3f}"
            lines.append(
                f"| {dataset} ({sel['n']} decided pairs) | {name} | {at['100%']:.3f} | {at['80%']:.3f} | "
                f"{at['80%'] - at['100%']:+.3f} | {sel['aurc']:.4f} | {by_posterior} | {spread} |"
            )
    return lines


def memory_table(data: dict) -> list[str]:
    """Where pair-only training's memory goes (results/train_memory.json)."""
    lines = [
        "| pair-only training, fp32 | live tensors | resident after a step (median / largest) | peak | step |",
        "|---|---|---|---|---|",
    ]
    for name, row in data["contenders"].items():
        lines.append(
            f"| {name} | {row['live_tensors_mb']:,} MB | {row['rss_after_step_median_mb']:,} / "
            f"{row['rss_after_step_max_mb']:,} MB | {row['peak_rss_mb']:,} MB | {row['median_step_s']:.2f} s |"
        )
    return lines


def process_rows(data: dict) -> list[list[str]]:
    t = data["test"]
    low, high = t["intervals"]["step_brier"]

    def pruned(prune: dict) -> str:
        return (
            f"at {prune['threshold']:.2f} (chosen on validation): {prune['correct_steps_kept']:.1%} of correct steps "
            f"kept, {prune['wrong_stopped_before_end']:.1%} of wrong chains stopped early, "
            f"{prune['tokens_saved_share']:.1%} tokens saved"
        )

    text = "prune " + pruned(data["prune"])
    if "prune_conservative" in data:
        text += "; by the 95 % lower bound " + pruned(data["prune_conservative"])
    return [
        [
            f"PRMBench test steps: Brier / ECE ({t['steps']} steps, {t['n_problems']} problems)",
            f"{t['step_brier']:.4f} [{low:.4f}, {high:.4f}] / {t['step_ece']:.4f}",
            f"constant base-rate predictor {data['base_rate_brier']:.4f}",
            text,
            f"`{data.get('command', 'python benchmarks/process.py')}`",
        ]
    ]


def reliability_figure(names: list[str], reports: Path, out: Path) -> None:
    """One reliability diagram of several contenders, from their reports' reliability tables."""
    from unirank.evaluation.plots import reliability_plot_from_tables

    tables = {}
    for name in names:
        folder = reports / slug(name)
        metrics = json.loads((folder / "metrics.json").read_text())["systems"][name]
        tables[name] = (metrics["calibration"]["reliability"], metrics["calibration"]["ece"])
    reliability_plot_from_tables(tables, out, "SciFact test, first stage's top 100: σ(score) vs relevance")


def shift_table(data: dict) -> list[str]:
    """A SciFact reranker moved to CISI (benchmarks/shift.py): ranking and ECE as trained, and the
    held-out ECE after `unirank recalibrate` on n labels (median [2.5–97.5 %] over random splits)."""
    lines = ["| on CISI | NDCG@10 [95 % CI] | ECE [95 % CI] |", "|---|---|---|"]
    for name, row in data["systems"].items():
        ece = "" if row["ece"] is None else "{:.3f} [{:.3f}, {:.3f}]".format(row["ece"], *row["ece_interval"])
        lines.append(
            "| {} | {:.3f} [{:.3f}, {:.3f}] | {} |".format(name, row["ndcg@10"], *row["ndcg@10_interval"], ece)
        )
    lines += [
        "",
        f"| held-out ECE after recalibration ({data['repeats']} splits) | median | 2.5–97.5 % |",
        "|---|---|---|",
    ]
    for name, row in data["recalibration_ece_on_held_out_queries"].items():
        lines.append(
            "| {} | {:.3f} | [{:.3f}, {:.3f}] |".format(name.replace("_", " "), row["median"], *row["range_95"])
        )
    if "decisions" in data:
        inside = data["in_domain"]
        lines += ["", *decisions_table({
            f"SciFact test ({inside['queries']} queries, in domain; NDCG@10 {inside['ndcg@10']:.3f}, "
            f"ECE {inside['ece']:.3f})": inside["decisions"],
            "CISI (shifted)": data["decisions"],
        })]  # fmt: skip
    return lines


def decisions_table(sets: dict[str, dict]) -> list[str]:
    """Decisions at P ≥ t (benchmarks/decisions.py): how many, and their precision with its interval,
    plain, conservative (95 % lower bound ≥ t) and shift-aware (abstaining on a shifted set)."""
    lines = [
        "| set | unfamiliar share (shifted?) | t | plain: n, precision | conservative | shift-aware |",
        "|---|---|---|---|---|---|",
    ]

    def cell(entry: dict) -> str:
        if entry.get("abstained"):
            return "abstains"
        if not entry["decisions"]:
            return "0 decisions"
        return "{}, {:.3f} [{:.3f}, {:.3f}]".format(entry["decisions"], entry["precision"], *entry["interval"])

    for name, decisions in sets.items():
        test = decisions["set_test"]
        flag = f"{test['share']:.0%} ({'shifted' if test['shifted'] else 'not shifted'})"
        for t in (0.5, 0.7):
            row = [cell(decisions[f"{kind}@{t}"]) for kind in ("plain", "conservative", "shift-aware")]
            lines.append(f"| {name} | {flag} | {t} | " + " | ".join(row) + " |")
    return lines


def shift_reward_table(data: dict) -> list[str]:
    """Reward models moved between PandaLM and HH-RLHF (benchmarks/shift_reward.py): accuracy, the
    accuracy the probabilities promise and the pairwise ECE in domain, shifted, and shifted after the
    temperature is refitted on n labelled pairs (held-out prompts; median [2.5–97.5 %] over splits)."""
    lines = [
        "| trained → read on | accuracy [95 % CI] | promised | pairwise ECE [95 % CI] |",
        "|---|---|---|---|",
    ]
    decisions = {}
    for direction, entry in data["directions"].items():
        trained = direction.split(" → ")[0]
        for label, row in ((f"{trained} → {trained} (in domain)", entry["in_domain"]),
                           (f"{direction} (shifted)", entry["shifted"])):  # fmt: skip
            lines.append(
                "| {} | {:.3f} [{:.3f}, {:.3f}] | {:.3f} | {:.3f} [{:.3f}, {:.3f}] |".format(
                    label,
                    row["accuracy"],
                    *row["accuracy_interval"],
                    row["promised"],
                    row["pairwise_ece"],
                    *row["pairwise_ece_interval"],
                )  # fmt: skip
            )
            decisions[label] = row["decisions"]
    lines += [
        "",
        "| held-out prompts, after a temperature refit on n pairs | accuracy | promised | pairwise ECE: median "
        "[2.5–97.5 % over splits] |",
        "|---|---|---|---|",
    ]
    for direction, entry in data["directions"].items():
        for name, row in entry["recalibration_on_held_out_prompts"].items():
            ece = row["pairwise_ece"]
            lines.append(
                f"| {direction}, {name.replace('_', ' ')} | {row['accuracy']['median']:.3f} | "
                f"{row['promised']['median']:.3f} | {ece['median']:.3f} [{ece['range_95'][0]:.3f}, "
                f"{ece['range_95'][1]:.3f}] |"
            )
    return lines + ["", *decisions_table(decisions)]


def breadth_table(data: dict) -> list[str]:
    """Leave one domain out (benchmarks/breadth.py): every model that never saw the held-out set, read
    on all of it, the model trained on it (its test split) as the in-domain mark, and the mixture
    minus each single model, paired over the held-out prompts."""
    lines = [
        "| held out | trained on | accuracy [95 % CI] | promised | pairwise ECE [95 % CI] | unfamiliar | "
        "pairs read as tied (accuracy with a tie as half) |",
        "|---|---|---|---|---|---|---|",
    ]
    differences = ["| held out | mixture minus | accuracy [95 % CI] | pairwise ECE [95 % CI] |", "|---|---|---|---|"]
    for target, entry in data["held_out"].items():
        for name, row in entry.items():
            if name.startswith("mixture − "):
                acc, ece = row["accuracy"], row["pairwise_ece"]
                differences.append(
                    f"| {target} | {name.removeprefix('mixture − ')} | {acc['difference']:+.3f} "
                    f"[{acc['interval'][0]:+.3f}, {acc['interval'][1]:+.3f}] | {ece['difference']:+.3f} "
                    f"[{ece['interval'][0]:+.3f}, {ece['interval'][1]:+.3f}] |"
                )
            elif isinstance(row, dict):
                trained = "both others (mixture)" if name == "mixture" else name
                test = row["set_test"]
                lines.append(
                    "| {} ({} pairs) | {} | {:.3f} [{:.3f}, {:.3f}] | {:.3f} | {:.3f} [{:.3f}, {:.3f}] | {:.0%}{} | "
                    "{:.0%}{} |".format(
                        target,
                        row["pairs"],
                        trained,
                        row["accuracy"],
                        *row["accuracy_interval"],
                        row["promised"],
                        row["pairwise_ece"],
                        *row["pairwise_ece_interval"],
                        test["share"],
                        ", shifted" if test["shifted"] else "",
                        row["tied_share"],
                        f" ({row['accuracy'] + row['tied_share'] / 2:.3f})" if row["tied_share"] else "",
                    )  # fmt: skip
                )
    return lines + ["", *differences]


def shift_rows(data: dict) -> list[list[str]]:
    """The headline of a model moved to another domain: ECE as trained and after 100 labels."""
    curve, cisi = data["recalibration_ece_on_held_out_queries"], data["decisions"]["set_test"]
    return [[
        f"SciFact reranker moved to CISI: held-out ECE ({data['cisi']['queries']} queries, top "
        f"{data['cisi']['depth']}; median of {data['repeats']} splits)",
        f"{curve['100_labels']['median']:.3f} after 100 labels; {cisi['share']:.0%} of inputs unfamiliar: "
        "flagged, conservative decisions abstain",
        f"as trained {curve['as_trained']['median']:.3f}", "", f"`{data['command']}`",
    ]]  # fmt: skip


def summary_table() -> list[str]:
    """The README's headline table: one row per comparison, unirank against what people use instead."""
    rows = []
    for name, build in (
        ("fitting", fitting_rows),
        ("mining", mining_rows),
        ("throughput", throughput_rows),
        ("reranker", reranker_rows),
        ("reranker-len256", reranker_rows),  # the recipe's length (seed 0; the seed table has the mean)
        ("reward", reward_rows),
        ("process", process_rows),
        ("decoder", decoder_rows),
        ("shift", shift_rows),
    ):
        data = load(name)
        if data is not None:
            rows += build(data)
    lines = ["| what | unirank | the usual tool | | command |", "|---|---|---|---|---|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def sections() -> list[tuple[str, str, list[str]]]:
    """(heading, what it shows and the command, table lines) for every detailed table there is data for."""
    found = []

    def add(heading: str, note: str, lines: list[str]) -> None:
        if lines:
            found.append((heading, note, lines))

    reranker, reward = load("reranker"), load("reward")
    if reranker:
        add(
            "SciFact reranker: every contender (128 tokens)",
            "`python benchmarks/reranker.py`: top 100 of the "
            "first stage reranked, 300 test queries; differences paired per query.",
            reranker_ablation(reranker),
        )
    screen = load("reranker-depth30")
    if screen:
        add(
            "SciFact reranker: screen at depth 30",
            "`python benchmarks/reranker.py --depth 30`: a screen at reduced cost, not a result on its own.",
            reranker_ablation(screen),
        )
    for depth in ("", "-depth30"):
        stems = [f"reranker{depth}", *(f"reranker{depth}-len{n}" for n in numbered_results(f"reranker{depth}-len"))]
        for stem in stems:
            add(
                f"SciFact reranker over training seeds ({stem})",
                "`python benchmarks/reranker.py --seed N`: each query averaged over the seeds both systems ran.",
                reranker_seeds(stem),
            )
        add(
            "SciFact reranker by input length" + (" (screen at depth 30)" if depth else ""),
            "Each system against itself at 128 tokens, paired per query.",
            reranker_lengths(depth),
        )
    if reward:
        add(
            "Reward models: every contender",
            "`python benchmarks/reward.py`: pairwise accuracy and pairwise ECE on the test prompts.",
            reward_ablation(reward),
        )
        add(
            "Reward models: selective prediction",
            "Accuracy of p > 0.5 when abstaining on the least certain pairs.",
            reward_selective(reward),
        )
    memory = load("train_memory")
    if memory:
        add("Where pair-only training's memory goes", "`python benchmarks/train_memory.py`.", memory_table(memory))
    add("Reward models over training seeds", "`python benchmarks/reward.py --seed N`.", reward_seeds())
    decoder = load("decoder")
    if decoder:
        add(
            "Decoder reward models against TRL's RewardTrainer",
            "`python benchmarks/decoder.py`: LoRA r = 16 on "
            "every linear layer, gradient checkpointing, fp32, the same HH-RLHF pairs; ratios per round against "
            f"TRL's run of the same round, median [95 % interval over rounds]; {decoder['model']}.",
            decoder_table(decoder),
        )
    shift = load("shift")
    if shift:
        add(
            "A SciFact reranker moved to CISI",
            f"`{shift['command']}`: {shift['model']}; CISI's "
            f"{shift['cisi']['queries']} judged queries, top {shift['cisi']['depth']}, "
            f"{shift['cisi']['relevant_share']:.0%} relevant.",
            shift_table(shift),
        )
    shift_reward = load("shift-reward")
    if shift_reward:
        add(
            "Reward models moved between PandaLM and HH-RLHF",
            f"`{shift_reward['command']}`: the reward recipe trained on one set's train split, read on its own "
            "test split and on the other's; recalibration rows: the temperature refitted on n labelled pairs of "
            f"one half of the shifted prompts, read on the other half ({shift_reward['repeats']} splits).",
            shift_reward_table(shift_reward),
        )
    breadth = load("breadth")
    if breadth:
        add(
            "Training for breadth: leave one preference set out",
            f"`{breadth['command']}`: models trained on one set, and the mixture of two "
            "(`lightning_configs/reward-mixture.yaml`, equal weights), read on the third, which none of them saw; "
            f"at most {breadth['batches_per_epoch']} batches of 16 comparisons per epoch, 256 tokens. PRMBench is "
            "read as outcome pairs (correct ≻ corrupted solution).",
            breadth_table(breadth),
        )
    return found


def results_document() -> str:
    """docs/results.md: the summary table and every detailed table, each with the command behind it."""
    parts = [
        "# Results",
        "",
        "Generated by `python benchmarks/table.py` from `benchmarks/results/*.json` (do not edit by hand). "
        "Every figure comes with its sample size and a 95 % bootstrap interval; a difference inside its interval "
        "is not a result. Timings name the machine that gave them.",
        "",
        "## Summary",
        "",
        *summary_table(),
    ]
    for heading, note, lines in sections():
        parts += ["", f"## {heading}", "", note, "", *lines]
    return "\n".join(parts) + "\n"


DOCUMENT = ROOT / "docs" / "results.md"


def main() -> None:
    """Write docs/results.md and the SciFact reliability figure; print the summary table (the README's)."""
    from unirank.atomic import atomic_path

    with atomic_path(DOCUMENT) as tmp:
        tmp.write_text(results_document())
    if load("reranker"):
        names = ["CrossEncoderTrainer + LambdaLoss", "unirank BT only", "unirank full (before)", "unirank full"]
        reliability_figure(names, RESULTS / "reranker-scifact", RESULTS / "reranker-scifact" / "reliability.png")
    print("\n".join(summary_table()))
    print(f"wrote {DOCUMENT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
