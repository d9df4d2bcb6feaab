"""Retrieval collections: BEIR folders (corpus, queries, qrels) and classic SMART collections."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from unirank.data.readers import iter_jsonl
from unirank.data.tables import TableError


@dataclass(frozen=True)
class BeirData:
    """A BEIR folder: corpus (doc id → "title. text"), queries (id → text), qrels (qid → {doc id: grade})."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def read_beir(directory: str | Path, split: str, strict: bool = False) -> BeirData:
    """Read corpus.jsonl, queries.jsonl and qrels/<split>.tsv; unknown or duplicate ids name file and line.
    A folder holding a classic SMART collection instead (`smart_files`) is read by `read_smart`.
    A document with neither text nor title is skipped with its qrels, all counted in one warning
    (strict: refused, naming its line)."""
    directory = Path(directory)
    if smart_files(directory) is not None:
        return _without_empty_documents(read_smart(directory, split), directory, strict)
    corpus = _read_id_text(directory / "corpus.jsonl", with_title=True, strict=strict)
    queries = _read_id_text(directory / "queries.jsonl", with_title=False, strict=True)
    if not corpus:
        raise TableError(f"{directory / 'corpus.jsonl'}: the corpus is empty")
    qrels_path = directory / "qrels" / f"{split}.tsv"
    if not qrels_path.exists():
        raise TableError(f"{qrels_path}: file not found (no qrels for split {split!r})")
    qrels = read_qrels(qrels_path, known_queries=queries, known_docs=corpus)
    return _without_empty_documents(BeirData(corpus=corpus, queries=queries, qrels=qrels), directory, strict)


def _without_empty_documents(data: BeirData, directory: Path, strict: bool) -> BeirData:
    """The data less its documents of no text (and the qrels that name them), said in one warning."""
    empty = {key for key, text in data.corpus.items() if not text.strip()}
    if not empty:
        return data
    if strict:
        raise TableError(f"{directory}: {len(empty)} documents have no text and no title (e.g. {sorted(empty)[:3]})")
    qrels = {q: {d: g for d, g in docs.items() if d not in empty} for q, docs in data.qrels.items()}
    dropped = sum(len(docs) for docs in data.qrels.values()) - sum(len(docs) for docs in qrels.values())
    import warnings

    warnings.warn(
        f"{directory}: {len(empty)} documents with neither text nor title skipped (ids {sorted(empty)[:5]}), "
        f"with the {dropped} qrels that name them (mining.strict=true refuses them)",
        stacklevel=3,
    )
    corpus = {key: text for key, text in data.corpus.items() if key not in empty}
    return BeirData(corpus=corpus, queries=data.queries, qrels={q: docs for q, docs in qrels.items() if docs})


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


def _read_id_text(path: Path, with_title: bool, strict: bool = True) -> dict[str, str]:
    """{id: text} of a BEIR JSONL file (title and text joined); an entry with neither is refused
    naming its line (strict) or kept empty for the caller to skip."""
    texts: dict[str, str] = {}
    for line, record in iter_jsonl(path):
        if "_id" not in record or "text" not in record:
            raise TableError(f"{path}, line {line}: needs '_id' and 'text'")
        key, title = record["_id"], record.get("title") if with_title else None
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise TableError(f"{path}, line {line}: '_id' must be a string or an integer, got {key!r}")
        key = str(key)
        if not isinstance(record["text"], str):
            raise TableError(f"{path}, line {line}: 'text' must be a string, got {type(record['text']).__name__}")
        if title is not None and (not isinstance(title, (str, int, float)) or isinstance(title, bool)):
            raise TableError(f"{path}, line {line}: 'title' must be a string, got {type(title).__name__}")
        if key in texts:
            raise TableError(f"{path}, line {line}: duplicate id {key!r}")
        title = str(title if title is not None else "").strip()  # a number as title is read as its text
        texts[key] = f"{title}. {record['text']}" if title else record["text"]
        if not texts[key].strip() and strict:
            raise TableError(f"{path}, line {line}: {key!r} has no text and no title")
    return texts
