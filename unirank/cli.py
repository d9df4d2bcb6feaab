"""The `unirank` command.

unirank fit|validate|test|predict --config lightning_configs/<recipe>.yaml   (LightningCLI)
unirank mine      --beir DIR --split train --out OUT_DIR
unirank judge     requests|import|teacher --tables MINED_DIR ...
unirank calibrate --comparisons comparisons.parquet --out targets.parquet
unirank evaluate  --model DIR_OR_CKPT (--beir DIR | --preferences FILE | --steps FILE | --tables DIR) --out DIR
unirank export    CKPT OUT_DIR
unirank score     --model DIR_OR_CKPT --input rows.jsonl --out scores.jsonl
unirank select    --model DIR_OR_CKPT --input prompts.jsonl [--threshold T [--conservative]] --out selected.jsonl
unirank prune     --model PROCESS_MODEL --steps FILE [--threshold T] --out prune.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import polars as pl

from unirank.atomic import write_parquet


def _calibrate(args: argparse.Namespace) -> None:
    from unirank.fitting import fit_targets

    comparisons = _read_table(args.comparisons)
    items = _read_table(args.items) if args.items else None
    try:
        targets, fit = fit_targets(comparisons, items=items, link=args.link, l2=args.l2)
    except ValueError as error:
        raise SystemExit(f"unirank calibrate: {args.comparisons}: {error}") from None
    if not fit.converged:
        raise SystemExit(
            f"unirank calibrate: {args.comparisons}: the fit did not converge in {fit.iterations} Newton steps; "
            f"nothing was written to {args.out} (raise --l2, or check the comparisons)"
        )
    write_parquet(targets, args.out)
    summary = {
        "items": targets.height,
        "groups": targets["group_id"].n_unique(),
        "comparisons": comparisons.height,
        "log_likelihood": fit.log_likelihood,
        "converged": fit.converged,
        "newton_iterations": fit.iterations,
        "out": str(args.out),
    }
    print(json.dumps(summary, indent=2))


def _mine(args: argparse.Namespace) -> None:
    from unirank.atomic import OutputError, check_output_folder
    from unirank.data.tables import TableError
    from unirank.mining.pipeline import mine_beir, split_qrels, write_mined

    try:
        config = _mining_config(args)
    except ValueError as error:
        raise SystemExit(f"unirank mine: {error}") from None
    try:
        check_output_folder(args.out, "mining.json", "mined folder", overwrite=True)
        tables, summary = mine_beir(args.beir, args.split, config)
        write_mined(tables, summary, args.out, qrels=split_qrels(args.beir, args.split))
    except (TableError, OutputError) as error:
        raise SystemExit(f"unirank mine: {error}") from None
    print(json.dumps(summary, indent=2))


def _mining_config(args: argparse.Namespace):
    """The MiningConfig the mine command's options describe (one option per field)."""
    from dataclasses import fields

    from unirank.mining.pipeline import MiningConfig

    return MiningConfig(**{f.name: getattr(args, f.name) for f in fields(MiningConfig)})


def _add_config_options(parser: argparse.ArgumentParser, config: type, helps: dict[str, str]) -> None:
    """One --option per field of a config dataclass, typed and defaulted from the dataclass itself,
    so every setting is reachable from the command line and none is copied by hand."""
    import typing
    from dataclasses import MISSING, fields

    hints = typing.get_type_hints(config)
    for f in fields(config):
        kind, default = hints[f.name], f.default if f.default is not MISSING else None
        args = typing.get_args(kind)
        options = {"default": default, "help": helps.get(f.name, "")}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is typing.Literal:
            options["choices"] = list(args)
        else:
            base = next((a for a in args if a is not type(None)), kind) if args else kind
            options["type"] = base
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, **options)


MINING_HELP = {
    "encoder": "sentence-transformers model name or path",
    "precision": "encoding precision (bf16 autocast: faster where the hardware has bf16)",
    "k": "hits searched per query",
    "negatives": "hard negatives kept per query",
    "relative_margin": "drop hits scoring >= this x the lowest positive's score (TopK-PercPos)",
    "absolute_margin": "drop hits scoring >= the lowest positive's score - this",
    "range_min": "skip the top ranks",
    "pairs_k": "comparisons per candidate (random cycles)",
    "all_positive_pairs": "also compare every positive with every lower-graded candidate of its query",
    "validation_fraction": "share of queries set aside as the validation split",
    "keep_ranking": "keep the top-k as ranked (for evaluation)",
    "candidates": "per train query: positives + filtered hard negatives, or positives + the whole top k",
    "unjudged_weight": "label weight of a candidate the qrels do not judge",
    "index": "FAISS index (auto: flat below 100k vectors)",
    "cache_dir": "embedding cache",
    "batch_size": "encoding batch size",
    "show_progress_bar": "the encoder's progress bar",
}


def _judge(args: argparse.Namespace) -> None:
    from unirank.data.tables import TableError, Tables, read_tables, validate
    from unirank.mining import judges

    try:
        tables = read_tables(args.tables)
        if args.action == "requests":
            count = judges.write_judge_requests(tables, args.out, seed=args.seed)
            print(f"wrote {count} judge requests (random order recorded) → {args.out}")
            return
        if args.action == "import":
            comparisons = judges.read_judgments(args.judgments)
        else:
            comparisons = judges.teacher_comparisons(tables, _teacher(args.model, args.trust_remote_code))
        labelled = validate(Tables(tables.groups, tables.items, comparisons), str(args.judgments or args.model))
    except TableError as error:
        raise SystemExit(f"unirank judge: {error}") from None
    labelled.write(args.out)
    print(f"{labelled.comparisons.height} labelled comparisons → {args.out}")


def _teacher(model: str, trust_remote_code: bool = False):
    """Logits of a unirank model (export folder or checkpoint) or of a sentence-transformers CrossEncoder."""
    from unirank.mining.judges import cross_encoder_logits
    from unirank.models import resolve_model_path

    path = Path(model)
    if path.suffix == ".ckpt" or (path / "unirank.json").exists():
        from unirank.scoring import load_scorer

        return load_scorer(path, trust_remote_code=trust_remote_code).scorer.score_texts
    from sentence_transformers import CrossEncoder

    return cross_encoder_logits(CrossEncoder(resolve_model_path(model), trust_remote_code=trust_remote_code))


def _scoring_precision(asked: str | None, model: str | Path) -> str:
    """The precision asked for, else the one the model trained in (an export's unirank.json records
    it: bf16 for a bf16-mixed fit) where this machine runs it natively, else fp32."""
    if asked is not None:
        return asked
    info = Path(model) / "unirank.json"
    trained = json.loads(info.read_text()).get("trained_precision") if info.is_file() else None
    if not str(trained or "").startswith("bf16"):
        return "fp32"
    import torch

    from unirank.precision import native_bf16

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if native_bf16(device):
        return "bf16"
    print(f"{model} trained in bf16, but this {device.upper()} has no native bf16: scoring in fp32 (faster here)")
    return "fp32"


def _evaluate(args: argparse.Namespace) -> None:
    from unirank.data.readers import read_beir
    from unirank.data.sources import Preferences, StepSolutions, TablesDir
    from unirank.data.tables import TableError
    from unirank.evaluation.process import evaluate_process
    from unirank.evaluation.report import evaluate_preferences, evaluate_retrieval, list_qrels, write_report
    from unirank.scoring import load_scorer

    bf16 = _scoring_precision(args.precision, args.model) == "bf16"
    names = [args.name or Path(args.model).name] + (
        [args.compare_name or Path(args.compare).name] if args.compare else []
    )
    if len(set(names)) < len(names):  # two folders with one last component: name them by their paths
        names = [args.name or str(args.model), args.compare_name or str(args.compare)]
    if len(set(names)) < len(names):
        raise SystemExit(
            f"unirank evaluate: both models are named {names[0]!r}; name them with --name / --compare-name"
        )
    predictors = {names[0]: load_scorer(args.model, bf16, args.trust_remote_code)}
    if args.compare:
        predictors[names[1]] = load_scorer(args.compare, bf16, args.trust_remote_code)
    fractions = {
        k: v
        for k, v in (("validation_fraction", args.validation_fraction), ("test_fraction", args.test_fraction))
        if v is not None
    }
    try:
        if args.beir:
            from unirank.mining.pipeline import MiningConfig, mine_beir

            config = MiningConfig(encoder=args.encoder, k=args.k, keep_ranking=True, cache_dir=args.cache_dir)
            tables, _ = mine_beir(args.beir, args.split, config)
            report = evaluate_retrieval(
                predictors, tables, read_beir(args.beir, args.split).qrels, thresholds=tuple(args.thresholds)
            )
        elif args.steps:
            tables = _split(StepSolutions(str(args.steps), **fractions).load(), args)
            report = evaluate_process(predictors, tables)
        elif args.preferences:
            source = Preferences(str(args.preferences), format=args.format, skip_invalid=args.skip_invalid, **fractions)
            tables = _split(source.load(), args)
            report = evaluate_preferences(predictors, tables, thresholds=tuple(args.thresholds))
        else:
            tables = _split(TablesDir(str(args.tables)).load(), args)
            domain = next(iter(predictors.values())).scorer.adapter.domain
            if domain == "process":
                report = evaluate_process(predictors, tables)
            elif domain == "retrieval":
                qrels = list_qrels(tables, args.tables)
                report = evaluate_retrieval(predictors, tables, qrels, thresholds=tuple(args.thresholds))
            else:
                report = evaluate_preferences(predictors, tables, thresholds=tuple(args.thresholds))
    except (TableError, ValueError) as error:
        raise SystemExit(f"unirank evaluate: {error}") from None
    print(write_report(report, args.out))
    print(f"report: {args.out}/metrics.json, {args.out}/reliability.png")


def _split(tables, args: argparse.Namespace):
    """The split to evaluate; an empty one is an input error that says which splits there are."""
    if args.split == "all":
        return tables
    part = tables.split(args.split)
    if part.groups.height == 0:
        counts = dict(tables.groups.group_by("split").len().iter_rows())
        source = getattr(args, "preferences", None) or getattr(args, "steps", None) or getattr(args, "tables", None)
        raise SystemExit(
            f"unirank {args.command}: {source}: the {args.split!r} split is empty (groups per split: {counts}); "
            "choose --split, or set --validation-fraction / --test-fraction as in training"
        )
    return part


def _export(args: argparse.Namespace) -> None:
    from unirank.atomic import OutputError
    from unirank.export import export_checkpoint

    try:
        out = export_checkpoint(args.checkpoint, args.out_dir, args.overwrite, args.trust_remote_code)
        print(f"exported to {out}")
    except OutputError as error:
        raise SystemExit(f"unirank export: {error}") from None


def _score(args: argparse.Namespace) -> None:
    from unirank.atomic import atomic_path
    from unirank.data.readers import iter_jsonl
    from unirank.scoring import load_scorer

    scorer = load_scorer(args.model, trust_remote_code=args.trust_remote_code)
    rows = []
    for line, record in iter_jsonl(args.input):
        if not isinstance(record.get("context"), (str, list)) or not isinstance(record.get("candidate"), str):
            raise SystemExit(f"unirank score: {args.input}, line {line}: needs 'context' and 'candidate' strings")
        rows.append(record)
    if not rows:
        raise SystemExit(f"unirank score: {args.input}: no rows to score")
    scored = scorer.predict_with_uncertainty([(r["context"], r["candidate"]) for r in rows])
    fused = [None] * len(rows)
    if scorer.fusion_weight is not None and any("first_stage_score" in r for r in rows):
        bad = next((i for i, r in enumerate(rows) if not isinstance(r.get("first_stage_score"), (int, float))), None)
        if bad is not None:
            raise SystemExit(
                f"unirank score: {args.input}, row {bad + 1}: 'first_stage_score' must be a number in every row"
            )
        fused = scorer.fuse([s["score"] for s in scored], [r["first_stage_score"] for r in rows]).tolist()
    with atomic_path(args.out) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for record, scores, rank_score in zip(rows, scored, fused):
            extra = {} if rank_score is None else {"fused_score": rank_score}
            handle.write(json.dumps({**record, **scores, **extra}, ensure_ascii=False) + "\n")
    print(f"scored {len(rows)} rows → {args.out}")


def _select(args: argparse.Namespace) -> None:
    from unirank.atomic import atomic_path, check_output_file
    from unirank.data.readers import iter_jsonl
    from unirank.scoring import load_scorer
    from unirank.selection import select_candidates, selection_summary

    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise SystemExit(f"unirank select: --threshold {args.threshold} must be a probability in (0, 1)")
    check_output_file(args.out)
    rows = []
    for line, record in iter_jsonl(args.input):
        candidates = record.get("candidates")
        if not isinstance(record.get("context"), (str, list)) or not (
            isinstance(candidates, list) and candidates and all(isinstance(c, str) for c in candidates)
        ):
            raise SystemExit(
                f"unirank select: {args.input}, line {line}: needs a 'context' and a non-empty 'candidates' list "
                "of strings"
            )
        rows.append(record)
    if not rows:
        raise SystemExit(f"unirank select: {args.input}: no rows")
    scorer = load_scorer(args.model, args.precision == "bf16", args.trust_remote_code)
    if args.conservative and scorer.posterior is None:
        raise SystemExit(f"unirank select: --conservative needs a head posterior, and {args.model} has none")
    flat = [(r["context"], c) for r in rows for c in r["candidates"]]
    scored, start, selections = scorer.predict_with_uncertainty(flat), 0, []
    for record in rows:
        mine = scored[start : start + len(record["candidates"])]
        start += len(mine)
        chosen = select_candidates(mine, args.threshold, scorer.pairwise_link, args.conservative)
        selections.append({**record, "scores": mine, **chosen})
    with atomic_path(args.out) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in selections)
    print(f"{selection_summary(selections, args.threshold)} → {args.out}")


def _prune(args: argparse.Namespace) -> None:
    from unirank.atomic import atomic_path, check_output_file
    from unirank.data.sources import StepSolutions
    from unirank.pruning import choose_threshold, prefix_probabilities, prune_at, pruning_report
    from unirank.scoring import load_scorer

    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise SystemExit(f"unirank prune: --threshold {args.threshold} must be a probability in (0, 1)")
    if not 0.0 < args.keep <= 1.0:
        raise SystemExit(f"unirank prune: --keep {args.keep} must be a share in (0, 1]")
    check_output_file(args.out)  # before minutes of scoring, not after
    scorer = load_scorer(args.model, trust_remote_code=args.trust_remote_code).scorer
    if scorer.adapter.domain != "process":
        raise SystemExit(f"unirank prune: {args.model} is a {scorer.adapter.domain} model, not a process model")
    if args.conservative and scorer.head_posterior is None:
        raise SystemExit(f"unirank prune: --conservative needs a head posterior, and {args.model} has none")
    tables = StepSolutions(str(args.steps), args.validation_fraction, args.test_fraction).load()
    bf16 = args.precision == "bf16"

    def scored(part):
        items = part.items
        problems, solutions = part.item_contexts(), items["steps"].to_list()
        probabilities = prefix_probabilities(scorer, problems, solutions, bf16, args.conservative)
        tokens = [[len(scorer.tokenizer(step, add_special_tokens=False)["input_ids"]) for step in s] for s in solutions]
        return items, probabilities, items["step_labels"].to_list(), tokens

    threshold, chosen_on = args.threshold, "the command line"
    if threshold is None:
        _, probabilities, labels, _ = scored(
            _split(tables, argparse.Namespace(**{**vars(args), "split": "validation"}))
        )
        threshold, chosen_on = (
            choose_threshold(probabilities, labels, keep=args.keep),
            f"validation (keep ≥ {args.keep})",
        )
    items, probabilities, labels, tokens = scored(_split(tables, args))
    report = {"threshold_chosen_on": chosen_on, "split": args.split, "solutions": items.height}
    report["probability"] = "one-sided 95 % lower bound" if args.conservative else "sigmoid(logit)"
    report |= pruning_report(probabilities, labels, tokens, threshold)
    at = [prune_at(p, threshold) for p in probabilities]
    stops = [
        {"group_id": g, "item_id": i, "stop_at_step": None if s is None else s + 1}
        for g, i, s in zip(items["group_id"], items["item_id"], at)
    ]
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps({**report, "solutions_stopped": stops}, indent=2) + "\n")
    print(
        f"threshold {threshold:.2f} (from {chosen_on}) on {items.height} {args.split} solutions: "
        f"{report['correct_steps_kept']:.1%} of the correct solutions' steps kept, "
        f"{report['wrong_stopped_before_end']:.1%} of the {report['wrong_solutions']} wrong solutions stopped before "
        f"their end, {report['tokens_saved']:,} tokens ({report['tokens_saved_share']:.1%}) not generated → {args.out}"
    )


def _read_table(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise SystemExit(f"unirank: cannot read {path} as parquet: {error}") from None


def _add_trust_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let a model whose backbone has its own code (trained with trust_remote_code) run it",
    )


def _parser() -> argparse.ArgumentParser:
    from unirank.mining.pipeline import MiningConfig

    parser = argparse.ArgumentParser(
        prog="unirank", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    calibrate = commands.add_parser(
        "calibrate", help="fit Thurstone latents to a comparisons table and write the targets table"
    )
    calibrate.add_argument("--comparisons", type=Path, required=True, help="comparisons.parquet")
    calibrate.add_argument("--items", type=Path, help="items.parquet: uncompared items get a target too")
    calibrate.add_argument("--out", type=Path, required=True, help="targets.parquet to write")
    calibrate.add_argument("--link", choices=["thurstone", "bradley-terry"], default="thurstone")
    calibrate.add_argument("--l2", type=float, default=1.0, help="prior precision (default 1)")
    calibrate.set_defaults(run=_calibrate)

    mine = commands.add_parser("mine", help="mine candidates and labelled comparisons from a BEIR folder")
    mine.add_argument("--beir", type=Path, required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    mine.add_argument("--split", default="train")
    _add_config_options(mine, MiningConfig, MINING_HELP)
    mine.add_argument("--out", type=Path, required=True)
    mine.set_defaults(run=_mine)

    judge = commands.add_parser("judge", help="label mined pairs: external judges by file, or a teacher model")
    judge.add_argument(
        "action",
        choices=["requests", "import", "teacher"],
        help="requests: write pairs for judges; import: read their answers; teacher: label with a model",
    )
    judge.add_argument("--tables", type=Path, required=True, help="a mined folder (groups/items/comparisons)")
    judge.add_argument("--judgments", type=Path, help="import: JSONL of {pair_id, item_a, item_b, preferred}")
    judge.add_argument("--model", help="teacher: a unirank export/checkpoint or a CrossEncoder name/path")
    judge.add_argument("--seed", type=int, default=0)
    judge.add_argument("--out", type=Path, required=True, help="requests: a JSONL file; else an output folder")
    _add_trust_option(judge)
    judge.set_defaults(run=_judge)

    evaluate = commands.add_parser("evaluate", help="rank quality and calibration of one or two models")
    evaluate.add_argument("--model", required=True, help="an exported folder or a checkpoint")
    evaluate.add_argument("--compare", help="a second model, reported side by side (e.g. the stage-1 checkpoint)")
    evaluate.add_argument("--name", help="display name of --model")
    evaluate.add_argument("--compare-name", help="display name of --compare")
    data = evaluate.add_mutually_exclusive_group(required=True)
    data.add_argument("--beir", type=Path, help="retrieval: a BEIR folder; the first stage's top k are reranked")
    data.add_argument("--preferences", type=Path, help="preferences: a JSONL/JSON file (see --format)")
    data.add_argument("--steps", type=Path, help="process: PRMBench-shaped step-wise solutions (JSONL)")
    data.add_argument("--tables", type=Path, help="a folder of canonical tables (groups/items/comparisons)")
    evaluate.add_argument(
        "--split", default="test", help="split to evaluate (BEIR qrels split, or a group split; 'all')"
    )
    evaluate.add_argument("--format", default="trl", choices=["trl", "hh-rlhf", "pandalm"])
    evaluate.add_argument(
        "--skip-invalid",
        action="store_true",
        help="preferences (trl): skip bad rows, counted and named, instead of stopping",
    )
    evaluate.add_argument(
        "--validation-fraction", type=float, help="group split fractions (default: the reader's, as used for training)"
    )
    evaluate.add_argument("--test-fraction", type=float)
    evaluate.add_argument(
        "--thresholds",
        type=float,
        nargs="+",
        default=[0.3, 0.5, 0.7, 0.9],
        help="precision and recall of σ(score) > t (retrieval; spread across queries) or P(a ≻ b) > t "
        "(preferences; spread across categories) at each t",
    )
    evaluate.add_argument("--encoder", default="minilm", help="first-stage bi-encoder for --beir")
    evaluate.add_argument("--k", type=int, default=100, help="first-stage depth for --beir")
    evaluate.add_argument("--cache-dir", default=".unirank-cache")
    evaluate.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        help="scoring precision (default: the model's training precision where this machine runs it natively, "
        "else fp32)",
    )
    evaluate.add_argument("--out", type=Path, required=True, help="report folder")
    _add_trust_option(evaluate)
    evaluate.set_defaults(run=_evaluate)

    export = commands.add_parser("export", help="export a checkpoint for transformers / sentence-transformers")
    export.add_argument("checkpoint", type=Path)
    export.add_argument("out_dir", type=Path)
    export.add_argument("--overwrite", action="store_true", help="replace an earlier unirank export in OUT_DIR")
    _add_trust_option(export)
    export.set_defaults(run=_export)

    score = commands.add_parser("score", help="score a JSONL of {context, candidate} rows")
    score.add_argument("--model", required=True, help="an exported folder or a checkpoint")
    score.add_argument("--input", type=Path, required=True)
    score.add_argument("--out", type=Path, required=True)
    _add_trust_option(score)
    score.set_defaults(run=_score)

    select = commands.add_parser(
        "select", help="best-of-n / rejection sampling: per prompt, the best candidate and those with P ≥ t"
    )
    select.add_argument("--model", required=True, help="an exported folder or a checkpoint")
    select.add_argument("--input", type=Path, required=True, help='JSONL of {"context": ..., "candidates": [...]}')
    select.add_argument("--threshold", type=float, help="keep the candidates with P(good) ≥ this (rejection sampling)")
    select.add_argument(
        "--conservative", action="store_true", help="compare the 95 %% lower bound of P with the threshold, not P"
    )
    select.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    select.add_argument("--out", type=Path, required=True, help="JSONL: each row with scores, kept and best")
    _add_trust_option(select)
    select.set_defaults(run=_select)

    prune = commands.add_parser(
        "prune", help="process models: stop each chain at its first step with P(correct) < t; report what it saves"
    )
    prune.add_argument("--model", required=True, help="an exported process model or its checkpoint")
    prune.add_argument("--steps", type=Path, required=True, help="PRMBench-shaped step-wise solutions (JSONL)")
    prune.add_argument("--split", default="test", help="split to prune (train, validation, test, all)")
    prune.add_argument("--validation-fraction", type=float, default=0.1, help="as in training (default 0.1)")
    prune.add_argument("--test-fraction", type=float, default=0.2, help="as in training (default 0.2)")
    prune.add_argument(
        "--threshold", type=float, help="stop below this P(correct); default: chosen on the validation split"
    )
    prune.add_argument(
        "--keep", type=float, default=0.95, help="the chosen threshold keeps this share of correct solutions' steps"
    )
    prune.add_argument(
        "--conservative", action="store_true", help="stop when the 95 %% lower bound of P(correct) is below t"
    )
    prune.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    prune.add_argument("--out", type=Path, required=True, help="JSON report: the figures and each solution's stop")
    _add_trust_option(prune)
    prune.set_defaults(run=_prune)
    return parser


LIGHTNING_COMMANDS = {"fit", "validate", "test", "predict"}


def _lightning(argv: list[str] | None) -> None:
    """LightningCLI over UnirankModule and UnirankDataModule; argv None reads the command line."""
    from lightning.pytorch.cli import LightningCLI

    from unirank.atomic import OutputError
    from unirank.data.datamodule import UnirankDataModule
    from unirank.data.tables import TableError
    from unirank.export import ExportModel
    from unirank.module import UnirankModule
    from unirank.scorer import ModelFolderError

    class UnirankCLI(LightningCLI):
        def _parse_ckpt_path(self) -> None:
            """Settings come from the config and the command line only: a checkpoint's hyper_parameters
            are never merged in (they could turn trust_remote_code on); differences are reported.
            A remote checkpoint (a URL) is refused: it would be unpickled."""
            if not self.config.get("subcommand"):
                return
            ckpt_path = self.config[self.config.subcommand].get("ckpt_path")
            if not ckpt_path:
                return
            if "://" in str(ckpt_path):
                raise SystemExit(f"unirank: --ckpt_path {ckpt_path}: remote checkpoints are refused; download it first")
            if not Path(ckpt_path).is_file():
                raise SystemExit(f"unirank: --ckpt_path {ckpt_path}: no such checkpoint file")
            import torch

            try:
                saved = torch.load(ckpt_path, weights_only=True, map_location="cpu").get("hyper_parameters") or {}
            except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is the user's input error
                raise SystemExit(f"unirank: --ckpt_path {ckpt_path}: not a loadable checkpoint ({error})") from None
            model = self.config[self.config.subcommand].get("model") or {}
            differing = sorted(k for k, v in saved.items() if not k.startswith("_") and str(model.get(k)) != str(v))
            if differing:
                print(f"unirank: {ckpt_path} records other settings ({', '.join(differing)}); "
                      "they are not applied: the config and the command line decide")  # fmt: skip

        def before_fit(self) -> None:
            """bf16 training where the hardware has no bf16 still runs, with a warning that says so."""
            from unirank.precision import warn_if_emulated_bf16

            if str(self.trainer.precision).startswith("bf16"):
                device = self.trainer.strategy.root_device.type
                warn_if_emulated_bf16(device, "--trainer.precision 32-true")

        def add_arguments_to_parser(self, parser) -> None:
            parser.add_lightning_class_args(ExportModel, "export")
            parser.link_arguments(
                ("model.schedule.distill_epochs", "model.schedule.pairwise_epochs", "model.schedule.pointwise_epochs"),
                "trainer.max_epochs",
                compute_fn=lambda distill, pairwise, pointwise: distill + pairwise + pointwise,
            )

    try:
        UnirankCLI(
            UnirankModule,
            UnirankDataModule,
            args=argv,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={
                "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs"}}
            },
        )
    except TableError as error:
        raise SystemExit(f"unirank: bad input, nothing was trained: {error}") from None
    except (OutputError, ModelFolderError) as error:
        raise SystemExit(f"unirank: {error}") from None


def main(argv: list[str] | None = None) -> None:
    words = sys.argv[1:] if argv is None else argv
    if words and words[0] in LIGHTNING_COMMANDS:
        _lightning(argv)
        return
    args = _parser().parse_args(words)
    from unirank.atomic import OutputError
    from unirank.data.tables import TableError
    from unirank.scorer import ModelFolderError, RemoteCodeError

    try:
        args.run(args)
    except (
        TableError,
        OutputError,
        ModelFolderError,
        RemoteCodeError,
    ) as error:  # bad input or output: named, never a traceback
        raise SystemExit(f"unirank {args.command}: {error}") from None


if __name__ == "__main__":
    main()
