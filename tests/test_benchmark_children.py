"""The benchmarks' fresh-process machinery: measurements are a real module (importable, typed, runnable), and a
partial rerun keeps what it did not rerun."""

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


def test_a_partial_rerun_keeps_a_reused_contenders_time_and_final_calibration_without_its_model(tmp_path):
    from benchmarks.jobs import reused_reports, slug

    for name in ("kept", "rerun"):
        (tmp_path / slug(name)).mkdir()
        (tmp_path / slug(name) / "metrics.json").write_text(json.dumps({"systems": {name: {"ndcg@10": 0.5}}}))
    fit = {"a": 0.85, "b": -2.48}
    earlier = {"train_s": {"kept": 7232.0}, "systems": {"kept": {"final_calibration": fit}}}
    kept = reused_reports(["kept", "rerun", "never run"], ["rerun"], tmp_path, earlier)
    assert kept == {"kept": ({"systems": {"kept": {"ndcg@10": 0.5}}}, 7232.0, fit)}
    assert reused_reports(["kept"], [], tmp_path, {})["kept"][1:] == (None, None)
