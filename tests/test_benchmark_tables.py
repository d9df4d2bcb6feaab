"""The README's tables are computed from the results files, not typed: the seed table's arithmetic."""

from __future__ import annotations

import json

import pytest

from benchmarks import table


@pytest.fixture
def results(tmp_path, monkeypatch):
    """An empty results folder that table.py reads, with report folders under tmp_path."""
    folder = tmp_path / "results"
    folder.mkdir()
    monkeypatch.setattr(table, "RESULTS", folder)
    monkeypatch.setattr(table, "ROOT", tmp_path)
    return folder


def _write_seed(results, root, seed: int, per_query: dict[str, dict[str, float]], stem: str = "") -> None:
    reports = f"reports-{stem or seed}"
    for name, values in per_query.items():
        folder = root / reports / table.slug(name)
        folder.mkdir(parents=True)
        entry = {"ndcg@10": sum(values.values()) / len(values), "per_group": {"ndcg@10": values}}
        (folder / "metrics.json").write_text(json.dumps({"systems": {name: entry}}))
    systems = {name: {"ndcg@10": sum(v.values()) / len(v), "ece": 0.01 * (seed + 1)} for name, v in per_query.items()}
    run = {"systems": systems, "reports": reports, "setup": {"contenders": {name: {} for name in per_query}}}
    stem = stem or "reranker" + (f"-seed-{seed}" if seed else "")
    (results / f"{stem}.json").write_text(json.dumps(run))


def test_seed_table_averages_each_query_over_the_seeds_both_systems_ran(tmp_path, results):
    queries = [str(q) for q in range(40)]
    _write_seed(results, tmp_path, 0, {"unirank full": dict.fromkeys(queries, 0.6), "BT": dict.fromkeys(queries, 0.5)})
    _write_seed(results, tmp_path, 1, {"unirank full": dict.fromkeys(queries, 0.8), "BT": dict.fromkeys(queries, 0.8)})
    _write_seed(results, tmp_path, 2, {"unirank full": dict.fromkeys(queries, 0.7)})
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in table.reranker_seeds()[2:]}
    assert rows["unirank full"][1:5] == ["0.600", "0.800", "0.700", "0.700"]
    assert rows["BT"][1:5] == ["0.500", "0.800", "–", "0.650"]
    # BT − full over seeds 0 and 1: (0.5 + 0.8) / 2 − (0.6 + 0.8) / 2, the same on every query
    assert rows["BT"][5] == "-0.050 [-0.050, -0.050] (2 seeds)"
    assert rows["BT"][6].strip(" |") == "0.015"  # ECE averaged over the seeds it ran


def test_seed_table_reads_the_seeds_of_one_setting(tmp_path, results):
    queries = [str(q) for q in range(40)]
    _write_seed(results, tmp_path, 0, {"unirank full": dict.fromkeys(queries, 0.6)})  # reranker.json: 128 tokens
    _write_seed(results, tmp_path, 0, {"unirank full": dict.fromkeys(queries, 0.7)}, stem="reranker-len256")
    _write_seed(results, tmp_path, 1, {"unirank full": dict.fromkeys(queries, 0.8)}, stem="reranker-len256-seed-1")
    rows = table.reranker_seeds("reranker-len256")
    assert rows[0].startswith("| system | seed 0 | seed 1 | mean |")
    assert rows[2].split(" | ")[1:4] == ["0.700", "0.800", "0.750"]  # the 128-token run stays out
    assert table.reranker_seeds() == []  # one seed at 128 tokens: no table


def test_length_table_pairs_each_system_with_itself_at_128_tokens(tmp_path, results):
    queries = [str(q) for q in range(40)]
    first_stage = dict.fromkeys(queries, 0.4)
    short = {"unirank full": dict.fromkeys(queries, 0.6), "BT": dict.fromkeys(queries, 0.5), "first stage": first_stage}
    _write_seed(results, tmp_path, 0, short)
    longer = {"unirank full": {q: 0.6 + 0.1 * (int(q) % 2) for q in queries}}  # +0.1 on half the queries
    longer["first stage"] = {**first_stage, "0": 0.5}  # lists mined anew: it moves, but reads no tokens
    _write_seed(results, tmp_path, 0, longer, stem="reranker-len256")
    lines = table.reranker_lengths()
    assert len(lines) == 3  # header, rule, the one reranker run at both lengths
    cells = lines[2].split(" | ")
    assert cells[1:4] == ["256", "0.600", "0.650"]
    assert cells[4].startswith("+0.050 [") and cells[4].endswith("(40 queries)")
    low, high = (float(x) for x in cells[4].split("[")[1].split("]")[0].split(", "))
    assert 0.02 < low < 0.05 < high < 0.08
    assert table.reranker_lengths("-depth30") == []  # no results at that depth


def test_each_throughput_row_names_the_machine_it_was_measured_on():
    from benchmarks.common import machine

    here = machine()
    assert here["cores"] >= 1 and here["vector"] in ("AVX512", "AVX2", "no AVX2")
    assert table.on_machine({"machine": here}) == f" ({here['cpu']}, {here['vector']})"
    assert table.on_machine({}) == ""  # rows from before the machine was recorded
