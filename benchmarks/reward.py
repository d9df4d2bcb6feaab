"""Reward models on PandaLM and HH-RLHF harmless: TRL's RewardTrainer (its defaults, and with
center_rewards_coefficient), unirank BT only, the full unirank schedule and an ablation of each of
its ingredients, trained on the same comparisons and scored on the same held-out prompts.

Splits are by a stable hash of the prompt (PandaLM: the instruction), 60 / 10 / 30 % of the groups
for train / validation / test, so no prompt is on both sides. Every contender starts from
all-MiniLM-L6-v2, sees exactly the same token sequences (unirank's chat adapter: prompt and response
as a segment pair, the prompt cut from the left, 256 tokens), trains 2 epochs with lr 5e-5, about 32
sequences per step and bf16 autocast:
- TRL RewardTrainer (-log σ(r_chosen − r_rejected)) on the majority label of every comparison
  (PandaLM ties left out: TRL has no tie label), given the token ids pre-made so truncation matches;
  and the same with center_rewards_coefficient = 0.01 (TRL's documented value);
- unirank BT only: 2 Bradley-Terry epochs on the soft labels (PandaLM: the fraction of the three
  annotators, a tie counting a half; weight 3), logits as trained;
- unirank full (before): 1 BT epoch, the Thurstone fit, 1 pointwise epoch, as the schedule was;
- unirank full: the same with the Bradley-Terry term kept in stage 2 (λ = 1) and the final
  calibration fitted on the validation comparisons and folded into the head; and each ingredient
  taken away, or added, in turn.
Reported on the test prompts: pairwise accuracy against the majority label (ties excluded, counted)
and pairwise ECE / Brier of P(a ≻ b) against the observed fraction, each with a 95 % bootstrap
interval over prompts; training wall time, each contender in a fresh process.

    python benchmarks/reward.py [--quick] [--data ../shared/data] [--only pandalm|hh-rlhf]
                                [--parallel N] [--device cpu|cuda] [--contenders NAME ...]
--quick: PandaLM alone at 96 tokens as a smoke check; --report-only: train nothing, rebuild the
results JSON from the report folders (machine and command kept from the earlier results).
Writes benchmarks/results/reward.json
(reward-quick.json) and one report folder per contender under benchmarks/results/reward-<dataset>/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import RESULTS, ROOT, fit_command, write_results  # noqa: E402
from benchmarks.jobs import (  # noqa: E402
    Job,
    final_calibration,
    finished_reports,
    paired_versus,
    reused_reports,
    run_jobs,
    slug,
)
from benchmarks.reranker import _device_name  # noqa: E402

LR, BATCH_SEQUENCES, VALIDATION, TEST, EPOCHS = 5e-5, 32, 0.1, 0.3, 2
DATASETS = {  # name: (file under the data folder, reader format, max_length)
    "pandalm": ("pandalm/testset-v1.json", "pandalm", 256),
    "hh-rlhf": ("hh-rlhf-harmless/test.jsonl.gz", "hh-rlhf", 256),
}
FULL = {"epochs": (-1, 1), "overrides": {}}
RECIPE = "unirank full, one group per comparison (TRL's data view)"
"""The recipe's own configuration (lightning_configs/reward.yaml: one group per comparison); every
other unirank contender trains on one group per prompt."""
CONTENDERS: dict[str, dict] = {
    "TRL RewardTrainer": {"trl": None},
    "TRL RewardTrainer + center_rewards 0.01": {"trl": 0.01},
    "unirank BT only": {"epochs": (0, 0), "overrides": {"model.calibration.final": "none"}},
    "unirank BT only, TRL's epochs (fewer sequences)": {
        "epochs": (0, 0),
        "budget": "epochs",
        "overrides": {"model.calibration.final": "none"},
    },
    "unirank full, TRL's epochs (fewer sequences)": {**FULL, "budget": "epochs"},
    "unirank full (before)": {
        "epochs": (-1, 1),
        "overrides": {"model.ranking_weight": "0", "model.calibration.final": "none"},
    },
    "unirank full": FULL,
    "full − ranking term in stage 2": {**FULL, "overrides": {"model.ranking_weight": "0"}},
    "full − final calibration": {**FULL, "overrides": {"model.calibration.final": "none"}},
    "full + stage-1 priors for every group": {**FULL, "overrides": {"model.calibration.prior_groups": "all"}},
    "unirank BT only + final calibration": {"epochs": (0, 0), "overrides": {}},
    "unirank BT only, head lr 5e-5 (TRL's)": {
        "epochs": (0, 0),
        "overrides": {"model.calibration.final": "none", "model.head_lr": "5e-5"},
    },
    "unirank BT only, no segment ids (as TRL's collator)": {
        "epochs": (0, 0),
        "overrides": {"model.calibration.final": "none", "model.adapter.init_args.segment_ids": "false"},
    },
    "unirank BT only, majority labels (TRL's data)": {
        "epochs": (0, 0),
        "overrides": {
            "model.calibration.final": "none",
            "data.source.class_path": "benchmarks.sources.MajorityPreferences",
        },
    },
    "unirank full, majority labels (TRL's data)": {
        **FULL,
        "overrides": {"data.source.class_path": "benchmarks.sources.MajorityPreferences"},
    },
    "unirank BT only, no dropout (TRL's default)": {
        "epochs": (0, 0),
        "overrides": {"model.calibration.final": "none", "model.dropout": "0.0"},
    },
    "unirank full, no dropout (TRL's default)": {**FULL, "overrides": {"model.dropout": "0.0"}},
    "unirank BT only, 2 responses per prompt per step": {
        "epochs": (0, 0),
        "items_per_group": 2,
        "overrides": {"model.calibration.final": "none"},
    },
    "unirank full, 2 responses per prompt per step": {**FULL, "items_per_group": 2},
    "unirank BT only, one group per comparison (TRL's data view)": {
        "epochs": (0, 0),
        "pair_groups": True,
        "overrides": {"model.calibration.final": "none"},
    },
    "unirank full, one group per comparison (TRL's data view)": {**FULL, "pair_groups": True},
}
"""epochs: (pairwise, pointwise) relative to unirank's epochs: (0, 0) is all pairwise, (-1, 1) one
pointwise; budget "epochs": TRL's epoch count instead of its sequence count (see sequence_epochs);
items_per_group: at most this many responses of a prompt per step (one comparison's pair, drawn
afresh each epoch), with BATCH_SEQUENCES / items_per_group prompts per step, as diverse in prompts
as TRL's batches, and as many epochs as the same sequence budget allows; pair_groups: each
comparison its own group with its own copy of both responses (`Preferences(groups="comparison")`),
16 per step: the data as TRL sees it, at the same sequence budget."""


def sequence_epochs(train, items_per_group: int | None = None) -> int:
    """unirank's epochs for the sequence budget TRL gets in EPOCHS epochs. TRL encodes both responses
    of every decided comparison (2 sequences per pair per epoch); unirank encodes each response once
    per epoch, however many comparisons it is in. The budget is the sequences through the model
    (forward and backward), i.e. the compute: round(EPOCHS · 2 · decided pairs / responses), at
    least EPOCHS. HH-RLHF (each response in one pair): EPOCHS; PandaLM (a response in ~3 pairs): more.
    items_per_group: an epoch encodes at most that many responses of each prompt."""
    decided = int((train.comparisons["p"] != 0.5).sum())
    sizes = train.items.group_by("group_id").len()["len"].to_numpy()
    per_epoch = int(sizes.clip(max=items_per_group).sum()) if items_per_group else train.items.height
    return max(EPOCHS, round(EPOCHS * 2 * decided / per_epoch))


def contender_epochs(spec: dict, train) -> int:
    """unirank's epochs for a contender at TRL's sequence budget (see sequence_epochs)."""
    from unirank.domains.chat.source import comparisons_as_groups

    if spec.get("pair_groups"):
        return sequence_epochs(comparisons_as_groups(train))
    return sequence_epochs(train, spec.get("items_per_group"))


def contender_job(name: str, spec: dict, dataset: str, path: str, work: Path, reports: Path, device: str,
                  max_length: int, groups: int, seed: int = 0, unirank_epochs: int = EPOCHS,
                  precision: str = "bf16") -> Job:  # fmt: skip
    _, fmt, _ = DATASETS[dataset]
    folder = work / slug(name)
    split = ["--validation-fraction", str(VALIDATION), "--test-fraction", str(TEST)]
    score = [sys.executable, "-m", "benchmarks.score_child", "--name", name, "--preferences", path, "--format", fmt]
    score += [*split, "--max-length", str(max_length), "--out", str(reports / slug(name)), "--device", device]
    score += ["--precision", precision]
    if "trl" in spec:
        train = [sys.executable, "-m", "benchmarks.trl_train", "--preferences", path, "--format", fmt, *split]
        train += ["--out", str(folder), "--epochs", str(EPOCHS), "--max-length", str(max_length), "--device", device]
        train += ["--pairs", str(BATCH_SEQUENCES // 2), "--seed", str(seed), "--precision", precision]
        if spec["trl"] is not None:
            train += ["--center-rewards", str(spec["trl"])]
        kind = ["--kind", "plain-no-segments"]
        return Job(name, [train, [*score, "--model", str(folder / "model"), *kind]], folder / "log.txt")
    items_per_group = 2 if spec.get("pair_groups") else spec.get("items_per_group")
    if items_per_group:  # groups of (at most) this many responses: as many of them as fill a step
        groups = BATCH_SEQUENCES // items_per_group
    data = ["--data.source.init_args.path", path, "--data.source.init_args.format", fmt]
    data += ["--data.source.init_args.validation_fraction", str(VALIDATION)]
    data += ["--data.source.init_args.test_fraction", str(TEST), "--data.batch_groups", str(groups)]
    extra = [f"--{key}={value}" for key, value in spec["overrides"].items()]
    if spec.get("items_per_group"):
        extra += [f"--data.max_items_per_group={spec['items_per_group']}"]
    extra += [f"--data.source.init_args.groups={'comparison' if spec.get('pair_groups') else 'prompt'}"]
    extra += ["--trainer.accelerator", "gpu" if device == "cuda" else "cpu"]
    extra += [f"--seed_everything={seed}", f"--model.seed={seed}", f"--data.seed={seed}"]
    extra += ["--trainer.precision", "bf16-mixed" if precision == "bf16" else "32-true"]
    total = EPOCHS if spec.get("budget") == "epochs" else unirank_epochs
    epochs = (total + spec["epochs"][0], spec["epochs"][1])
    fit = fit_command("lightning_configs/reward.yaml", data, max_length, LR, epochs, folder, extra)
    return Job(name, [fit, [*score, "--model", str(folder / "model")]], folder / "log.txt")


def headline(entry: dict) -> dict:
    calibration = entry["pairwise_calibration"]
    return {
        "accuracy": entry["accuracy"],
        "n": entry["n"],
        "n_prompts": entry.get("n_prompts"),
        "pairwise_ece": calibration["ece"],
        "pairwise_brier": calibration["brier"],
        "pairwise_link": entry["pairwise_link"],
        "intervals": entry.get("intervals", {}),
        **{key: entry[key] for key in ("selective", "selective_uncertainty", "thresholds") if key in entry},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--only", choices=sorted(DATASETS))
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--contenders", nargs="*", help="contender names (default: all)")
    parser.add_argument(
        "--report-only", action="store_true", help="train nothing: rebuild the results JSON from the report folders"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every contender (results: reward-seed-N.json)")
    parser.add_argument(
        "--precision", choices=["bf16", "fp32"], default="bf16", help="fp32 where bf16 is emulated (results: …-fp32)"
    )
    args = parser.parse_args()
    from unirank.domains.chat.source import Preferences

    names = [args.only] if args.only else (["pandalm"] if args.quick else list(DATASETS))
    jobs, layout = [], {}
    for dataset in names:
        relative, fmt, max_length = DATASETS[dataset]
        path = str((Path(args.data) / relative).resolve())
        max_length = 96 if args.quick else max_length
        train = Preferences(path, fmt, VALIDATION, TEST).load().split("train")
        groups = max(1, round(BATCH_SEQUENCES / (train.items.height / train.groups.height)))  # ~32 sequences
        suffix = ("-quick" if args.quick else "") + (f"-seed-{args.seed}" if args.seed else "")
        suffix += "-fp32" if args.precision == "fp32" else ""
        work = ROOT / "runs" / f"bench-reward-{dataset}{suffix}"
        reports = RESULTS / f"reward-{dataset}{suffix}"
        epochs = sequence_epochs(train)
        setup = (dataset, path, work, reports, args.device, max_length, groups, args.seed, epochs, args.precision)
        chosen = [n for n in args.contenders or CONTENDERS if epochs != EPOCHS or CONTENDERS[n].get("budget") is None]
        chosen = [] if args.report_only else chosen
        # TRL's epochs: only where they differ
        mine = [contender_job(n, CONTENDERS[n], *setup[:8], contender_epochs(CONTENDERS[n], train), *setup[9:])
                for n in chosen]  # fmt: skip
        layout[dataset] = (mine, work, reports, train, max_length, groups, path, epochs)
        jobs += mine
    run_jobs(jobs, args.parallel)
    stem = (f"reward-{args.only}" if args.only else "reward") + (f"-seed-{args.seed}" if args.seed else "")
    stem += ("-fp32" if args.precision == "fp32" else "") + ("-quick" if args.quick else "")
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {_device_name(args.device)}",
        "setup": {
            "backbone": "all-MiniLM-L6-v2",
            "epochs": EPOCHS,
            "lr": LR,
            "sequences_per_step": BATCH_SEQUENCES,
            "split": {"train": 1 - VALIDATION - TEST, "validation": VALIDATION, "test": TEST},
            "precision": "bf16 autocast (training and scoring)" if args.precision == "bf16" else "fp32",
            "contenders": CONTENDERS,
        },
        "datasets": {},
    }
    for dataset, (mine, work, reports, train, max_length, groups, path, epochs) in layout.items():
        systems, per_group = {}, {}
        metrics, train_s, failed = finished_reports(mine, reports)
        previous = RESULTS / f"{stem}.json"
        earlier = json.loads(previous.read_text())["datasets"].get(dataset, {}) if previous.exists() else {}
        kept = reused_reports(CONTENDERS, [job.name for job in mine], reports, earlier)
        for contender, (entry, seconds, _) in kept.items():
            metrics[contender], train_s[contender] = entry, seconds
        for contender, entry in metrics.items():
            systems[contender] = headline(entry["systems"][contender])
            per_group[contender] = entry["systems"][contender].get("per_group", {})
            systems[contender]["test_comparisons"] = entry["comparisons"]
            systems[contender]["ties"] = entry["ties_excluded"]
            fit = kept[contender][2] if contender in kept else final_calibration(work / slug(contender) / "model")
            if fit:
                systems[contender]["final_calibration"] = fit
        report["datasets"][dataset] = {
            "data": str(Path(path).relative_to(ROOT.parent)) if Path(path).is_relative_to(ROOT.parent) else path,
            "max_length": max_length,
            "train_groups": train.groups.height,
            "train_comparisons": train.comparisons.height,
            "groups_per_step": groups,
            "unirank_epochs": epochs,
            "trl_epochs": EPOCHS,
            "train_s": train_s,
            "failed": failed,
            "systems": systems,
            # each system − unirank full, resampling the same test prompts for both (paired)
            "versus_full": paired_versus(per_group, "unirank full", "accuracy"),
            "versus_recipe": paired_versus(per_group, RECIPE, "accuracy") if RECIPE in per_group else {},
            "reports": str(reports.relative_to(ROOT)),
            "reused": sorted(kept),
        }
        for name, row in systems.items():
            lo, hi = row["intervals"].get("accuracy", [float("nan")] * 2)
            print(
                f"{dataset:8s} {name:44s} acc {row['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]  ECE {row['pairwise_ece']:.3f}"
            )
    report["seed"] = args.seed
    previous = RESULTS / f"{stem}.json"
    if args.report_only and previous.exists():  # the figures are the earlier runs': keep where they ran
        earlier = json.loads(previous.read_text())
        report["machine"], report["command"] = earlier["machine"], earlier.get("command")
    write_results(stem.removesuffix("-quick"), args.quick, report)


if __name__ == "__main__":
    main()
