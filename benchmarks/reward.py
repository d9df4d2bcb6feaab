"""Reward models on PandaLM and HH-RLHF harmless: TRL's RewardTrainer, unirank BT only and the full
unirank schedule, trained on the same comparisons and scored on the same held-out prompts.

Splits are by a stable hash of the prompt (PandaLM: the instruction), 60 / 10 / 30 % of the groups
for train / validation / test, so no prompt is on both sides. Every contender starts from
all-MiniLM-L6-v2, sees exactly the same token sequences (unirank's chat adapter: prompt and response
as a segment pair, the prompt cut from the left, `max_length` tokens), trains for the same epochs
with lr 5e-5, about 32 sequences per step and bf16 autocast:
- TRL RewardTrainer (the pairwise -log σ(r_chosen - r_rejected) loss) on the majority label of
  every comparison (PandaLM ties left out: TRL has no tie label), given the token ids pre-made so
  truncation matches (TRL would otherwise drop every pair longer than max_length);
- unirank BT only: `epochs` Bradley-Terry epochs on the soft labels (PandaLM: the fraction of the
  three annotators, a tie counting a half; weight 3);
- unirank full: `epochs - 1` Bradley-Terry epochs, the Thurstone fit, 1 pointwise epoch.
Reported on the test prompts: pairwise accuracy against the majority label (ties excluded and
counted), pairwise ECE and Brier of P(a ≻ b) against the observed fraction (PandaLM: the annotators';
HH-RLHF: the single label), and training wall time, each training in a fresh process.

    python benchmarks/reward.py [--quick] [--data ../shared/data] [--epochs 2] [--only pandalm|hh-rlhf]
--quick runs PandaLM alone at 96 tokens as a smoke check.
Writes benchmarks/results/reward.json and benchmarks/results/reward-<dataset>/ (metrics.json,
reliability.png, summary.txt); --quick writes the *-quick variants.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import RESULTS, ROOT, fit_command, run_child, train_once, write_results  # noqa: E402

LR, BATCH_SEQUENCES, VALIDATION, TEST = 5e-5, 32, 0.1, 0.3
DATASETS = {  # name: (file under the data folder, reader format, max_length)
    "pandalm": ("pandalm/testset-v1.json", "pandalm", 256),
    "hh-rlhf": ("hh-rlhf-harmless/test.jsonl.gz", "hh-rlhf", 256),
}

TRL_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from benchmarks.common import peak_rss_mb
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import RewardConfig, RewardTrainer
from unirank.adapters import ChatAdapter
from unirank.data.sources import Preferences
from unirank.models import resolve_model_path

tables = Preferences({path!r}, {format!r}, {validation}, {test}).load().split("train")
path = resolve_model_path("minilm")
tokenizer = AutoTokenizer.from_pretrained(path)
encoded = ChatAdapter(max_length={max_length}).encode(tokenizer, tables.item_contexts(), tables.items["text"].to_list())
comps = tables.indexed_comparisons().filter(tables.indexed_comparisons()["p"] != 0.5)
rows = {{"chosen_ids": [], "rejected_ids": []}}
for a, b, p in comps.select("_a", "_b", "p").iter_rows():
    chosen, rejected = (a, b) if p > 0.5 else (b, a)
    rows["chosen_ids"].append(encoded[chosen].input_ids)
    rows["rejected_ids"].append(encoded[rejected].input_ids)
start = time.perf_counter()
model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
args = RewardConfig(
    output_dir={out!r}, num_train_epochs={epochs}, per_device_train_batch_size={pairs}, learning_rate={lr},
    warmup_steps=0.1, bf16=True, use_cpu=True, save_strategy="no", logging_steps=20, seed=0, report_to=[],
    max_length=None)
trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_dict(rows), processing_class=tokenizer)
trainer.train()
seconds = time.perf_counter() - start
trainer.save_model({out!r} + "/model")
print(json.dumps({{"train_s": seconds, "peak_rss_mb": peak_rss_mb(), "pairs": comps.height}}))
open({out!r} + "/pairs.txt", "w").write(str(comps.height))
"""

EVAL_CHILD = """
import dataclasses, json, sys
sys.path.insert(0, {root!r})
from unirank.adapters import ChatAdapter
from unirank.data.sources import Preferences
from unirank.evaluation.report import evaluate_preferences, write_report
from unirank.module import UnirankModule
from unirank.scoring import Predictor, load_scorer

class WithoutSegments(Predictor):
    # TRL's collator passes no token_type_ids, so its model was trained with segment 0 throughout
    def score_texts(self, contexts, candidates):
        encoded = self.module.adapter.encode(self.module.tokenizer, contexts, candidates)
        encoded = [dataclasses.replace(e, token_type_ids=None) for e in encoded]
        return self.module.score_encoded(encoded, self.bf16)

tables = Preferences({path!r}, {format!r}, {validation}, {test}).load().split("test")
trl = UnirankModule(model={trl_model!r}, adapter=ChatAdapter(max_length={max_length}))
predictors = {{
    "TRL RewardTrainer": WithoutSegments(trl, "pairwise", bf16=True),
    "unirank BT only": load_scorer({bt_model!r}, bf16=True),
    "unirank full": load_scorer({full_model!r}, bf16=True),
}}
report = evaluate_preferences(predictors, tables)
print(write_report(report, {out!r}), file=sys.stderr)
print(json.dumps(json.loads(open({out!r} + "/metrics.json").read())))
"""


def unirank_fit(path: str, fmt: str, out: Path, pairwise: int, pointwise: int, max_length: int, groups: int):
    """The `unirank fit` command of one contender: the reward recipe on one preference file."""
    data = ["--data.source.init_args.path", path, "--data.source.init_args.format", fmt]
    data += ["--data.source.init_args.validation_fraction", str(VALIDATION)]
    data += ["--data.source.init_args.test_fraction", str(TEST), "--data.batch_groups", str(groups)]
    return fit_command("lightning_configs/reward.yaml", data, max_length, LR, (pairwise, pointwise), out)


def run_dataset(name: str, data_dir: Path, epochs: int, quick: bool, reuse: bool) -> dict:
    """Train the three contenders on one dataset, evaluate them on its test prompts."""
    from unirank.data.sources import Preferences

    relative, fmt, max_length = DATASETS[name]
    path = str((data_dir / relative).resolve())
    max_length = 96 if quick else max_length
    work = ROOT / "runs" / (f"bench-reward-{name}-quick" if quick else f"bench-reward-{name}")
    train = Preferences(path, fmt, VALIDATION, TEST).load().split("train")
    mean_items = train.items.height / train.groups.height
    groups = max(1, round(BATCH_SEQUENCES / mean_items))  # about 32 sequences per step, as TRL's 16 pairs
    shared = dict(root=str(ROOT), path=path, format=fmt, validation=VALIDATION, test=TEST, max_length=max_length)
    trl_recipe = TRL_CHILD.format(
        **shared,
        out=str(work / "trl"),
        epochs=epochs,
        pairs=BATCH_SEQUENCES // 2,
        lr=LR,
    )
    train_s = {
        "TRL RewardTrainer": train_once(work / "trl", trl_recipe, reuse),
        "unirank BT only": train_once(
            work / "bt", unirank_fit(path, fmt, work / "bt", epochs, 0, max_length, groups), reuse
        ),
        "unirank full": train_once(
            work / "full", unirank_fit(path, fmt, work / "full", epochs - 1, 1, max_length, groups), reuse
        ),
    }
    out_dir = RESULTS / (f"reward-{name}-quick" if quick else f"reward-{name}")
    metrics = run_child(
        EVAL_CHILD.format(
            **shared,
            out=str(out_dir),
            trl_model=str(work / "trl" / "model"),
            bt_model=str(work / "bt" / "model"),
            full_model=str(work / "full" / "model"),
        )
    )
    print((out_dir / "summary.txt").read_text())
    return {
        "data": path,
        "max_length": max_length,
        "train_groups": train.groups.height,
        "train_comparisons": train.comparisons.height,
        "groups_per_step": groups,
        "test_comparisons": metrics["comparisons"],
        "test_ties_excluded": metrics["ties_excluded"],
        "trl_pairs": trl_pairs(work / "trl"),
        "train_s": train_s,
        "systems": {
            name: {
                "accuracy": e["accuracy"],
                "n": e["n"],
                "pairwise_ece": e["pairwise_calibration"]["ece"],
                "pairwise_brier": e["pairwise_calibration"]["brier"],
                "pairwise_link": e["pairwise_link"],
            }
            for name, e in metrics["systems"].items()
        },
        "report": str(out_dir.relative_to(ROOT)),
    }


def trl_pairs(folder: Path) -> int:
    """The number of decided comparisons TRL trained on (ties have no TRL label)."""
    return int((folder / "pairs.txt").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--only", choices=sorted(DATASETS))
    parser.add_argument("--reuse", action="store_true", help="keep contenders already trained with the same recipe")
    args = parser.parse_args()
    names = [args.only] if args.only else (["pandalm"] if args.quick else list(DATASETS))
    epochs = 2 if args.quick else args.epochs
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
        "setup": {
            "backbone": "all-MiniLM-L6-v2",
            "epochs": epochs,
            "lr": LR,
            "sequences_per_step": BATCH_SEQUENCES,
            "split": {"train": 1 - VALIDATION - TEST, "validation": VALIDATION, "test": TEST},
            "precision": "bf16 autocast (training and scoring)",
        },
        "datasets": {name: run_dataset(name, Path(args.data), epochs, args.quick, args.reuse) for name in names},
    }
    stem = f"reward-{args.only}" if args.only else "reward"
    write_results(stem, args.quick, report)


if __name__ == "__main__":
    main()
