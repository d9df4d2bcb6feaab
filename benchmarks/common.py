"""Shared by the benchmark scripts: paths, running a measured child process, peak memory."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from unirank.atomic import atomic_path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmHWM, VmRSS), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_rss_mb() -> float:
    """Peak resident memory of this process image (VmHWM). getrusage's ru_maxrss survives execve on
    Linux, so a child started by a large parent would report the parent's peak; VmHWM does not."""
    return _status_mb("VmHWM")


def rss_mb() -> float:
    """Resident memory of this process now (VmRSS)."""
    return _status_mb("VmRSS")


def anonymous_rss_mb() -> float:
    """Resident memory that is not page cache (RssAnon): mapped files the kernel may drop are left out."""
    return _status_mb("RssAnon")


def live_tensor_mb() -> float:
    """The storage of every tensor the process still references (each storage once), in MB."""
    import gc

    import torch

    storages = {}
    for obj in gc.get_objects():
        if torch.is_tensor(obj):
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values()) / 2**20


def machine() -> dict:
    """The machine a timing was taken on: platform, CPU model, cores, and the CPU's widest vector
    extension and whether it multiplies bf16 natively (what decides fp32 against bf16 speed on a CPU)."""
    model, flags = platform.processor() or "unknown CPU", set()
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    vector = "AVX512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return {"platform": platform.platform(), "cpu": model, "cores": len(os.sched_getaffinity(0)), "vector": vector,
            "native_bf16": bool(flags & {"avx512_bf16", "amx_bf16"})}  # fmt: skip


def _child_env() -> dict[str, str]:
    """The environment of a measured child: offline, warnings off, no tokenizer threads."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "TOKENIZERS_PARALLELISM": "false"}


def run_module(module: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """Run `python -m module args` in a fresh process from the repository root (offline, warnings
    off, `env` added; its stderr shown) and parse the JSON object it prints last on stdout."""
    command = [sys.executable, "-m", module, *args]
    environment = {**_child_env(), **(env or {})}
    out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=environment, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_measurement(name: str, **options) -> dict:
    """`benchmarks.child_runs` NAME with these keyword options, in a fresh process (see run_module)."""
    return run_module("benchmarks.child_runs", name, *[word for k, v in options.items() for word in (f"--{k}", str(v))])


def run_timed(command: list[str]) -> float:
    """Run a command offline from the repository root (its output shown); return its wall time (s)."""
    start = time.perf_counter()
    subprocess.run(command, check=True, env=_child_env(), cwd=ROOT)
    return time.perf_counter() - start


def unirank_command(*args: str) -> list[str]:
    """`unirank ARGS...` run by this interpreter."""
    return [sys.executable, "-m", "unirank.cli", *args]


def fit_command(config: str, data: list[str], max_length: int, lr: float, epochs: tuple[int, int], out: Path,
                extra: list[str] = ()) -> list[str]:  # fmt: skip
    """`unirank fit` with a recipe, data overrides, the adapter's max_length, lr, (pairwise,
    pointwise) epochs and `extra` overrides; logging off, exporting to out/model."""
    return unirank_command(
        "fit", "--config", config, *data,
        "--model.adapter.init_args.max_length", str(max_length), "--model.lr", str(lr),
        "--model.schedule.pairwise_epochs", str(epochs[0]), "--model.schedule.pointwise_epochs", str(epochs[1]),
        *extra,
        "--trainer.logger", "false", "--trainer.default_root_dir", str(out), "--export.dirpath", str(out / "model"),
    )  # fmt: skip


def median_range(values: list[float]) -> dict:
    """The median of repeated measurements and their 2.5–97.5 % range, rounded for a results file."""
    low, high = np.percentile(values, [2.5, 97.5])
    return {"median": round(float(np.median(values)), 4), "range_95": [round(float(low), 4), round(float(high), 4)]}


def write_results(stem: str, quick: bool, report: dict) -> Path:
    """results/<stem>.json, or <stem>-quick.json for a --quick run."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / (f"{stem}-quick.json" if quick else f"{stem}.json")
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    report.setdefault("command", shlex.join(["python", str(shown), *sys.argv[1:]]))
    with atomic_path(out) as temporary:
        temporary.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return out
