"""The GPU check: every recipe trains, exports and scores on CUDA, and packed decoders against TRL.

One command for one H100/H200 with no network, in at most about 8 minutes:

    python benchmarks/gpu_check.py --hh PATH/hh-rlhf-harmless/test.jsonl.gz [--parts recipes speed]

Writes benchmarks/results/decoder-gpu.json after every part (a run cut short still reports):
1. `environment`: GPU, torch, CUDA, transformers, lightning, and whether TRL is importable.
2. `recipes`: `unirank fit` of every recipe on CUDA (a random MiniLM-shaped encoder, or a random
   Qwen2.5-0.5B-shaped decoder for the decoder recipes; the demo data in data/), its export, `unirank
   score --device cuda`, and the export's probability on CUDA against the CPU (fp32; bf16 too).
3. `speed`: reward-model training on the first `--pairs` HH-RLHF pairs (up to 1,024 tokens, LoRA
   r = 16 on every linear layer, the head in full, gradient checkpointing, bf16 autocast), each
   contender in a fresh process, the second epoch timed: TRL's RewardTrainer; unirank padded,
   padding-free, padding-free + prefix sharing, at 8 pairs per step and at a token budget
   (`--budget` tokens per step and per row). Per contender: tokens/s (the pairs' own tokens over
   the timed epoch, the same numerator for every tool), peak CUDA memory (max_memory_allocated),
   the attention kernel, and model FLOP utilisation:

       MFU = 6 · N · tokens/s / peak,  N = the decoder's non-embedding parameters,
       peak = 989 TFLOP/s (H100/H200 SXM dense bf16; about 790 measured on an H200)

   (PaLM's convention: LoRA's frozen weights take no weight gradient, so 6·N overstates the work by
   up to a third; the recomputation of gradient checkpointing is not counted). Where the best
   contender stays under 30 % MFU, a torch.profiler summary of three of its steps says where the time goes.

Needs torch, transformers, lightning and unirank's other dependencies importable: jsonargparse (with
docstring-parser and typeshed-client), polars, ir-measures, pytrec-eval-terrier; TRL's row also
needs trl and datasets (with dill, multiprocess). No weights package, no network.
`bash benchmarks/gpu_wheels.sh` fetches those wheels into .whl/ (41 MB: polars 1.33.1, one wheel).
faiss-cpu (19 MB more) would pass a device call's 64 MiB, so where it is missing the reranker
recipes train on tables mined beforehand on a machine that has it, with the same random encoder:

    python benchmarks/gpu_check.py --mine-here          # here: writes .unirank-cache/gpu-check/mined/
    # on the GPU machine, carrying .whl and .unirank-cache/gpu-check/mined:
    pip install --no-index --no-deps --target /tmp/site .whl/*.whl && PYTHONPATH=/tmp/site:. \
        python benchmarks/gpu_check.py --hh data-carried/test.jsonl.gz
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, write_results  # noqa: E402

WORK = ROOT / ".unirank-cache" / "gpu-check"
ENCODER_RECIPES = ["debug", "reward", "reranker", "process", "reward-mixture"]
DECODER_RECIPES = ["reward-decoder", "reranker-decoder"]
PEAK_FLOPS = 989e12
CONTENDERS = {
    "trl": None,
    "unirank padded": {"padding_free": False, "share_prefix": False},
    "unirank padding-free": {"padding_free": True, "share_prefix": False},
    "unirank padding-free + prefix sharing": {"padding_free": True, "share_prefix": True},
}
UNIRANK_CLI = [sys.executable, "-m", "unirank.cli"]
MINED = WORK / "mined"
"""Tables of the reranker recipes mined on a machine with faiss (`--mine-here`), for a GPU machine without it."""


def has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def random_models(shape: str) -> tuple[Path, Path]:
    """The random encoder and decoder the recipes train, built from the demo data's text (the same
    weights wherever they are built: the same texts and seed)."""
    from unirank.model.random_decoders import SHAPES, build_decoder, build_encoder

    texts = [line.strip() for path in sorted((ROOT / "data").rglob("*.json*")) for line in path.open()][:2000]
    encoder = build_encoder(WORK / "encoder", texts=texts)
    return encoder, build_decoder(WORK / "decoder", "qwen2", dict(SHAPES[shape]), texts=texts)


def mine_here(encoder: Path) -> None:
    """`unirank mine` of each reranker recipe's BEIR folder with its mining settings and the random
    encoder, into MINED/<recipe> (carry that folder to a GPU machine without faiss-cpu)."""
    import yaml

    for recipe in ("reranker", "reranker-decoder"):
        source = yaml.safe_load((ROOT / "lightning_configs" / f"{recipe}.yaml").read_text())["data"]["source"]
        args = source["init_args"]
        settings = [w for k, v in args.get("mining", {}).items() for w in (f"--mining.{k}", json.dumps(v).strip('"'))]
        run([*UNIRANK_CLI, "mine", "--beir", args["beir_dir"], "--split", args.get("split", "train"),
             "--out", str(MINED / recipe), "--mining.encoder", str(encoder), *settings], WORK / f"mine-{recipe}.log")  # fmt: skip
        print(f"mined {recipe} → {MINED / recipe}")


def environment() -> dict:
    import lightning
    import torch
    import transformers

    try:
        import trl

        trl_version = trl.__version__
    except ImportError:
        trl_version = None
    cuda = torch.cuda.is_available()
    return {
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
        "lightning": lightning.__version__, "trl": trl_version, "python": sys.version.split()[0],
    }  # fmt: skip


def run(command: list[str], log: Path) -> float:
    """Run a command from the repository root, its output to `log`; the seconds it took. Raises with
    the log's tail if it fails."""
    started = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        done = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    if done.returncode:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-25:])
        raise RuntimeError(f"exit {done.returncode}: {' '.join(command)}\n{tail}")
    return time.perf_counter() - started


def recipe_check(recipe: str, encoder: Path, decoder: Path, accelerator: str = "gpu") -> dict:
    """Fit one recipe on CUDA, export it, score with `unirank score --device cuda`, and compare the
    export's probabilities on CUDA with the CPU's."""
    import numpy as np

    from unirank.model import Model

    folder = WORK / recipe
    backbone = decoder if recipe in DECODER_RECIPES else encoder
    device = "cuda" if accelerator == "gpu" else "cpu"
    options = ["--model.model", str(backbone), "--trainer.accelerator", accelerator, "--trainer.devices", "1",
               "--trainer.default_root_dir", str(folder), "--export.dirpath", str(folder / "model"),
               "--export.overwrite", "true"]  # fmt: skip
    if recipe.startswith("reranker") and has_faiss():  # mined there by the random encoder (no weights package)
        options += ["--data.source.init_args.mining.encoder", str(encoder), "--data.source.init_args.mining.cache_dir",
                    str(folder / "mined")]  # fmt: skip
    elif recipe.startswith("reranker"):  # no faiss there: the tables `--mine-here` wrote beforehand
        if not (MINED / recipe / "items.parquet").exists():
            raise RuntimeError(f"faiss-cpu is not importable and {MINED / recipe} holds no mined tables (--mine-here)")
        table_source = {"class_path": "unirank.data.sources.TablesDir", "init_args": {"path": str(MINED / recipe)}}
        options += ["--data.source", json.dumps(table_source)]
    row = {"fit_s": round(run([*UNIRANK_CLI, "fit", "--config", f"lightning_configs/{recipe}.yaml", *options],
                              folder.with_suffix(".log")), 1)}  # fmt: skip
    log = folder.with_suffix(".log").read_text(errors="replace")
    row["attention"] = next((line for line in log.splitlines() if line.startswith("packed rows attend")), None)
    pairs = [("How do I boil an egg?", "Put it in boiling water for 9 minutes."),
             ("What is the capital of France?", "Paris is the capital and largest city of France " * 3)]  # fmt: skip
    rows = folder / "rows.jsonl"
    rows.write_text("".join(json.dumps({"context": c, "candidate": t}) + "\n" for c, t in pairs))
    if recipe != "process":
        run([*UNIRANK_CLI, "score", "--model", str(folder / "model"), "--input", str(rows), "--out",
             str(folder / "scored.jsonl"), "--device", device], folder / "score.log")  # fmt: skip
        row["score_on_device"] = [json.loads(line)["probability"] for line in (folder / "scored.jsonl").open()]
        read = lambda model: model.predict(pairs)  # noqa: E731
    else:
        steps = [["7 + 7 = 14", "14 / 2 = 7"], ["7 + 7 = 15", "so the answer is 7.5"]]
        read = lambda model: np.array([r["probability"] for r in model.score_steps(["(7+7)/2?"] * 2, steps)])  # noqa: E731
    cpu = read(Model.from_pretrained(folder / "model", device="cpu"))
    for precision in ("fp32", "bf16"):
        cuda = read(Model.from_pretrained(folder / "model", bf16=precision == "bf16", device=device))
        row[f"cuda_vs_cpu_{precision}"] = float(np.max(np.abs(cuda - cpu)))
    row["within"] = row["cuda_vs_cpu_fp32"] <= 1e-5 and row["cuda_vs_cpu_bf16"] <= 1e-3
    return row


def speed_child(args: argparse.Namespace) -> None:
    """One contender in this (fresh) process: prints its row as JSON."""
    import lightning as L
    import torch

    from benchmarks.decoder import EPOCHS, LORA, LR, MAX_LENGTH, PAIRS_PER_STEP, pair_tokens
    from unirank.domains.chat.source import Preferences

    data, folder, packing = Path(args.data), Path(args.model), CONTENDERS[args.child]
    source = Preferences(str(data), "hh-rlhf", validation_fraction=0.0, groups="comparison")
    if args.child == "trl":
        seconds, kernel = trl_epoch(data, folder), "sdpa (padded)"
    else:
        from unirank.data.datamodule import UnirankDataModule
        from unirank.module import Calibration, LoRA, Packing, Schedule, UnirankModule
        from unirank.adapters import ChatAdapter

        budget = args.budget if args.budget and packing["padding_free"] else None
        module = UnirankModule(
            model=str(folder), adapter=ChatAdapter(max_length=MAX_LENGTH),
            schedule=Schedule(pairwise_epochs=EPOCHS, pointwise_epochs=0),
            calibration=Calibration(final="none", uncertainty="none"), lr=LR, dropout=0.0, warmup_ratio=0.0,
            lora=LoRA(**LORA), gradient_checkpointing=True, packing=Packing(**packing, max_tokens=budget or 4096),
        )  # fmt: skip
        clock = CudaEpochClock(profile=args.profile)
        data_module = UnirankDataModule(source, batch_groups=PAIRS_PER_STEP, batch_tokens=budget,
                                        chunk_size=2 * PAIRS_PER_STEP)  # fmt: skip
        L.Trainer(accelerator=args.accelerator, devices=1, precision="bf16-mixed", max_epochs=EPOCHS, logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                  limit_val_batches=0, num_sanity_val_steps=0, callbacks=[clock]).fit(module, data_module)  # fmt: skip
        seconds, kernel = clock.seconds[-1], module.scorer.model.config._attn_implementation
    from transformers import AutoTokenizer

    tokens = sum(
        len(a) + len(b) for a, b in pair_tokens(source.load().split("train"), AutoTokenizer.from_pretrained(folder))
    )
    n = non_embedding_parameters(folder)
    row = {"tool": args.child, "budget": args.budget if args.child != "trl" else None, "epoch_s": seconds,
           "tokens": tokens, "tokens_per_s": tokens / seconds, "attention": kernel,
           "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None, "non_embedding_parameters": n,
           "mfu": 6 * n * tokens / seconds / PEAK_FLOPS}  # fmt: skip
    if args.profile and args.child != "trl":
        row["profile"] = clock.profile
    print(json.dumps(row))


class CudaEpochClock:
    """Times each epoch (synchronised); with profile, records steps 1-3 of the last epoch (the
    epoch's end closes the record where it has fewer)."""

    def __new__(cls, profile: bool = False):
        import lightning as L
        import torch

        class Clock(L.Callback):
            def __init__(self):
                self.seconds, self.started, self.profile, self.profiler = [], 0.0, None, None

            def on_train_epoch_start(self, trainer, module):
                _sync()
                self.started = time.perf_counter()

            def on_train_epoch_end(self, trainer, module):
                _sync()
                self.seconds.append(time.perf_counter() - self.started)
                self.stop_profile()

            def stop_profile(self):
                if self.profiler is not None:
                    _sync()
                    self.profiler.__exit__(None, None, None)
                    self.profile = self.profiler.key_averages().table(sort_by="self_device_time_total", row_limit=15)
                    self.profiler = None

            def on_train_batch_start(self, trainer, module, batch, index):
                if profile and trainer.current_epoch == trainer.max_epochs - 1 and index == 1:
                    self.profiler = torch.profiler.profile(
                        activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
                    )
                    self.profiler.__enter__()

            def on_train_batch_end(self, trainer, module, outputs, batch, index):
                if index == 3:
                    self.stop_profile()

        return Clock()


def trl_epoch(data: Path, folder: Path) -> float:
    """TRL's RewardTrainer + peft on the same token ids, bf16 on CUDA; the second epoch's seconds."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl import RewardConfig, RewardTrainer

    from benchmarks.decoder import EPOCHS, LORA, LR, PAIRS_PER_STEP, pair_tokens
    from unirank.domains.chat.source import Preferences

    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = tokenizer.eos_token
    pairs = pair_tokens(Preferences(str(data), "hh-rlhf", validation_fraction=0.0).load().split("train"), tokenizer)

    class Clock(TrainerCallback):
        seconds: list = []

        def on_epoch_begin(self, args, state, control, **kwargs):
            _sync()
            self.started = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            _sync()
            self.seconds.append(time.perf_counter() - self.started)

    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    peft = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                      target_modules="all-linear", task_type="SEQ_CLS")  # fmt: skip
    config = RewardConfig(
        output_dir=str(WORK / "trl-run"), num_train_epochs=EPOCHS, per_device_train_batch_size=PAIRS_PER_STEP,
        learning_rate=LR, lr_scheduler_type="constant", bf16=True, save_strategy="no", logging_steps=1000,
        seed=0, report_to=[], max_length=None, gradient_checkpointing=True,
    )  # fmt: skip
    clock = Clock()
    rows = {"chosen_ids": [a for a, _ in pairs], "rejected_ids": [b for _, b in pairs]}
    RewardTrainer(model=model, args=config, train_dataset=Dataset.from_dict(rows), processing_class=tokenizer,
                  peft_config=peft, callbacks=[clock]).train()  # fmt: skip
    return clock.seconds[-1]


def _sync() -> None:
    """Wait for the GPU's queued work (nothing to wait for on a CPU smoke run)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def non_embedding_parameters(folder: Path) -> int:
    """The decoder's parameters less its token embedding (and a tied LM head)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(folder))
    embedding = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - embedding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hh", type=Path, help="HH-RLHF harmless test.jsonl.gz (the speed part's pairs)")
    parser.add_argument("--parts", nargs="+", default=["recipes", "speed"], choices=["recipes", "speed"])
    parser.add_argument("--recipes", nargs="+", default=ENCODER_RECIPES + DECODER_RECIPES)
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--shape", default="qwen2.5-0.5b")
    parser.add_argument("--budget", type=int, default=32768, help="tokens per step and per row (token-budget runs)")
    parser.add_argument(
        "--mine-here", action="store_true", help="mine the reranker recipes' tables (needs faiss), then stop"
    )
    parser.add_argument("--accelerator", default="gpu", help="cpu: a smoke run of the script on a CPU")
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=list(CONTENDERS))
    parser.add_argument("--child", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return speed_child(args)
    from unirank.model.random_decoders import SHAPES

    WORK.mkdir(parents=True, exist_ok=True)
    if args.mine_here:
        return mine_here(random_models(args.shape)[0])
    report = {"environment": environment(), "recipes": {}, "speed": []}

    def save() -> None:
        write_results("decoder-gpu", False, report)

    if args.accelerator != "gpu":  # a smoke run never replaces the GPU's figures
        WORK.joinpath("results").mkdir(exist_ok=True)
        save = lambda: (WORK / "results" / "decoder-gpu-smoke.json").write_text(json.dumps(report, indent=2))  # noqa: E731
    save()
    if "recipes" in args.parts:
        encoder, decoder = random_models(args.shape)
        for recipe in args.recipes:
            try:
                report["recipes"][recipe] = recipe_check(recipe, encoder, decoder, args.accelerator)
            except Exception as error:  # noqa: BLE001 - one recipe's failure is a result; the others still run
                report["recipes"][recipe] = {"error": str(error)[-3000:]}
            print(f"{recipe}: {report['recipes'][recipe]}", flush=True)
            save()
    if "speed" in args.parts:
        from benchmarks.decoder import prepare

        data, folder = prepare(args.pairs, args.shape, SHAPES[args.shape]["num_hidden_layers"], hh=args.hh)
        runs = [(name, None) for name in args.contenders]
        runs += [(name, args.budget) for name in args.contenders if name != "trl" and CONTENDERS[name]["padding_free"]]
        for name, budget in runs:
            command = [sys.executable, "-m", "benchmarks.gpu_check", "--child", name, "--data", str(data),
                       "--model", str(folder), "--budget", str(budget or 0), "--accelerator", args.accelerator]  # fmt: skip
            log = WORK / f"speed-{name.replace(' ', '_')}-{budget or 'pairs'}.log"
            try:
                run(command, log)
                report["speed"].append(json.loads(log.read_text().strip().splitlines()[-1]))
            except Exception as error:  # noqa: BLE001
                report["speed"].append({"tool": name, "budget": budget, "error": str(error)[-3000:]})
            print(report["speed"][-1], flush=True)
            save()
        measured = [r for r in report["speed"] if "mfu" in r and r["tool"] != "trl"]
        best = max(measured, key=lambda r: r["tokens_per_s"], default=None)
        if best is not None and best["mfu"] < 0.30:
            command = [sys.executable, "-m", "benchmarks.gpu_check", "--child", best["tool"], "--data", str(data),
                       "--model", str(folder), "--budget", str(best["budget"] or 0), "--profile",
                       "--accelerator", args.accelerator]  # fmt: skip
            try:
                run(command, WORK / "profile.log")
                report["profile"] = json.loads((WORK / "profile.log").read_text().strip().splitlines()[-1])["profile"]
            except Exception as error:  # noqa: BLE001
                report["profile"] = f"failed: {str(error)[-2000:]}"
            save()
        trl = next((r for r in report["speed"] if r["tool"] == "trl" and "tokens_per_s" in r), None)
        if trl is not None:
            for r in measured:
                r["speed_vs_trl"] = r["tokens_per_s"] / trl["tokens_per_s"]
                r["memory_vs_trl"] = r["peak_cuda_mb"] / trl["peak_cuda_mb"]
        save()


if __name__ == "__main__":
    main()
