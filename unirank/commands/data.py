"""Commands that build training data: mine a BEIR folder, label pairs by judges or a teacher,
fit targets to a comparisons table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import polars as pl

from unirank.atomic import write_parquet
from unirank.mining.pipeline import MiningConfig


def mine(beir: Path, out: Path, split: str = "train", mining: MiningConfig = MiningConfig()) -> None:
    """Mine candidates and labelled comparisons from a BEIR folder.

    Args:
        beir: BEIR folder (corpus.jsonl, queries.jsonl, qrels/)
        out: mined folder to write (groups, items, comparisons, qrels, mining.json)
        split: qrels split to mine
        mining: how to mine (the same block as a recipe's MinedBeir `mining`)
    """
    from unirank.atomic import OutputError, check_output_folder
    from unirank.data.tables import TableError
    from unirank.mining.pipeline import mine_beir, split_qrels, write_mined

    try:
        check_output_folder(out, "mining.json", "mined folder", overwrite=True)
        tables, summary = mine_beir(beir, split, mining)
        write_mined(tables, summary, out, qrels=split_qrels(beir, split))
    except (TableError, OutputError) as error:
        raise SystemExit(f"unirank mine: {error}") from None
    print(json.dumps(summary, indent=2))


def targets(
    comparisons: Path,
    out: Path,
    items: Path | None = None,
    link: Literal["thurstone", "bradley-terry"] = "thurstone",
    l2: float = 1.0,
) -> None:
    """Fit Thurstone (or Bradley-Terry) latents to a comparisons table and write the targets table.

    Args:
        comparisons: comparisons.parquet
        out: targets.parquet to write
        items: items.parquet, so that uncompared items get a target too
        link: the link of the pairwise model
        l2: prior precision of the latents
    """
    from unirank.atomic import check_output_file
    from unirank.data.tables import validate_comparisons
    from unirank.fitting import fit_targets

    check_output_file(out)
    table = validate_comparisons(_read_table(comparisons), str(comparisons))
    if not table.height:
        raise SystemExit(f"unirank targets: {comparisons}: no comparisons, nothing to fit; nothing was written")
    try:
        targets, fit = fit_targets(table, items=_read_table(items) if items else None, link=link, l2=l2)
    except ValueError as error:
        raise SystemExit(f"unirank targets: {comparisons}: {error}") from None
    problem = fit.problem(f"{table.height} comparisons")
    if problem:
        raise SystemExit(f"unirank targets: {comparisons}: {problem}; nothing was written to {out} (raise --l2)")
    write_parquet(targets, out)
    summary = {
        "items": targets.height,
        "groups": targets["group_id"].n_unique(),
        "comparisons": table.height,
        "log_likelihood": fit.log_likelihood,
        "converged": fit.converged,
        "max_std_err": round(float(fit.std_err.max(initial=0.0)), 4),
        "newton_iterations": fit.iterations,
        "out": str(out),
    }
    print(json.dumps(summary, indent=2))


def judge_requests(tables: Path, out: Path, seed: int = 0) -> None:
    """Write a mined folder's pairs for external judges, each pair's order randomised and recorded.

    Args:
        tables: a mined folder (groups, items, comparisons)
        out: JSONL of requests to write
        seed: seed of the order randomisation
    """
    from unirank.data.tables import TableError, read_tables
    from unirank.mining.judges import write_judge_requests

    try:
        count = write_judge_requests(read_tables(tables), out, seed=seed)
    except TableError as error:
        raise SystemExit(f"unirank judge: {error}") from None
    print(f"wrote {count} judge requests (random order recorded) → {out}")


def judge_import(tables: Path, judgments: Path, out: Path) -> None:
    """Read the judges' answers into labelled comparisons.

    Args:
        tables: the mined folder the requests came from
        judgments: JSONL of {pair_id, item_a, item_b, preferred}
        out: folder to write the labelled tables to
    """
    from unirank.mining.judges import read_judgments

    _write_labelled(tables, lambda t: read_judgments(judgments), str(judgments), out)


def judge_teacher(tables: Path, model: str, out: Path, trust_remote_code: bool = False) -> None:
    """Label a mined folder's pairs with a teacher model's probabilities.

    Args:
        tables: a mined folder (groups, items, comparisons)
        model: a unirank export or checkpoint, or a sentence-transformers CrossEncoder name or path
        out: folder to write the labelled tables to
        trust_remote_code: let a teacher whose backbone has its own code run it
    """
    from unirank.mining.judges import teacher_comparisons

    _write_labelled(tables, lambda t: teacher_comparisons(t, _teacher(model, trust_remote_code)), model, out)


JUDGED = "judged.json"
"""The file that marks a folder `judge` wrote (with what labelled it); `judge` replaces no other folder
but a mined one (mining.json)."""


def judge_llm(
    tables: Path,
    endpoint: str,
    model: str,
    out: Path,
    judges: int = 3,
    cycles: int = 0,
    progress: Path | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    timeout: float = 60.0,
    retries: int = 5,
    rate: float = 5.0,
    seed: int = 0,
) -> None:
    """Label a mined folder's pairs with LLM judges over an OpenAI-compatible endpoint (vLLM,
    SGLang, Ollama, a hosted API): every pair in both orders, `judges` times, p = the share of votes.

    Args:
        tables: a mined folder (groups, items, comparisons)
        endpoint: the API's base URL (before /chat/completions), e.g. http://localhost:8000/v1
        model: the model name the endpoint serves
        out: folder to write the labelled tables to
        judges: judges (samples at temperature 1) per pair and order
        cycles: judge `cycles` random cycles through each group's items instead of its comparisons
        progress: the answers so far (JSONL; default: beside out); a killed run resumes from it
        api_key_env: the environment variable holding the API key, if the endpoint needs one
        timeout: seconds to wait for one answer, in all (a reply that trickles in is given up then)
        retries: retries of a request that timed out, or got 429 or 5xx
        rate: at most this many requests per second
        seed: the order randomisation and the cycles
    """
    import os

    from unirank.atomic import OutputError, check_output_file
    from unirank.mining.llm_judge import Endpoint, JudgeError, judge_pairs

    if judges < 1 or cycles < 0:
        raise SystemExit(f"unirank judge llm: --judges {judges} must be ≥ 1 and --cycles {cycles} ≥ 0")
    try:
        client = Endpoint(endpoint, model, os.environ.get(api_key_env), timeout, retries, rate)
    except ValueError as error:
        raise SystemExit(f"unirank judge llm: {error}") from None
    progress = progress or Path(out).with_name(f".{Path(out).name}.judge-progress.jsonl")
    try:  # checked before any request, as the labelled folder is
        check_output_file(progress)
    except OutputError as error:
        raise SystemExit(f"unirank judge llm: --progress {error}") from None

    def label(tables_read):
        try:
            return judge_pairs(tables_read, client, Path(progress), judges, cycles, seed)[0]
        except JudgeError as error:
            raise SystemExit(f"unirank judge llm: {error}; the answers so far are kept in {progress}") from None

    _write_labelled(tables, label, f"llm judge {model} at {endpoint}", out)


def _write_labelled(folder: Path, label, source: str, out: Path) -> None:
    """Read a mined folder, label its comparisons with `label(tables)`, validate them, and write the
    labelled folder as one output (tables, judged.json, and the input's mining.json and qrels.tsv),
    swapped in whole: a killed run leaves the old folder or the new one, never new tables beside
    old ones. `out` is checked before any labelling (a teacher's scoring takes a while)."""
    from unirank.atomic import OutputError, atomic_path, check_output_folder
    from unirank.data.tables import TableError, Tables, read_tables, validate

    try:
        check_output_folder(out, ("mining.json", JUDGED), "labelled folder", overwrite=True)
        tables = read_tables(folder)
        labelled = validate(Tables(tables.groups, tables.items, label(tables)), source)
        carried = {
            name: (folder / name).read_bytes() for name in ("mining.json", "qrels.tsv") if (folder / name).is_file()
        }
        with atomic_path(out, directory=True) as tmp:
            labelled.write(tmp)
            for name, content in carried.items():
                (tmp / name).write_bytes(content)
            summary = {"tables": str(folder), "labelled_by": source, "comparisons": labelled.comparisons.height}
            (tmp / JUDGED).write_text(json.dumps(summary, indent=2) + "\n")
    except (TableError, OutputError) as error:
        raise SystemExit(f"unirank judge: {error}") from None
    print(f"{labelled.comparisons.height} labelled comparisons → {out}")


def _teacher(model: str, trust_remote_code: bool = False):
    """Logits of a unirank model (export folder or checkpoint) or of a sentence-transformers CrossEncoder."""
    from unirank.mining.judges import cross_encoder_logits
    from unirank.model.backbone import resolve_model_path

    path = Path(model)
    if path.suffix == ".ckpt" or (path / "unirank.json").exists():
        from unirank.commands import require_model
        from unirank.model import Model

        teacher = Model.from_pretrained(path, trust_remote_code=trust_remote_code)
        require_model(teacher, "unirank judge teacher", path, what="a teacher")
        return teacher.score_texts
    from sentence_transformers import CrossEncoder

    return cross_encoder_logits(CrossEncoder(resolve_model_path(model), trust_remote_code=trust_remote_code))


def _read_table(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise SystemExit(f"unirank: cannot read {path} as parquet: {error}") from None
