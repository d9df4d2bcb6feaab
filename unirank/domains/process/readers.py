"""Step-wise solutions (PRMBench / PRM800K shape) into tables."""

from __future__ import annotations

import warnings
from pathlib import Path

import polars as pl

from unirank.data.readers import assign_split, iter_jsonl, stable_id
from unirank.data.tables import TableError, Tables, tables_from_rows


def read_prmbench(path: str | Path, validation_fraction: float = 0.1, test_fraction: float = 0.2) -> Tables:
    """PRMBench / PRM800K-shaped step-wise solutions (JSONL): `original_process` (correct steps),
    `modified_process` (corrupted), `error_steps` (1-based), `classification` (error class).

    Per question: a group holding its original solution and every corrupted version as items with
    their `steps`, `step_labels` (1 correct, 0 wrong: every step not in error_steps is correct, as
    PRMBench labels them) and `error_class`; item label 1 / 0 for the solution; and a comparison
    original ≻ modified per corrupted version. Where the modification changed the question, the
    corrupted solution sits in its own group, with no comparison. Splits hash the original
    question, so a problem's solutions never straddle splits. An error step numbered past the
    solution's last step labels nothing and is reported with a warning naming the line (PRMBench
    has 11 such rows)."""
    path = Path(path)
    groups, items, comparisons, seen = {}, [], [], set()
    for line, row in iter_jsonl(path):
        missing = [k for k in ("original_process", "modified_process", "error_steps") if k not in row]
        if missing:
            raise TableError(f"{path}, line {line}: missing field(s) {missing}")
        original, modified, errors = row["original_process"], row["modified_process"], row["error_steps"]
        for name, steps in (("original_process", original), ("modified_process", modified)):
            if not isinstance(steps, list) or not steps or not all(isinstance(s, str) and s.strip() for s in steps):
                raise TableError(f"{path}, line {line}: {name} must be a non-empty list of non-empty strings")
        if not isinstance(errors, list) or not all(
            isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in errors
        ):
            raise TableError(f"{path}, line {line}: error_steps must be a list of step numbers >= 1, got {errors}")
        past_end = [e for e in errors if e > len(modified)]
        if past_end:  # PRMBench has a few: the step is not in the solution, so it labels nothing
            warnings.warn(
                f"{path}, line {line}: error step(s) {past_end} past the last step ({len(modified)}); ignored",
                stacklevel=2,
            )
        category = row.get("classification")
        if category is not None and not isinstance(category, str):
            raise TableError(f"{path}, line {line}: classification must be a string, got {type(category).__name__}")
        questions = {
            "original": row.get("original_question") or row.get("question"),
            "modified": row.get("modified_question") or row.get("question"),
        }
        if not all(isinstance(q, str) and q for q in questions.values()):
            raise TableError(f"{path}, line {line}: no question text")
        wrong = {e - 1 for e in errors}
        for kind, steps in (("original", original), ("modified", modified)):
            group_id = stable_id(questions[kind])
            groups.setdefault(
                group_id,
                {
                    "group_id": group_id,
                    "context": questions[kind],
                    "category": category,
                    "split": assign_split(stable_id(questions["original"]), validation_fraction, test_fraction),
                },
            )
            item_id = f"original-{stable_id(*steps)}" if kind == "original" else f"modified-line{line}"
            if (group_id, item_id) in seen:
                continue
            seen.add((group_id, item_id))
            step_labels = (
                [1.0] * len(steps) if kind == "original" else [0.0 if i in wrong else 1.0 for i in range(len(steps))]
            )
            items.append(
                {
                    "group_id": group_id,
                    "item_id": item_id,
                    "text": "\n".join(steps),
                    "label": 1.0 if kind == "original" else 0.0,
                    "steps": steps,
                    "step_labels": step_labels,
                    "error_class": category,
                }
            )
        if questions["original"] == questions["modified"]:
            comparisons.append(
                {
                    "group_id": stable_id(questions["original"]),
                    "item_a": f"original-{stable_id(*original)}",
                    "item_b": f"modified-line{line}",
                    "p": 1.0,
                    "weight": 1.0,
                    "source": "prmbench",
                }
            )
    if not groups:
        raise TableError(f"{path}: no records")
    step_columns = {"steps": pl.List(pl.String), "step_labels": pl.List(pl.Float64), "error_class": pl.String}
    return tables_from_rows(list(groups.values()), items, comparisons, str(path), item_columns=step_columns)
