"""The benchmarks' fresh-process measurements are a real module: importable, typed, runnable."""

from __future__ import annotations

import inspect
import json

import numpy as np

from benchmarks import child_runs


def test_every_measurement_takes_options_the_dispatcher_can_convert():
    for name, run in child_runs.RUNS.items():
        kinds = {p.annotation for p in inspect.signature(run, eval_str=True).parameters.values()}
        assert kinds <= {int, float, str, bool}, name


def test_a_measurement_runs_from_its_command_line_and_prints_one_json_line(capsys, tmp_path):
    child_runs.main(["fit_drawn", "--link", "thurstone", "--n", "200", "--m", "2000", "--seed", "0",
                     "--outcomes", "thurstone"])  # fmt: skip
    fit = json.loads(capsys.readouterr().out)
    assert fit["converged"] and (fit["comparisons"], fit["items"]) == (2000, 200) and fit["peak_rss_mb"] > 0
    child_runs.main(["index_clustered", "--n", "3000", "--kind", "flat", "--out", str(tmp_path / "hits.npy")])
    search = json.loads(capsys.readouterr().out)
    assert search["kind"] == "flat" and np.load(tmp_path / "hits.npy").shape == (1000, 100)
