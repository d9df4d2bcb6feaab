"""Commands on a trained model: export it, score rows, select among candidates, prune chains."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from unirank.commands import require_model


def export(checkpoint: Path, out_dir: Path, overwrite: bool = False, trust_remote_code: bool = False) -> None:
    """Export a checkpoint for transformers / sentence-transformers (σ of the logit is the calibrated probability).

    Args:
        checkpoint: a unirank checkpoint (.ckpt)
        out_dir: folder to write the model to
        overwrite: replace an earlier unirank export in out_dir
        trust_remote_code: let a backbone with its own code run it (the checkpoint was trained with it)
    """
    from unirank.atomic import OutputError
    from unirank.training.export import export_checkpoint

    try:
        print(f"exported to {export_checkpoint(checkpoint, out_dir, overwrite, trust_remote_code)}")
    except OutputError as error:
        raise SystemExit(f"unirank export: {error}") from None


def score(model: str, input: Path, out: Path, device: str | None = None, trust_remote_code: bool = False) -> None:
    """Score a JSONL of {context, candidate} rows: probability, standard error, lower bound, and
    `ranking_score`, what to rank by: the fused score r + γ·first-stage score where the rows give
    their first_stage_score and validation chose γ > 0 (also written as `fused_score`), else r.
    Where the rows, read as a set, are unlike the training data (unirank.metrics.shift), the lower
    bound is withheld (null) and stderr says why.

    Args:
        model: an exported folder or a checkpoint
        input: JSONL of {"context": ..., "candidate": ...} rows
        out: JSONL to write: each row with its scores
        device: where to score ("cpu", "cuda", "cuda:1"; default: a CUDA GPU where there is one)
        trust_remote_code: let a model whose backbone has its own code run it
    """
    from unirank.atomic import OutputError, atomic_path, check_output_file
    from unirank.data.readers import iter_jsonl
    from unirank.data.values import check_scoring_row, warn_blank_candidates
    from unirank.metrics.shift import withhold_when_shifted
    from unirank.model import Model

    try:
        check_output_file(out)
    except OutputError as error:
        raise SystemExit(f"unirank score: {error}") from None
    rows, lines, blank = [], [], 0
    for line, record in iter_jsonl(input):
        blank += check_scoring_row(record, f"{input}, line {line}")
        rows.append(record)
        lines.append(line)
    if not rows:
        raise SystemExit(f"unirank score: {input}: no rows to score")
    warn_blank_candidates(blank, str(input))
    loaded = Model.from_pretrained(model, trust_remote_code=trust_remote_code, device=device)
    require_model(loaded, "unirank score", model)
    scored = loaded.score([(r["context"], r["candidate"]) for r in rows])
    _say_if_shifted(withhold_when_shifted(scored), "unirank score", "probability_lower is withheld (null)")
    fused = [None] * len(rows)
    if loaded.fusion_weight is not None and any("first_stage_score" in r for r in rows):
        bad = next((line for line, r in zip(lines, rows) if "first_stage_score" not in r), None)
        if bad is not None:
            raise SystemExit(f"unirank score: {input}, line {bad}: no 'first_stage_score' (other rows have one)")
        fused = loaded.fuse([s["score"] for s in scored], [r["first_stage_score"] for r in rows]).tolist()
    by_fused = loaded.fusion_weight is not None and loaded.fusion_weight > 0
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for record, scores, rank_score in zip(rows, scored, fused):
            extra = {} if rank_score is None else {"fused_score": rank_score}
            ranking = rank_score if rank_score is not None and by_fused else scores["score"]
            line = {**record, **scores, **extra, "ranking_score": ranking}
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"scored {len(rows)} rows → {out}")


def _say_if_shifted(test: dict | None, command: str, consequence: str) -> None:
    """One line on stderr where the scored rows, read as a set, are unlike the training data."""
    if test and test["shifted"]:
        import sys

        from unirank.metrics.shift import shift_sentence

        print(f"{command}: {shift_sentence(test)}" + (f"; {consequence}" if consequence else ""), file=sys.stderr)


def select(
    model: str,
    input: Path,
    out: Path,
    threshold: float | None = None,
    conservative: bool = False,
    precision: Literal["fp32", "bf16"] = "fp32",
    device: str | None = None,
    trust_remote_code: bool = False,
) -> None:
    """Best-of-n and rejection sampling: per prompt, the best candidate with its probability, and
    those with P(good) ≥ threshold.

    Args:
        model: an exported folder or a checkpoint
        input: JSONL of {"context": ..., "candidates": [...]} rows
        out: JSONL to write: each row with its scores, kept and best
        threshold: keep the candidates with P(good) ≥ this (rejection sampling)
        conservative: compare the 95 % lower bound of P with the threshold, not P (nothing is kept
            where the candidates, read as a set, are unlike the training data: unirank.metrics.shift)
        precision: scoring precision
        device: where to score ("cpu", "cuda", "cuda:1"; default: a CUDA GPU where there is one)
        trust_remote_code: let a model whose backbone has its own code run it
    """
    from unirank.atomic import atomic_path, check_output_file
    from unirank.data.readers import iter_jsonl
    from unirank.data.values import check_scoring_row, warn_blank_candidates
    from unirank.metrics.shift import withhold_when_shifted
    from unirank.model import Model
    from unirank.selection import select_candidates, selection_summary

    if threshold is not None and not 0.0 < threshold < 1.0:
        raise SystemExit(f"unirank select: --threshold {threshold} must be a probability in (0, 1)")
    check_output_file(out)
    rows, blank = [], 0
    for line, record in iter_jsonl(input):
        blank += check_scoring_row(record, f"{input}, line {line}", candidates=True)
        rows.append(record)
    if not rows:
        raise SystemExit(f"unirank select: {input}: no rows")
    warn_blank_candidates(blank, str(input))
    scorer = Model.from_pretrained(model, precision == "bf16", trust_remote_code, device)
    require_model(scorer, "unirank select", model)
    if conservative and scorer.posterior is None:
        raise SystemExit(f"unirank select: --conservative needs a head posterior, and {model} has none")
    flat = [(r["context"], c) for r in rows for c in r["candidates"]]
    scored, start, selections = scorer.score(flat), 0, []
    _say_if_shifted(
        withhold_when_shifted(scored), "unirank select", "--conservative keeps nothing" if conservative else ""
    )
    for record in rows:
        own = scored[start : start + len(record["candidates"])]
        start += len(own)
        chosen = select_candidates(own, threshold, scorer.pairwise_link, conservative)
        selections.append({**record, "scores": own, **chosen})
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in selections)
    print(f"{selection_summary(selections, threshold)} → {out}")


def prune(
    model: str,
    steps: Path,
    out: Path,
    split: str = "test",
    validation_fraction: float = 0.1,
    test_fraction: float = 0.2,
    threshold: float | None = None,
    keep: float = 0.95,
    keep_confidence: float = 0.9,
    conservative: bool = False,
    precision: Literal["fp32", "bf16"] = "fp32",
    device: str | None = None,
    trust_remote_code: bool = False,
) -> None:
    """Process models: stop each chain at its first step with P(correct) < threshold; report the
    correct steps kept, the wrong chains stopped early and the tokens not generated.

    Args:
        model: an exported process model or its checkpoint
        steps: PRMBench-shaped step-wise solutions (JSONL)
        out: JSON report to write: the figures and each solution's stop
        split: split to prune (train, validation, test, all)
        validation_fraction: group split fraction, as in training
        test_fraction: group split fraction, as in training
        threshold: stop below this P(correct); default: chosen on the validation split
        keep: the chosen threshold keeps this share of the correct solutions' steps
        keep_confidence: ... in this share of bootstrap resamples of the validation problems (0: on the
            validation sample itself, which overstates what new problems keep)
        conservative: stop when the 95 % lower bound of P(correct) is below the threshold
        precision: scoring precision
        device: where to score ("cpu", "cuda", "cuda:1"; default: a CUDA GPU where there is one)
        trust_remote_code: let a model whose backbone has its own code run it
    """
    from unirank.atomic import atomic_path, check_output_file
    from unirank.commands.evaluate import choose_split
    from unirank.domains.process.pruning import choose_threshold, prefix_probabilities, prune_at, pruning_report
    from unirank.domains.process.source import StepSolutions
    from unirank.model import Model

    if threshold is not None and not 0.0 < threshold < 1.0:
        raise SystemExit(f"unirank prune: --threshold {threshold} must be a probability in (0, 1)")
    if not 0.0 < keep <= 1.0:
        raise SystemExit(f"unirank prune: --keep {keep} must be a share in (0, 1]")
    if not 0.0 <= keep_confidence < 1.0:
        raise SystemExit(f"unirank prune: --keep_confidence {keep_confidence} must be in [0, 1)")
    check_output_file(out)  # before minutes of scoring, not after
    scorer = Model.from_pretrained(model, trust_remote_code=trust_remote_code, device=device).scorer
    if not scorer.adapter.reads_steps:
        raise SystemExit(f"unirank prune: {model} is a {scorer.adapter.domain} model, not a process model")
    if conservative and scorer.head_posterior is None:
        raise SystemExit(f"unirank prune: --conservative needs a head posterior, and {model} has none")
    tables = StepSolutions(str(steps), validation_fraction, test_fraction).load()

    def scored(part_name: str):
        part = choose_split(tables, part_name, "prune", steps)
        items = part.items
        problems, solutions = part.item_contexts(), items["steps"].to_list()
        probabilities = prefix_probabilities(scorer, problems, solutions, precision == "bf16", conservative)
        tokens = [[len(scorer.tokenizer(step, add_special_tokens=False)["input_ids"]) for step in s] for s in solutions]
        return items, probabilities, items["step_labels"].to_list(), tokens

    chosen_on = "the command line"
    if threshold is None:
        validation, probabilities, labels, _ = scored("validation")
        groups = validation["group_id"].to_list()
        threshold = choose_threshold(probabilities, labels, keep=keep, groups=groups, confidence=keep_confidence)
        chosen_on = f"validation (keep ≥ {keep}" + (
            f" in {keep_confidence:.0%} of resampled problems)" if keep_confidence else " on the sample)"
        )
    items, probabilities, labels, tokens = scored(split)
    report = {"threshold_chosen_on": chosen_on, "split": split, "solutions": items.height}
    report["probability"] = "one-sided 95 % lower bound" if conservative else "sigmoid(logit)"
    report |= pruning_report(probabilities, labels, tokens, threshold)
    stops = [
        {"group_id": g, "item_id": i, "stop_at_step": None if s is None else s + 1}
        for g, i, s in zip(items["group_id"], items["item_id"], (prune_at(p, threshold) for p in probabilities))
    ]
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps({**report, "solutions_stopped": stops}, indent=2) + "\n")
    print(
        f"threshold {threshold:.2f} (from {chosen_on}) on {items.height} {split} solutions: "
        f"{report['correct_steps_kept']:.1%} of the correct solutions' steps kept, "
        f"{report['wrong_stopped_before_end']:.1%} of the {report['wrong_solutions']} wrong solutions stopped before "
        f"their end, {report['tokens_saved']:,} tokens ({report['tokens_saved_share']:.1%}) not generated → {out}"
    )
