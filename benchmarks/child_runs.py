"""Measurements that run in a fresh process of their own, so that each one's peak memory (VmHWM)
and start-up are its own: `python -m benchmarks.child_runs NAME --option value ...` runs the
function NAME with its typed keyword arguments and prints its result as one JSON line.

Each function imports what it measures inside its body (the dispatcher itself imports only the
standard library), so a run's memory holds only what it uses.
"""

from __future__ import annotations

import inspect
import json
import sys
import time

from benchmarks.common import anonymous_rss_mb, peak_rss_mb


def group_step(method: str, scifact: str, steps: int) -> dict:
    """k = 8 comparisons per candidate: median training step of unirank's group batching ("group":
    16 candidates of one query encoded once, 64 comparisons from 8/2 random cycles) or of pair-wise
    encoding as TRL / sentence-transformers do it ("pairwise": 8 comparisons, each side encoded)."""
    import statistics

    import numpy as np
    import torch

    from unirank.adapters import RetrievalAdapter
    from unirank.adapters.base import Batch, pad_chunks
    from unirank.domains.retrieval.readers import read_beir
    from unirank.fitting import sample_cycle_pairs
    from unirank.losses import bradley_terry_loss
    from unirank.module import UnirankModule

    torch.manual_seed(0)
    beir = read_beir(scifact, "train")
    docs = list(beir.corpus.values())
    queries = [beir.queries[q] for q in sorted(beir.qrels)]
    module = UnirankModule(model="minilm", adapter=RetrievalAdapter(max_length=128), chunk_size=16)
    module.scorer.train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=2e-5)
    rng = np.random.default_rng(0)
    cycles = torch.as_tensor(sample_cycle_pairs(16, k=8, seed=0))

    def step(i: int) -> int:
        chosen = [docs[j] for j in rng.integers(0, len(docs), 16)]
        encoded = module.adapter.encode(module.tokenizer, [queries[i % len(queries)]] * 16, chosen)
        if method == "group":
            a, b = cycles[:, 0], cycles[:, 1]
        else:  # pair-wise: 8 comparisons, sides encoded separately: [a0..a7, b0..b7]
            a, b = torch.arange(8), torch.arange(8, 16)
        chunks, order = pad_chunks(encoded, module.tokenizer.pad_token_id, 16)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            scores = module.scorer.score_batch(Batch(chunks, order)).items
        loss = bradley_terry_loss(scores, a, b, torch.ones(len(a)), torch.ones(len(a)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return len(a)

    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        comparisons = step(i)
        if i:  # the first step warms up
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {
        "method": method,
        "comparisons_per_step": comparisons,
        "sequences_per_step": 16,
        "median_step_s": median,
        "comparisons_per_s": comparisons / median,
        "peak_rss_mb": peak_rss_mb(),
    }


def mine_unirank(beir: str, k: int, negatives: int, precision: str, cache: str) -> dict:
    """unirank's mining of a BEIR train split (TopK-PercPos 95 %, no extra positive pairs): wall
    time, recall and each query's negatives."""
    import sentence_transformers  # noqa: F401 - imported before the clock starts, as in mine_st

    from unirank.mining.pipeline import MiningConfig, mine_beir

    start = time.perf_counter()
    config = MiningConfig(
        k=k, negatives=negatives, relative_margin=0.95, all_positive_pairs=False, precision=precision,
        cache_dir=cache, show_progress_bar=False,
    )  # fmt: skip
    tables, summary = mine_beir(beir, "train", config)
    seconds = time.perf_counter() - start
    found: dict[str, list] = {}
    for group, doc, label in tables.items.select("group_id", "item_id", "label").iter_rows():
        if label == 0.0:
            found.setdefault(group, []).append(doc)
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "recall": summary[f"recall@{k}"],
        "timings": summary["timings_s"],
        "negatives": found,
    }


def mine_st(beir: str, k: int, negatives: int) -> dict:
    """sentence-transformers' `mine_hard_negatives` (FAISS, relative margin 0.05, the top
    negatives) on the one-positive queries of a BEIR train split: wall time and each query's negatives."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    from unirank.domains.retrieval.readers import read_beir
    from unirank.model.backbone import resolve_model_path

    start = time.perf_counter()
    data = read_beir(beir, "train")
    queries = [q for q in sorted(data.qrels) if sum(g > 0 for g in data.qrels[q].values()) == 1]
    rows = {
        "query": [data.queries[q] for q in queries],
        "positive": [data.corpus[next(d for d, g in data.qrels[q].items() if g > 0)] for q in queries],
    }
    model = SentenceTransformer(resolve_model_path("minilm"))
    mined = mine_hard_negatives(
        Dataset.from_dict(rows), model, corpus=list(data.corpus.values()), range_max=k, relative_margin=0.05,
        num_negatives=negatives, sampling_strategy="top", use_faiss=True, output_format="n-tuple", batch_size=64,
        verbose=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    text_to_id = {text: doc for doc, text in data.corpus.items()}
    query_id = {data.queries[q]: q for q in queries}
    found = {}
    for row in mined:  # rows without enough negatives are dropped by ST: match by the query text, not position
        names = (f"negative_{i}" for i in range(1, negatives + 1))
        found[query_id[row["query"]]] = [text_to_id[row[name]] for name in names if row.get(name)]
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "queries": len(queries),
        "rows_out": len(mined),
        "negatives": found,
    }


def index_copies(docs: str, queries: str, n: int, kind: str, out: str) -> dict:
    """An index over n rows copied with noise from real embeddings (docs.npy), searched top 100 for
    queries.npy in batches of 256; the hits are saved to `out` for recall against exact search."""
    import numpy as np

    from unirank.mining.search import build_index, search

    rng = np.random.default_rng(0)
    base, asked = np.load(docs), np.load(queries)
    copies = -(-n // len(base))
    rows = np.concatenate([base + 0.01 * rng.normal(size=base.shape).astype(np.float32) for _ in range(copies)])[:n]
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    before = peak_rss_mb()
    start = time.perf_counter()
    index = build_index(rows, kind)
    build = time.perf_counter() - start
    after_build = peak_rss_mb()
    start = time.perf_counter()
    _, hits = search(index, asked, 100, batch_size=256)
    seconds = time.perf_counter() - start
    np.save(out, hits)
    return {
        "kind": index.kind,
        "params": index.params,
        "build_s": build,
        "search_s": seconds,
        "rss_before_mb": before,
        "rss_after_build_mb": after_build,
        "peak_rss_mb": peak_rss_mb(),
    }


def index_clustered(n: int, kind: str, out: str) -> dict:
    """An index over n clustered unit vectors (dim 384: 2,000 random centres plus noise), searched
    top 100 for 1,000 noisy copies of its rows in batches of 256; the hits are saved to `out`."""
    import numpy as np

    from unirank.mining.search import build_index, search

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2000, 384)).astype(np.float32)
    docs = centres[rng.integers(0, 2000, n)] + 0.5 * rng.normal(size=(n, 384)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = docs[rng.choice(n, 1000, replace=False)] + 0.05 * rng.normal(size=(1000, 384)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    data_mb = peak_rss_mb()
    start = time.perf_counter()
    index = build_index(docs, kind)
    build = time.perf_counter() - start
    start = time.perf_counter()
    _, hits = search(index, queries, 100, batch_size=256)
    seconds = time.perf_counter() - start
    np.save(out, hits)
    return {
        "n": n,
        "kind": kind,
        "params": index.params,
        "build_s": build,
        "search_s": seconds,
        "rss_after_data_mb": data_mb,
        "peak_rss_mb": peak_rss_mb(),
    }


def fit_drawn(link: str, n: int, m: int, seed: int, outcomes: str) -> dict:
    """The Thurstone or Bradley-Terry fit (`link`) of m hard comparisons between random pairs of n
    items, outcomes drawn from the `outcomes` model ("thurstone" or "bradley-terry") on N(0, 1)
    scores; the memory before the fit is the data's."""
    import numpy as np
    from scipy.special import expit, ndtr

    from unirank.fitting import fit_bradley_terry, fit_thurstone

    rng = np.random.default_rng(seed)
    true = rng.standard_normal(n)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    won = rng.random(m) < {"thurstone": ndtr, "bradley-terry": expit}[outcomes](true[a] - true[b])
    winners, losers = np.where(won, a, b), np.where(won, b, a)
    del a, b, won
    data_mb = peak_rss_mb()
    fit = {"thurstone": fit_thurstone, "bradley-terry": fit_bradley_terry}[link]
    start = time.perf_counter()
    result = fit(winners, losers, n_items=n)
    seconds = time.perf_counter() - start
    return {
        "comparisons": m,
        "items": n,
        "seconds": seconds,
        "converged": result.converged,
        "newton_iterations": result.iterations,
        "cg_iterations": result.cg_iterations,
        "rss_before_fit_mb": data_mb,
        "peak_rss_mb": peak_rss_mb(),
    }


def data_path(path: str, mapped: bool, cache: str, batches: int) -> dict:
    """The training data module over a tables folder (item text in memory, or memory-mapped), with
    the MiniLM tokenizer and a 128-token retrieval adapter: setup time, then `batches` training
    batches of 8 groups; peak and anonymous RSS at the end."""
    from transformers import AutoTokenizer

    from unirank.adapters import RetrievalAdapter
    from unirank.data.datamodule import UnirankDataModule
    from unirank.data.sources import TablesDir
    from unirank.model.backbone import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("minilm"))
    start = time.perf_counter()
    data = UnirankDataModule(TablesDir(path, memory_map=mapped, cache_dir=cache), batch_groups=8)
    data.attach(tokenizer, RetrievalAdapter(max_length=128))
    data.setup("fit")
    setup_s = time.perf_counter() - start
    start = time.perf_counter()
    for i, _ in enumerate(data.train_dataloader()):
        if i + 1 >= batches:
            break
    return {
        "setup_s": setup_s,
        "batches_per_s": batches / (time.perf_counter() - start),
        "peak_rss_mb": peak_rss_mb(),
        "anon_rss_mb": anonymous_rss_mb(),
    }


RUNS = {
    f.__name__: f
    for f in (
        group_step,
        mine_unirank,
        mine_st,
        index_copies,
        index_clustered,
        fit_drawn,
        data_path,
    )
}


def main(argv: list[str]) -> None:
    """NAME --option value ...: each value converted by the type its parameter is annotated with."""
    run = RUNS[argv[0]]
    parameters = inspect.signature(run, eval_str=True).parameters
    pairs = dict(zip(argv[1::2], argv[2::2]))
    kwargs = {}
    for option, text in pairs.items():
        name = option.removeprefix("--")
        kind = parameters[name].annotation
        kwargs[name] = text == "True" if kind is bool else kind(text)
    print(json.dumps(run(**kwargs)))


if __name__ == "__main__":
    main(sys.argv[1:])
