"""Checks of single values where they enter (JSONL rows, records, model folders): numbers finite and
in range, a boolean never read as a number or an index, texts not blank, chat contexts well formed.

Every failure is a `TableError` naming the place (`where`: a file and line or row) and the field.
"""

from __future__ import annotations

import math

from unirank.data.tables import TableError

ROLES = ("system", "user", "assistant", "tool")
"""The chat roles a message may have (those chat templates know)."""


def is_finite_number(value) -> bool:
    """An int or float (never a bool: JSON true is not 1) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_number(value, where: str, field: str, low: float = -math.inf, high: float = math.inf) -> float:
    """`value` as a float, if it is a finite number (not a bool, not a string) within [low, high]."""
    if not is_finite_number(value):
        raise TableError(f"{where}: '{field}' must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise TableError(f"{where}: '{field}' must be within [{low:g}, {high:g}], got {value!r}")
    return float(value)


def check_text(value, where: str, field: str) -> str:
    """`value` if it is a string with something besides white space in it."""
    if not isinstance(value, str):
        raise TableError(f"{where}: '{field}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise TableError(f"{where}: '{field}' is empty")
    return value


def check_messages(value, where: str, field: str, default_role: str = "user") -> list[dict]:
    """A non-blank string (one message of `default_role`) or a non-empty list of {role, content}
    messages with known roles and string contents, as a list of messages."""
    if isinstance(value, str):
        messages = [{"role": default_role, "content": check_text(value, where, field)}]
    elif isinstance(value, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    ):
        messages = [{"role": m["role"], "content": m["content"]} for m in value]
    else:
        raise TableError(f"{where}: '{field}' must be a string or a list of {{role, content}} messages")
    unknown = sorted({m["role"] for m in messages} - set(ROLES))
    if unknown:
        raise TableError(f"{where}: '{field}' has unknown role(s) {unknown}; roles are {', '.join(ROLES)}")
    if not any(m["content"].strip() for m in messages):
        raise TableError(f"{where}: '{field}' is empty")
    return messages


def same_text(a: str, b: str) -> bool:
    """Whether two texts differ in white space only (a preference between them says nothing)."""
    return a.split() == b.split()


def check_scoring_row(record: dict, where: str, candidates: bool = False) -> int:
    """Check a row of the scoring commands (score, select, recalibrate): its `context` (a string or
    chat messages), its `candidate` string (with candidates=True, its non-empty `candidates` list of
    strings) and, where given, its `first_stage_score` (a finite number). Returns how many of its
    candidates are blank: they are scored (an empty response is a response), and counted."""
    check_messages(record.get("context"), where, "context")
    if candidates:
        texts = record.get("candidates")
        if not (isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts)):
            raise TableError(f"{where}: 'candidates' must be a non-empty list of strings")
    else:
        texts = [record.get("candidate")]
        if not isinstance(texts[0], str):
            raise TableError(f"{where}: 'candidate' must be a string, got {type(texts[0]).__name__}")
    if "first_stage_score" in record:
        check_number(record["first_stage_score"], where, "first_stage_score")
    return sum(not t.strip() for t in texts)


def warn_blank_candidates(count: int, source: str) -> None:
    """One warning for the blank candidates of a scoring input, with their count."""
    if count:
        import warnings

        warnings.warn(f"{source}: {count} blank candidate(s), each scored as an empty response", stacklevel=3)
