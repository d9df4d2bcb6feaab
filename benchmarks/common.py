"""Shared by the benchmark scripts: paths, running a measured child process, peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"


def peak_rss_mb() -> float:
    """Peak resident memory of this process image (VmHWM). getrusage's ru_maxrss survives execve on
    Linux, so a child started by a large parent would report the parent's peak; VmHWM does not."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_child(code: str) -> dict:
    """Run `code` in a fresh Python process (offline, warnings off; its stderr shown) and parse the
    JSON object it prints last on stdout."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.PIPE, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_results(stem: str, quick: bool, report: dict) -> Path:
    """results/<stem>.json, or <stem>-quick.json for a --quick run."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / (f"{stem}-quick.json" if quick else f"{stem}.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return out
