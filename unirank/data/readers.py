"""Readers from the formats users have into the canonical tables.

Every reader fails with a message naming the file, the line (1-based) or row, and the problem.
Chat contexts are stored as the JSON text of a list of {"role", "content"} messages.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from unirank.data.tables import TableError, Tables, tables_from_rows


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


ROLES = ("system", "user", "assistant", "tool")
"""The chat roles a message may have (those chat templates know)."""


def _messages(value, path: Path, line: int, field: str) -> list[dict]:
    """A non-empty string or a list of {role, content} messages with known roles, as a list of messages."""
    if isinstance(value, str):
        messages = [{"role": "assistant" if field != "prompt" else "user", "content": value}]
    elif isinstance(value, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    ):
        messages = [{"role": m["role"], "content": m["content"]} for m in value]
    else:
        raise TableError(f"{path}, line {line}: '{field}' must be a string or a list of {{role, content}} messages")
    unknown = sorted({m["role"] for m in messages} - set(ROLES))
    if unknown:
        raise TableError(f"{path}, line {line}: '{field}' has unknown role(s) {unknown}; roles are {', '.join(ROLES)}")
    if not messages or not any(m["content"].strip() for m in messages):
        raise TableError(f"{path}, line {line}: '{field}' is empty")
    return messages


@dataclass
class _Collector:
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
    collect = _Collector(validation_fraction, test_fraction)
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


def _read_preference(collect: _Collector, path: Path, line: int, record: dict) -> None:
    """One TRL-style row into the collector; a bad row raises TableError naming its line."""
    for field in ("chosen", "rejected"):
        if field not in record:
            raise TableError(f"{path}, line {line}: missing field '{field}'")
    chosen = _messages(record["chosen"], path, line, "chosen")
    rejected = _messages(record["rejected"], path, line, "rejected")
    if "prompt" in record:
        prompt = _messages(record["prompt"], path, line, "prompt")
    else:
        shared = 0
        while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
            shared += 1
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    if not prompt:
        raise TableError(f"{path}, line {line}: no prompt (no 'prompt' field and no shared leading messages)")
    chosen_text, rejected_text = _response_text(chosen), _response_text(rejected)
    if chosen_text == rejected_text:
        raise TableError(f"{path}, line {line}: chosen and rejected are the same response")
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
    collect = _Collector(validation_fraction, test_fraction)
    parted = []
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
        if chosen[-1]["content"] == rejected[-1]["content"]:
            continue  # identical final turns carry no preference
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
    return collect.tables(str(path))


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
    collect = _Collector(validation_fraction, test_fraction)
    for row_no, row in enumerate(rows):
        where = f"{path}, row {row_no}"
        try:
            instruction, extra = row["instruction"], row.get("input") or ""
            r1, r2 = (v if isinstance(v, str) else json.dumps(v) for v in (row["response1"], row["response2"]))
            votes = [row[k] for k in sorted(row) if k.startswith("annotator")]
        except (KeyError, TypeError) as error:
            raise TableError(f"{where}: missing field {error}") from None
        if not votes or any(v not in (0, 1, 2) for v in votes):
            raise TableError(f"{where}: annotator labels must be 0 (tie), 1 or 2, got {votes}")
        if not isinstance(instruction, str) or not isinstance(extra, str):
            raise TableError(f"{where}: instruction and input must be strings")
        category = row.get("motivation_app")
        if category is not None and not isinstance(category, str):
            raise TableError(f"{where}: motivation_app must be a string, got {type(category).__name__}")
        prompt = instruction if not extra else f"{instruction}\n\n{extra}"
        group_id = collect.group([{"role": "user", "content": prompt}], category)
        if r1 == r2:
            continue
        p = sum({1: 1.0, 2: 0.0, 0: 0.5}[v] for v in votes) / len(votes)
        collect.compare(
            group_id, collect.item(group_id, r1), collect.item(group_id, r2), p, float(len(votes)), "pandalm"
        )
    return collect.tables(str(path))


@dataclass(frozen=True)
class BeirData:
    """A BEIR folder: corpus (doc id → "title. text"), queries (id → text), qrels (qid → {doc id: grade})."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def read_beir(directory: str | Path, split: str) -> BeirData:
    """Read corpus.jsonl, queries.jsonl and qrels/<split>.tsv; unknown or duplicate ids name file and line.
    A folder holding a classic SMART collection instead (`smart_files`) is read by `read_smart`."""
    directory = Path(directory)
    if smart_files(directory) is not None:
        return read_smart(directory, split)
    corpus = _read_id_text(directory / "corpus.jsonl", with_title=True)
    queries = _read_id_text(directory / "queries.jsonl", with_title=False)
    if not corpus:
        raise TableError(f"{directory / 'corpus.jsonl'}: the corpus is empty")
    qrels_path = directory / "qrels" / f"{split}.tsv"
    if not qrels_path.exists():
        raise TableError(f"{qrels_path}: file not found (no qrels for split {split!r})")
    qrels = read_qrels(qrels_path, known_queries=queries, known_docs=corpus)
    return BeirData(corpus=corpus, queries=queries, qrels=qrels)


def read_qrels(path: str | Path, known_queries=None, known_docs=None) -> dict[str, dict[str, int]]:
    """A BEIR qrels file (query-id, corpus-id, grade; tab-separated, optional header) → {qid: {doc: grade}}.
    known_queries / known_docs: ids outside them are an error naming the line."""
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.rstrip("\n").split("\t")
            if line_no == 1 and fields[:2] == ["query-id", "corpus-id"]:
                continue
            if not line.strip():
                continue
            if len(fields) != 3:
                raise TableError(f"{path}, line {line_no}: expected 3 tab-separated fields, got {len(fields)}")
            qid, doc_id, grade = fields
            if known_queries is not None and qid not in known_queries:
                raise TableError(f"{path}, line {line_no}: unknown query id {qid!r}")
            if known_docs is not None and doc_id not in known_docs:
                raise TableError(f"{path}, line {line_no}: unknown corpus id {doc_id!r}")
            try:
                qrels.setdefault(qid, {})[doc_id] = int(grade)
            except ValueError:
                raise TableError(f"{path}, line {line_no}: grade {grade!r} is not an integer") from None
    return qrels


SMART_SPLIT = "test"
"""A SMART collection's one set of judgments is read as this split (the collections have no train split)."""


def smart_files(directory: Path) -> tuple[Path, Path, Path] | None:
    """(documents, queries, relevance) of a classic test collection in SMART format (CISI,
    Cranfield, MEDLINE, CACM: `*.ALL`, `*.QRY`, `*.REL`), or None where the folder is not one."""
    found = [sorted(directory.glob(f"*.{ext}")) for ext in ("ALL", "QRY", "REL")] if directory.is_dir() else []
    return tuple(files[0] for files in found) if found and all(len(files) == 1 for files in found) else None


def read_smart(directory: str | Path, split: str = SMART_SPLIT) -> BeirData:
    """A SMART collection as BEIR data: documents `.I id` then fields (`.T` title, `.W` text, `.A`
    authors, `.X` citations...), the text being title + ". " + text; queries the same (`.W`, and
    `.T` where given); relevance lines `query-id doc-id ...`, every listed pair relevant (grade 1).
    A missing `.I`, a duplicate id or an unknown id in the relevance file names the file and line."""
    directory = Path(directory)
    documents, queries, relevance = smart_files(directory)
    if split != SMART_SPLIT:
        raise TableError(
            f"{directory}: a SMART collection has one set of judgments, read as split {SMART_SPLIT!r}; got {split!r}"
        )
    corpus, asked = _read_smart_records(documents), _read_smart_records(queries)
    if not corpus:
        raise TableError(f"{documents}: no documents")
    qrels: dict[str, dict[str, int]] = {}
    with open(relevance, encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise TableError(f"{relevance}, line {line_no}: expected 'query-id doc-id', got {line.strip()!r}")
            qid, doc_id = fields[0], fields[1]
            if qid not in asked:
                raise TableError(f"{relevance}, line {line_no}: unknown query id {qid!r} (not in {queries.name})")
            if doc_id not in corpus:
                raise TableError(
                    f"{relevance}, line {line_no}: unknown document id {doc_id!r} (not in {documents.name})"
                )
            qrels.setdefault(qid, {})[doc_id] = 1
    return BeirData(corpus=corpus, queries=asked, qrels=qrels)


def _read_smart_records(path: Path) -> dict[str, str]:
    """{id: title + ". " + text} of a SMART file (`.W` text; `.T` title where there is one)."""
    records: dict[str, dict[str, list[str]]] = {}
    current, field = None, None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            if line.startswith(".I"):
                key = line[2:].strip()
                if not key:
                    raise TableError(f"{path}, line {line_no}: '.I' without an id")
                if key in records:
                    raise TableError(f"{path}, line {line_no}: duplicate id {key!r}")
                current, field = records.setdefault(key, {}), None
            elif len(line) >= 2 and line[0] == "." and line[1].isalpha() and line[2:].strip() == "":
                if current is None:
                    raise TableError(f"{path}, line {line_no}: field {line.strip()!r} before the first '.I'")
                field = line[1]
            elif line.strip():
                if current is None:
                    raise TableError(f"{path}, line {line_no}: text before the first '.I'")
                if field is not None:
                    current.setdefault(field, []).append(line.strip())
    texts = {}
    for key, fields in records.items():
        title, body = " ".join(fields.get("T", [])), " ".join(fields.get("W", []))
        texts[key] = f"{title}. {body}" if title and body else title or body
    return texts


def write_qrels(qrels: dict[str, dict[str, int]], path: str | Path) -> None:
    """qrels in BEIR's tab-separated format, with its header (the caller makes the write atomic)."""
    rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q, docs in qrels.items() for d, g in docs.items()]
    Path(path).write_text("\n".join(rows) + "\n", encoding="utf-8")


def _read_id_text(path: Path, with_title: bool) -> dict[str, str]:
    texts: dict[str, str] = {}
    for line, record in iter_jsonl(path):
        if "_id" not in record or "text" not in record:
            raise TableError(f"{path}, line {line}: needs '_id' and 'text'")
        key = str(record["_id"])
        if not isinstance(record["text"], str):
            raise TableError(f"{path}, line {line}: 'text' must be a string, got {type(record['text']).__name__}")
        if key in texts:
            raise TableError(f"{path}, line {line}: duplicate id {key!r}")
        title = str(record.get("title") or "").strip() if with_title else ""
        texts[key] = f"{title}. {record['text']}" if title else str(record["text"])
    return texts


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
        if not isinstance(errors, list) or not all(isinstance(e, int) and e >= 1 for e in errors):
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
