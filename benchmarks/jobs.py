"""Run benchmark contenders as child processes, several at once where the machine allows (a GPU
machine with many cores); each job is a list of commands run in order, its output in a log file."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import ROOT, _child_env


@dataclass
class Job:
    """name: the contender; commands: run in order (train, then evaluate); log: their output."""

    name: str
    commands: list[list[str]]
    log: Path
    seconds: list[float] = field(default_factory=list)
    returncode: int | None = None


def run_jobs(jobs: list[Job], parallel: int) -> list[Job]:
    """Run the jobs, at most `parallel` at a time; a failed command ends its job (returncode ≠ 0)
    and the others go on. Returns the jobs with their wall times per command."""
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            job.log.parent.mkdir(parents=True, exist_ok=True)
            running.append([job, 0, *_start(job, 0)])
        time.sleep(0.5)
        for entry in list(running):
            job, step, process, started, handle = entry
            code = process.poll()
            if code is None:
                continue
            handle.close()
            job.seconds.append(time.perf_counter() - started)
            if code != 0 or step + 1 == len(job.commands):
                job.returncode = code
                running.remove(entry)
                print(
                    f"{'done' if code == 0 else f'FAILED ({code})'}: {job.name} ({sum(job.seconds):.0f} s)", flush=True
                )
            else:
                entry[1:] = [step + 1, *_start(job, step + 1)]
    return jobs


def _start(job: Job, step: int):
    handle = open(job.log, "a")
    handle.write(f"$ {' '.join(job.commands[step])}\n")
    handle.flush()
    process = subprocess.Popen(job.commands[step], stdout=handle, stderr=subprocess.STDOUT, env=_child_env(), cwd=ROOT)
    return process, time.perf_counter(), handle


def finished_reports(jobs: list[Job], reports: Path) -> tuple[dict[str, dict], dict[str, float], list[str]]:
    """({contender: its metrics.json}, {contender: training wall time}, failed contenders) of jobs
    whose report folder is reports/<slug of the contender's name>."""
    metrics, train_s, failed = {}, {}, []
    for job in jobs:
        path = reports / slug(job.name) / "metrics.json"
        if job.returncode != 0 or not path.exists():
            failed.append(job.name)
            continue
        metrics[job.name], train_s[job.name] = json.loads(path.read_text()), job.seconds[0]
    return metrics, train_s, failed


def reused_reports(
    contenders, run_now: list[str], reports: Path, earlier: dict
) -> dict[str, tuple[dict, float | None, dict | None]]:
    """Contenders not run in this invocation whose report folder an earlier run left: {name: (its
    metrics.json, its training time and its final calibration as the earlier results recorded them)},
    so a partial rerun (--only / --contenders) updates its own rows and keeps the others (the results
    list them as "reused"), in a checkout that no longer holds their trained models. `earlier`: the
    earlier results' block with "train_s" and "systems" ({} without one)."""
    kept = {}
    for name in contenders:
        path = reports / slug(name) / "metrics.json"
        if name not in run_now and path.exists():
            fit = earlier.get("systems", {}).get(name, {}).get("final_calibration")
            kept[name] = (json.loads(path.read_text()), earlier.get("train_s", {}).get(name), fit)
    return kept


def slug(name: str) -> str:
    """A contender's name as a folder name."""
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


def final_calibration(model: Path) -> dict | None:
    """The final calibration an export records in its unirank.json (None without one)."""
    info = model / "unirank.json"
    return json.loads(info.read_text())["calibration"].get("final_fit") if info.exists() else None


def paired_versus(per_group: dict[str, dict], reference: str, metric: str) -> dict[str, dict]:
    """{system: paired_difference(system − reference)} on `metric` for every system whose report
    holds per-group values (queries, prompts) of it, the reference left out."""
    from unirank.metrics.bootstrap import paired_difference

    if metric not in per_group.get(reference, {}):
        return {}
    return {
        name: paired_difference(values[metric], per_group[reference][metric])
        for name, values in per_group.items()
        if name != reference and metric in values
    }
