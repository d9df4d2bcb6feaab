"""Readers from the formats users have into the canonical tables.

Every reader fails with a message naming the file, the line (1-based) or row, and the problem.
Chat contexts are stored as the JSON text of a list of {"role", "content"} messages.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from unirank.data.tables import TableError, Tables, tables_from_rows
from unirank.data.values import check_messages


def stable_id(*parts: str) -> str:
    """A short content hash: the same text always gets the same id."""
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]


def assign_split(group_id: str, validation_fraction: float, test_fraction: float = 0.0) -> str:
    """Split by a stable hash of the group, never by row, so no prompt is on both sides."""
    u = int(hashlib.sha1(group_id.encode("utf-8")).hexdigest()[:8], 16) / 16**8
    if u < test_fraction:
        return "test"
    return "validation" if u < test_fraction + validation_fraction else "train"


def iter_jsonl(path: str | Path, skipped: list[str] | None = None) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line (.jsonl or .jsonl.gz); bad JSON, bad
    UTF-8 or a non-object names the line (raised, or, given a `skipped` list, appended to it and skipped)."""
    path = Path(path)
    if not path.exists():
        raise TableError(f"{path}: file not found")
    if path.is_dir():
        raise TableError(f"{path}: is a folder, not a JSONL file")
    opener = gzip.open if path.suffix == ".gz" else open
    line_no = 0
    try:
        with opener(path, "rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                try:
                    record = _parse_line(path, line_no, raw)
                except TableError as error:
                    if skipped is None:
                        raise
                    skipped.append(str(error))
                    continue
                if record is not None:
                    yield line_no, record
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise TableError(f"{path}, line {line_no + 1}: the compressed file is truncated or corrupt ({error})") from None


def _parse_line(path: Path, line_no: int, raw: bytes) -> dict | None:
    """One JSONL line as an object (None for a blank line); every problem names the line."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TableError(f"{path}, line {line_no}: not valid UTF-8 ({error.reason})") from None
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise TableError(f"{path}, line {line_no}: malformed JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(record, dict):
        raise TableError(f"{path}, line {line_no}: expected a JSON object, got {type(record).__name__}")
    try:  # a "\ud800" escape decodes to a lone surrogate, which no text encoder takes later
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise TableError(f"{path}, line {line_no}: a string holds a lone surrogate (\\ud800-\\udfff escape)") from None
    return record


def read_messages(value, path: Path, line: int, field: str) -> list[dict]:
    """A non-empty string or a list of {role, content} messages with known roles, as a list of
    messages (a bare string is a user turn for the prompt, an assistant turn otherwise)."""
    return check_messages(value, f"{path}, line {line}", field, "user" if field == "prompt" else "assistant")


@dataclass
class TableCollector:
    """Accumulates groups, items and comparisons while reading, deduplicating items by text."""

    validation_fraction: float
    test_fraction: float

    def __post_init__(self):
        self.groups: dict[str, dict] = {}
        self.items: dict[tuple[str, str], dict] = {}
        self.comparisons: list[dict] = []

    def group(self, context: list[dict], category: str | None) -> str:
        """One group per (prompt, category): a prompt listed under two categories counts in each. The
        id is the prompt's hash; a second category of the same prompt gets the hash of both."""
        text = json.dumps(context, ensure_ascii=False)
        group_id = stable_id(text)
        if group_id in self.groups and self.groups[group_id]["category"] != category:
            group_id = stable_id(text, str(category))
        if group_id not in self.groups:
            split = assign_split(group_id, self.validation_fraction, self.test_fraction)
            self.groups[group_id] = {"group_id": group_id, "context": text, "category": category, "split": split}
        return group_id

    def item(self, group_id: str, text: str) -> str:
        item_id = stable_id(group_id, text)
        self.items.setdefault(
            (group_id, item_id), {"group_id": group_id, "item_id": item_id, "text": text, "label": None}
        )
        return item_id

    def compare(self, group_id: str, a: str, b: str, p: float, weight: float, source: str) -> None:
        self.comparisons.append(
            {"group_id": group_id, "item_a": a, "item_b": b, "p": p, "weight": weight, "source": source}
        )

    def tables(self, source: str) -> Tables:
        if not self.groups:
            raise TableError(f"{source}: no records")
        return tables_from_rows(list(self.groups.values()), list(self.items.values()), self.comparisons, source)
