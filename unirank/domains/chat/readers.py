"""Preference files into tables: TRL-style JSONL (strings or message lists), HH-RLHF dialogues,
PandaLM multi-annotator pairs (p = the annotators' fraction, weight = their number), PRMBench's
correct and corrupted solutions as outcome pairs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import polars as pl

from unirank.data.readers import TableCollector, iter_jsonl, read_messages
from unirank.data.tables import TableError, Tables, validate
from unirank.data.values import same_text


def _response_text(messages: list[dict]) -> str:
    """The candidate text of a response given as messages: the assistant turn(s) joined."""
    return "\n".join(m["content"] for m in messages)


def read_preferences(
    path: str | Path, validation_fraction: float = 0.1, test_fraction: float = 0.0, skip_invalid: bool = False
) -> Tables:
    """TRL-style preference JSONL: `prompt`, `chosen`, `rejected` (strings or message lists).

    Without `prompt`, chosen and rejected are whole conversations and the prompt is their shared
    leading messages. Optional `category` goes to groups.category. Each row is one comparison
    chosen ≻ rejected with p = 1 and weight 1; rows with the same prompt (and category) share a
    group. A bad row stops the read naming its line; with skip_invalid it is skipped, and the
    skipped rows are counted and named in one warning (to evaluate a public set as it is).
    """
    path = Path(path)
    collect = TableCollector(validation_fraction, test_fraction)
    skipped: list[str] | None = [] if skip_invalid else None
    for line, record in iter_jsonl(path, skipped):
        try:
            _read_preference(collect, path, line, record)
        except TableError as error:
            if skipped is None:
                raise
            skipped.append(str(error))
    if skipped:
        warnings.warn(f"{path}: skipped {len(skipped)} invalid row(s): " + "; ".join(skipped[:20]), stacklevel=2)
    return collect.tables(str(path))


def _read_preference(collect: TableCollector, path: Path, line: int, record: dict) -> None:
    """One TRL-style row into the collector; a bad row raises TableError naming its line."""
    for field in ("chosen", "rejected"):
        if field not in record:
            raise TableError(f"{path}, line {line}: missing field '{field}'")
    chosen = read_messages(record["chosen"], path, line, "chosen")
    rejected = read_messages(record["rejected"], path, line, "rejected")
    if "prompt" in record:
        prompt = read_messages(record["prompt"], path, line, "prompt")
    else:
        shared = 0
        while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
            shared += 1
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    if not prompt:
        raise TableError(f"{path}, line {line}: no prompt (no 'prompt' field and no shared leading messages)")
    chosen_text, rejected_text = _response_text(chosen), _response_text(rejected)
    if same_text(chosen_text, rejected_text):
        raise TableError(f"{path}, line {line}: chosen and rejected are the same response (up to white space)")
    category = record.get("category")
    group_id = collect.group(prompt, str(category) if category is not None else None)
    collect.compare(
        group_id, collect.item(group_id, chosen_text), collect.item(group_id, rejected_text), 1.0, 1.0, "preference"
    )


def parse_hh_dialogue(text: str) -> list[dict]:
    """An HH-RLHF dialogue ("\\n\\nHuman: ...\\n\\nAssistant: ...") as a list of messages."""
    messages = []
    for chunk in text.split("\n\n"):
        for marker, role in (("Human:", "user"), ("Assistant:", "assistant")):
            if chunk.startswith(marker):
                messages.append({"role": role, "content": chunk[len(marker) :].strip()})
                break
        else:
            if not messages:
                if chunk.strip():
                    raise ValueError(f"text before the first turn: {chunk[:40]!r}")
                continue
            messages[-1]["content"] += "\n\n" + chunk  # a paragraph break inside a turn
    return messages


def read_hh_rlhf(path: str | Path, validation_fraction: float = 0.1, test_fraction: float = 0.0) -> Tables:
    """HH-RLHF (`chosen`, `rejected` dialogues, .jsonl or .jsonl.gz): the shared turns are the prompt,
    the final assistant turns the two responses.

    A pair whose dialogues part before the last turn (HH-RLHF has a few, where a turn holds an inline
    "Human:" without its line breaks: 5 of the 2,312 harmless-base test pairs) is not one prompt with
    two responses: it is skipped, with one warning that names its lines."""
    path = Path(path)
    collect = TableCollector(validation_fraction, test_fraction)
    parted, same = [], []
    for line, record in iter_jsonl(path):
        try:
            chosen, rejected = parse_hh_dialogue(record["chosen"]), parse_hh_dialogue(record["rejected"])
        except KeyError as error:
            raise TableError(f"{path}, line {line}: missing field {error}") from None
        except (ValueError, AttributeError) as error:
            raise TableError(f"{path}, line {line}: not an HH-RLHF dialogue ({error})") from None
        if not chosen or chosen[-1]["role"] != "assistant" or not rejected or rejected[-1]["role"] != "assistant":
            raise TableError(f"{path}, line {line}: a dialogue does not end with an assistant turn")
        prompt = chosen[:-1]
        if not prompt or not rejected[:-1]:
            raise TableError(f"{path}, line {line}: a dialogue has no turn before the final assistant turn")
        if rejected[:-1] != prompt:
            parted.append(line)
            continue
        if same_text(chosen[-1]["content"], rejected[-1]["content"]):
            same.append(line)  # the same final turn carries no preference
            continue
        group_id = collect.group(prompt, None)
        collect.compare(
            group_id,
            collect.item(group_id, chosen[-1]["content"]),
            collect.item(group_id, rejected[-1]["content"]),
            1.0,
            1.0,
            "hh-rlhf",
        )
    if parted:
        warnings.warn(f"{path}: line(s) {parted}: chosen and rejected part before the last turn; skipped", stacklevel=2)
    _warn_same(path, "line", same)
    return collect.tables(str(path))


def _warn_same(path: Path, unit: str, where: list[int]) -> None:
    """One warning for the pairs skipped because both responses are the same up to white space."""
    if where:
        shown = ", ".join(map(str, where[:20])) + (" ..." if len(where) > 20 else "")
        warnings.warn(
            f"{path}: {len(where)} pair(s) whose two responses are the same up to white space, skipped "
            f"({unit}s {shown}): they carry no preference",
            stacklevel=3,
        )


def read_pandalm(path: str | Path, validation_fraction: float = 0.1, test_fraction: float = 0.0) -> Tables:
    """PandaLM's multi-annotator pairs: p = fraction of annotators preferring response1 (a tie
    counts a half), weight = number of annotators. Annotator codes: 0 tie, 1 response1, 2 response2.
    A response that is not a string (a bare JSON true, say) is kept as its JSON text; the
    `motivation_app` becomes the group's category."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TableError(f"{path}: cannot read as a JSON list ({error})") from None
    if not isinstance(rows, list):
        raise TableError(f"{path}: expected a JSON list of comparisons")
    collect = TableCollector(validation_fraction, test_fraction)
    same = []
    for row_no, row in enumerate(rows):
        where = f"{path}, row {row_no}"
        try:
            instruction, extra = row["instruction"], row.get("input") or ""
            r1, r2 = (v if isinstance(v, str) else json.dumps(v) for v in (row["response1"], row["response2"]))
            votes = [row[k] for k in sorted(row) if k.startswith("annotator")]
        except (KeyError, TypeError) as error:
            raise TableError(f"{where}: missing field {error}") from None
        if not votes or any(isinstance(v, bool) or v not in (0, 1, 2) for v in votes):
            raise TableError(f"{where}: annotator labels must be 0 (tie), 1 or 2, got {votes}")
        if not isinstance(instruction, str) or not isinstance(extra, str):
            raise TableError(f"{where}: instruction and input must be strings")
        category = row.get("motivation_app")
        if category is not None and not isinstance(category, str):
            raise TableError(f"{where}: motivation_app must be a string, got {type(category).__name__}")
        prompt = instruction if not extra else f"{instruction}\n\n{extra}"
        group_id = collect.group([{"role": "user", "content": prompt}], category)
        if same_text(r1, r2):
            same.append(row_no)
            continue
        p = sum({1: 1.0, 2: 0.0, 0: 0.5}[v] for v in votes) / len(votes)
        collect.compare(
            group_id, collect.item(group_id, r1), collect.item(group_id, r2), p, float(len(votes)), "pandalm"
        )
    _warn_same(path, "row", same)
    return collect.tables(str(path))


def read_prmbench_outcomes(path: str | Path, validation_fraction: float = 0.1, test_fraction: float = 0.0) -> Tables:
    """PRMBench (the process domain's reader, `domains/process/readers.py`, checks the rows) read as
    outcome preferences: the question is the user turn, a solution's steps joined by line breaks
    are one response, and the correct solution ≻ each corrupted one with p = 1, weight 1. A
    corrupted solution whose question was changed has no comparison and is left out. The split
    hashes the question, as the process domain's does."""
    from unirank.domains.process.readers import read_prmbench

    tables = read_prmbench(path, validation_fraction, test_fraction)
    compared = pl.col("group_id").is_in(tables.comparisons["group_id"].unique().implode())
    as_turn = pl.col("context").map_elements(
        lambda question: json.dumps([{"role": "user", "content": question}], ensure_ascii=False),
        return_dtype=pl.String,
    )
    groups = tables.groups.filter(compared).with_columns(as_turn)
    items = tables.items.filter(compared).select("group_id", "item_id", "text", pl.lit(None, pl.Float64).alias("label"))
    return validate(Tables(groups, items, tables.comparisons), str(path))
