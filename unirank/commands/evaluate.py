"""`unirank evaluate`: rank quality and calibration of one or two models on held-out data."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Literal

from unirank.data.sources import DataSource
from unirank.mining.pipeline import MiningConfig

DEFAULT_THRESHOLDS = [0.3, 0.5, 0.7, 0.9]


def evaluate(
    model: str,
    out: Path,
    source: DataSource | None = None,
    beir: Path | None = None,
    preferences: Path | None = None,
    steps: Path | None = None,
    tables: Path | None = None,
    rewardbench: Path | None = None,
    rewardbench2: Path | None = None,
    compare: str | None = None,
    name: str | None = None,
    compare_name: str | None = None,
    split: str = "test",
    format: Literal["trl", "hh-rlhf", "pandalm"] = "trl",
    skip_invalid: bool = False,
    validation_fraction: float | None = None,
    test_fraction: float | None = None,
    thresholds: list[float] = DEFAULT_THRESHOLDS,
    first_stage: MiningConfig = MiningConfig(),
    precision: Literal["fp32", "bf16"] | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
) -> None:
    """Rank quality and calibration of one model, or of two side by side, measured as the model's
    domain measures it; exactly one of --source, --beir, --preferences, --steps, --tables,
    --rewardbench, --rewardbench2 names the data.

    Args:
        model: an exported folder or a checkpoint
        out: report folder (metrics.json, summary.txt, reliability.png)
        source: any data source, as a recipe's data.source (class_path and init_args)
        beir: retrieval: a BEIR folder; the first stage's top k are reranked
        preferences: preferences: a JSONL/JSON file (see --format)
        steps: process: PRMBench-shaped step-wise solutions (JSONL)
        tables: a folder of canonical tables (groups, items, comparisons)
        rewardbench: reward models: a RewardBench file (JSONL or parquet rows of prompt, chosen,
            rejected, subset): the section scores and the overall score, with intervals and ECE
        rewardbench2: reward models: a RewardBench 2 file (prompt, chosen list, rejected list,
            subset, id): the subset scores (best-of-n; Ties by its formula) and the overall score
        compare: a second model, reported side by side (e.g. the stage-1 checkpoint)
        name: display name of --model
        compare_name: display name of --compare
        split: split to evaluate (the BEIR qrels split, or a group split; "all")
        format: preferences file format
        skip_invalid: preferences (trl): skip bad rows, counted and named, instead of stopping
        validation_fraction: group split fraction (default: the reader's, as in training)
        test_fraction: group split fraction (default: the reader's, as in training)
        thresholds: precision and recall of σ(score) > t (retrieval; spread across queries) or
            P(a ≻ b) > t (preferences; spread across categories) at each t
        first_stage: --beir: the bi-encoder retrieval whose top k is reranked (as `unirank mine`'s --mining)
        precision: scoring precision (default: the model's training precision where this machine
            runs it natively, else fp32)
        device: where to score ("cpu", "cuda", "cuda:1"; default: a CUDA GPU where there is one)
        trust_remote_code: let a model whose backbone has its own code run it
    """
    from unirank import domains
    from unirank.atomic import OutputError, check_output_file, check_output_folder
    from unirank.data.tables import TableError
    from unirank.evaluation.report import write_report
    from unirank.model import Model

    try:  # the report folder is checked before any model is loaded or scored (a file there included)
        check_output_folder(out, "metrics.json", "unirank evaluation report", overwrite=True)  # never a user's folder
        check_output_file(Path(out) / "metrics.json")
    except OutputError as error:
        raise SystemExit(f"unirank evaluate: {error}") from None
    given = [s for s in (source, beir, preferences, steps, tables, rewardbench, rewardbench2) if s is not None]
    if len(given) != 1:
        raise SystemExit(
            "unirank evaluate: name the data by one of --source, --beir, --preferences, --steps, --tables, "
            "--rewardbench, --rewardbench2"
        )
    names = [name or Path(model).name] + ([compare_name or Path(compare).name] if compare else [])
    if len(set(names)) < len(names):  # two folders with one last component: name them by their paths
        names = [name or str(model), compare_name or str(compare)]
    if len(set(names)) < len(names):
        raise SystemExit(f"unirank evaluate: both models are named {names[0]!r}; name them with --name, --compare_name")
    bf16 = scoring_precision(precision, model, device) == "bf16"
    models = {names[0]: Model.from_pretrained(model, bf16, trust_remote_code, device)}
    if compare:
        models[names[1]] = Model.from_pretrained(compare, bf16, trust_remote_code, device)
    # a shorthand flag names the kind of model its data is for
    needs = {"steps": (steps, "process"), "beir": (beir, "retrieval"), "preferences": (preferences, "chat"),
             "rewardbench": (rewardbench, "chat"), "rewardbench2": (rewardbench2, "chat")}  # fmt: skip
    for flag, (value, wanted) in needs.items():
        for name, loaded in models.items():
            if value is not None and loaded.domain != wanted:
                raise SystemExit(
                    f"unirank evaluate: --{flag} needs a {wanted} model; {name} is a {loaded.domain} model"
                )
    if rewardbench or rewardbench2:
        _rewardbench(models, rewardbench or rewardbench2, 1 if rewardbench else 2, Path(out))
        return
    try:
        domain = domains.get(models[names[0]].domain)
        folder = tables or (getattr(source, "path", None) if isinstance(getattr(source, "path", None), str) else None)
        options = domains.EvaluationOptions(thresholds=tuple(thresholds), folder=Path(folder) if folder else None)
        if beir:
            from unirank.domains.retrieval.readers import read_beir
            from unirank.mining.pipeline import mine_beir

            part, _ = mine_beir(beir, split, replace(first_stage, keep_ranking=True))
            options = replace(options, qrels=read_beir(beir, split).qrels)
        else:
            fractions = {"validation_fraction": validation_fraction, "test_fraction": test_fraction}
            reader = source or _flag_source(preferences, steps, tables, format, skip_invalid, fractions)
            part = choose_split(reader.load(), split, "evaluate", given[0])
        report = domain.evaluate(models, part, options)
    except (TableError, ValueError) as error:
        raise SystemExit(f"unirank evaluate: {error}") from None
    print(write_report(report, out, domain))
    print(f"report: {out}/metrics.json, {out}/reliability.png")


def _rewardbench(models: dict, path: Path, version: int, out: Path) -> None:
    """Each model's RewardBench (or RewardBench 2) report: out/metrics.json and out/summary.txt."""
    from unirank.atomic import atomic_path
    from unirank.data.tables import TableError
    from unirank.domains.chat import rewardbench as rb

    try:
        rows = rb.read_rows(path, version)
    except TableError as error:
        raise SystemExit(f"unirank evaluate: {error}") from None
    reports = {name: rb.rewardbench_report(model, rows, version) for name, model in models.items()}
    lines = [line for name, report in reports.items() for line in [name, *rb.summary_lines(report)]]
    out.mkdir(parents=True, exist_ok=True)
    for filename, text in (
        ("metrics.json", json.dumps(reports, indent=2) + "\n"),
        ("summary.txt", "\n".join(lines) + "\n"),
    ):
        with atomic_path(out / filename) as tmp:
            tmp.write_text(text)
    print("\n".join(lines))
    print(f"report: {out}/metrics.json")


def _flag_source(preferences, steps, tables, format: str, skip_invalid: bool, fractions: dict) -> DataSource:
    """The data source a shorthand flag names (the fractions given, else the reader's own)."""
    from unirank.data.sources import TablesDir
    from unirank.domains.chat.source import Preferences
    from unirank.domains.process.source import StepSolutions

    fractions = {key: value for key, value in fractions.items() if value is not None}
    if steps:
        return StepSolutions(str(steps), **fractions)
    if preferences:
        return Preferences(str(preferences), format=format, skip_invalid=skip_invalid, **fractions)
    return TablesDir(str(tables))


def choose_split(tables, split: str, command: str, source: Path):
    """The split to evaluate ("all": every group); an empty one is an input error that says which
    splits there are."""
    if split == "all":
        return tables
    part = tables.split(split)
    if part.groups.height == 0:
        counts = dict(tables.groups.group_by("split").len().iter_rows())
        raise SystemExit(
            f"unirank {command}: {source}: the {split!r} split is empty (groups per split: {counts}); "
            "choose --split, or set --validation_fraction / --test_fraction as in training"
        )
    return part


def scoring_precision(asked: str | None, model: str | Path, device: str | None = None) -> str:
    """The precision asked for, else the one the model trained in (an export's unirank.json records
    it: bf16 for a bf16-mixed fit) where the device it scores on (None: CUDA if present, else the
    CPU) runs it natively, else fp32."""
    if asked is not None:
        return asked
    info = Path(model) / "unirank.json"
    trained = json.loads(info.read_text()).get("trained_precision") if info.is_file() else None
    if not str(trained or "").startswith("bf16"):
        return "fp32"
    from unirank.model.precision import default_device, native_bf16

    import torch

    device = torch.device(device or default_device()).type
    if native_bf16(device):
        return "bf16"
    print(f"{model} trained in bf16, but this {device.upper()} has no native bf16: scoring in fp32 (faster here)")
    return "fp32"
