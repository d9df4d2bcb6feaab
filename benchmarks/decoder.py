"""Decoder reward-model training speed and memory: unirank against TRL's RewardTrainer, the same
LoRA, the same gradient checkpointing, the same pairs, each run in a fresh process, interleaved rounds.

Model: random weights of a real decoder shape (speed and memory do not depend on the values),
built in-process (`unirank.model.random_decoders`): on this CPU Qwen2.5-0.5B's width, heads, MLP and
151,936-row embedding with 4 of its 24 layers (`--shape qwen2.5-0.5b --layers 4`; on a GPU the full
shapes). Tokenizer: a byte-level BPE trained on the HH-RLHF test file's text (asked for 32,000
tokens, it learns 23,922: token counts close to a real BPE's on English). Pairs: the first
`--pairs` HH-RLHF harmless test pairs at their real lengths (chat template, prompt cut from the left
at 1,024 tokens), the same token ids for both tools.
Training: LoRA r = 16, alpha 32, dropout 0.05 on every linear layer, the head in full, gradient
checkpointing, fp32 AdamW, 8 pairs per step, dropout off, two epochs; the second epoch is timed, so
both tools process exactly the same pairs in the timed part.

Contenders (`--contenders`): TRL's RewardTrainer (peft, pads each batch to its longest); unirank
with padded batches (length-sorted chunks), padding-free rows, and padding-free rows with each
prompt encoded once per comparison (prefix sharing), so the share of each is measured alone.
Reported per contender: tokens/s (the pairs' own tokens, chosen + rejected, over the timed epoch:
the same numerator for every tool), the tokens it actually encoded, and peak resident memory
(VmHWM); per round the ratio to TRL in the same round; the median ratio with a 95 % bootstrap
interval over rounds.

    python benchmarks/decoder.py [--quick] [--rounds 3] [--pairs 48] [--layers 4] [--contenders ...]
Writes benchmarks/results/decoder.json (--quick: 16 pairs, 1 layer, 1 round → decoder-quick.json).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, machine, peak_rss_mb, run_module, write_results  # noqa: E402

HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless" / "test.jsonl.gz"
CACHE = ROOT / ".unirank-cache" / "decoder-benchmark"
MAX_LENGTH, PAIRS_PER_STEP, LR, EPOCHS = 1024, 8, 1e-4, 2
LORA = dict(r=16, alpha=32, dropout=0.05)
CONTENDERS = {
    "trl": None,
    "unirank padded": {"padding_free": False, "share_prefix": False},
    "unirank padding-free": {"padding_free": True, "share_prefix": False},
    "unirank padding-free + prefix sharing": {"padding_free": True, "share_prefix": True},
}


def prepare(pairs: int, shape: str, layers: int, hh: Path = HH) -> tuple[Path, Path]:
    """The pairs file (the first `pairs` HH-RLHF test rows of `hh`) and the random model folder, built once."""
    from unirank.model.random_decoders import SHAPES, build_decoder

    folder = CACHE / f"{shape}-{layers}-layers"
    data = CACHE / f"hh-{pairs}.jsonl"
    CACHE.mkdir(parents=True, exist_ok=True)
    with gzip.open(hh, "rt") as rows:
        lines = rows.readlines()
    data.write_text("".join(lines[:pairs]))
    if not (folder / "config.json").exists():
        texts = [text for line in lines for text in json.loads(line).values()]  # the whole test file's text
        sizes = dict(SHAPES[shape], num_hidden_layers=layers)
        build_decoder(folder, "qwen2", sizes, texts=texts, vocab_size=151_936, tokenizer_vocab=32_000)
    return data, folder


def pair_tokens(tables, tokenizer) -> list[tuple[list[int], list[int]]]:
    """The (chosen, rejected) token ids unirank's chat adapter makes: what both tools train on."""
    from benchmarks.trl_train import chosen_rejected_ids

    rows = chosen_rejected_ids(tables, tokenizer, MAX_LENGTH)
    return list(zip(rows["chosen_ids"], rows["rejected_ids"]))


def unirank_run(data: Path, folder: Path, packing: dict) -> dict:
    import lightning as L

    from unirank.adapters import ChatAdapter
    from unirank.data.datamodule import UnirankDataModule
    from unirank.domains.chat.source import Preferences
    from unirank.module import Calibration, LoRA, Packing, Schedule, UnirankModule

    class EpochClock(L.Callback):
        def __init__(self):
            self.started, self.seconds, self.encoded = 0.0, [], 0

        def on_train_epoch_start(self, trainer, module):
            self.started = time.perf_counter()
            self.encoded = 0

        def on_train_batch_end(self, trainer, module, outputs, batch, index):
            self.encoded += sum(int(c["input_ids"].numel()) for c in batch.chunks)

        def on_train_epoch_end(self, trainer, module):
            self.seconds.append(time.perf_counter() - self.started)

    module = UnirankModule(
        model=str(folder), adapter=ChatAdapter(max_length=MAX_LENGTH),
        schedule=Schedule(pairwise_epochs=EPOCHS, pointwise_epochs=0),
        calibration=Calibration(final="none", uncertainty="none"), lr=LR, dropout=0.0, warmup_ratio=0.0,
        lora=LoRA(**LORA), gradient_checkpointing=True, packing=Packing(**packing, max_tokens=4096),
    )  # fmt: skip
    source = Preferences(str(data), "hh-rlhf", validation_fraction=0.0, groups="comparison")
    clock = EpochClock()
    trainer = L.Trainer(
        accelerator="cpu", precision="32-true", max_epochs=EPOCHS, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[clock],
    )  # fmt: skip
    trainer.fit(module, UnirankDataModule(source, batch_groups=PAIRS_PER_STEP, chunk_size=2 * PAIRS_PER_STEP))
    tokens = sum(len(a) + len(b) for a, b in pair_tokens(source.load().split("train"), module.tokenizer))
    return {"epoch_s": clock.seconds[-1], "tokens": tokens, "encoded_tokens": clock.encoded}


def trl_run(data: Path, folder: Path) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl import RewardConfig, RewardTrainer

    from unirank.domains.chat.source import Preferences

    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = tokenizer.eos_token
    pairs = pair_tokens(Preferences(str(data), "hh-rlhf", validation_fraction=0.0).load().split("train"), tokenizer)

    class EpochClock(TrainerCallback):
        def __init__(self):
            self.started, self.seconds = 0.0, []

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self.started)

    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    peft = LoraConfig(
        r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"], target_modules="all-linear",
        task_type="SEQ_CLS",
    )  # fmt: skip
    config = RewardConfig(
        output_dir=str(CACHE / "trl-run"), num_train_epochs=EPOCHS, per_device_train_batch_size=PAIRS_PER_STEP,
        learning_rate=LR, lr_scheduler_type="constant", use_cpu=True, bf16=False, save_strategy="no",
        logging_steps=1000, seed=0, report_to=[], max_length=None, gradient_checkpointing=True,
    )  # fmt: skip
    clock = EpochClock()
    rows = {"chosen_ids": [a for a, _ in pairs], "rejected_ids": [b for _, b in pairs]}
    trainer = RewardTrainer(
        model=model, args=config, train_dataset=Dataset.from_dict(rows), processing_class=tokenizer,
        peft_config=peft, callbacks=[clock],
    )  # fmt: skip
    trainer.train()
    tokens = sum(len(a) + len(b) for a, b in pairs)
    return {"epoch_s": clock.seconds[-1], "tokens": tokens, "encoded_tokens": None}


def child(args: argparse.Namespace) -> None:
    data, folder = Path(args.data), Path(args.model)
    row = trl_run(data, folder) if args.child == "trl" else unirank_run(data, folder, CONTENDERS[args.child])
    row |= {"tool": args.child, "tokens_per_s": row["tokens"] / row["epoch_s"], "peak_rss_mb": peak_rss_mb()}
    print(json.dumps(row))


def median_ratio(values: list[float]) -> dict:
    import numpy as np

    from unirank.metrics.bootstrap import bootstrap_interval

    values = np.asarray(values, dtype=np.float64)
    low, high = bootstrap_interval(lambda rounds: float(np.median(values[rounds])), len(values))
    return {"median": float(np.median(values)), "interval": [low, high], "rounds": values.round(4).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke check: 16 pairs, 1 layer, 1 round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=48)
    parser.add_argument("--shape", default="qwen2.5-0.5b")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=list(CONTENDERS))
    parser.add_argument("--child", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.quick:
        args.pairs, args.layers, args.rounds = 16, 1, 1
    data, folder = prepare(args.pairs, args.shape, args.layers)
    runs: dict[str, list[dict]] = {name: [] for name in args.contenders}
    for round_number in range(args.rounds):
        order = args.contenders if round_number % 2 == 0 else args.contenders[::-1]
        for name in order:
            row = run_module("benchmarks.decoder", "--child", name, "--data", str(data), "--model", str(folder))
            runs[name].append(row)
            print(f"round {round_number}: {name:40s} {row['tokens_per_s']:8.1f} tokens/s, "
                  f"peak {row['peak_rss_mb']:7.0f} MB", flush=True)  # fmt: skip
    summary = {}
    for name, rows in runs.items():
        summary[name] = {
            "tokens_per_s_median": statistics.median(r["tokens_per_s"] for r in rows),
            "peak_rss_mb_median": statistics.median(r["peak_rss_mb"] for r in rows),
            "encoded_tokens": rows[0]["encoded_tokens"],
            "tokens": rows[0]["tokens"],
        }
        if name != "trl" and "trl" in runs:
            summary[name]["speed_vs_trl"] = median_ratio(
                [r["tokens_per_s"] / t["tokens_per_s"] for r, t in zip(rows, runs["trl"])]
            )
            summary[name]["memory_vs_trl"] = median_ratio(
                [r["peak_rss_mb"] / t["peak_rss_mb"] for r, t in zip(rows, runs["trl"])]
            )
    report = {
        "machine": machine(),
        "command": "python benchmarks/decoder.py " + " ".join(sys.argv[1:]),
        "model": f"random {args.shape} shape with {args.layers} layers, vocab 151,936 (unirank.model.random_decoders)",
        "pairs": args.pairs, "pairs_per_step": PAIRS_PER_STEP, "max_length": MAX_LENGTH, "lora": LORA,
        "precision": "fp32", "gradient_checkpointing": True, "summary": summary, "runs": runs,
    }  # fmt: skip
    path = write_results("decoder", args.quick, report)
    print(json.dumps(summary, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
