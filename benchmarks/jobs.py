"""Run benchmark contenders as child processes, several at once where the machine allows (a GPU
machine with many cores); each job is a list of commands run in order, its output in a log file."""

from __future__ import annotations

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
