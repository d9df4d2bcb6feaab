"""Step 2 of mining: a FAISS inner-product index over document vectors, searched in query batches.

Exact `IndexFlatIP` below `exact_limit` vectors; above it HNSW (no training, good recall) unless
IVF is asked for. With faiss-gpu and a GPU, flat and IVF indexes move to the GPU(s). Search runs
in batches of queries, so memory stays flat as the corpus grows: no query × corpus score matrix
is ever formed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

IndexKind = Literal["auto", "flat", "hnsw", "ivf"]


@dataclass(frozen=True)
class SearchIndex:
    """A built index and the parameters it was built with (reported in the mining summary)."""

    index: object
    kind: str
    params: dict


def build_index(vectors: np.ndarray, kind: IndexKind = "auto", exact_limit: int = 100_000) -> SearchIndex:
    """Index normalised float32 vectors for inner-product (cosine) search."""
    import faiss

    n, dim = vectors.shape
    if kind == "auto":
        kind = "flat" if n <= exact_limit else "hnsw"
    if kind == "flat":
        index, params = faiss.IndexFlatIP(dim), {}
    elif kind == "hnsw":
        params = {"M": 32, "efConstruction": 80, "efSearch": 256}
        index = faiss.IndexHNSWFlat(dim, params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params["efConstruction"]
        index.hnsw.efSearch = params["efSearch"]
    elif kind == "ivf":
        nlist = max(1, int(4 * np.sqrt(n)))
        params = {"nlist": nlist, "nprobe": max(1, nlist // 16)}
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = params["nprobe"]
    else:
        raise ValueError(f"unknown index kind {kind!r}: use auto, flat, hnsw or ivf")
    index.add(vectors)
    if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0 and kind in ("flat", "ivf"):
        index = faiss.index_cpu_to_all_gpus(index)  # faiss-gpu installed and a GPU present
        params = {**params, "gpus": faiss.get_num_gpus()}
    return SearchIndex(index=index, kind=kind, params=params)


def search(index: SearchIndex, queries: np.ndarray, k: int, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, row indices) per query, searched `batch_size` queries at a time; -1 marks no hit."""
    k = min(k, index.index.ntotal)
    scores = np.empty((len(queries), k), dtype=np.float32)
    rows = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), batch_size):
        chunk = slice(start, start + batch_size)
        scores[chunk], rows[chunk] = index.index.search(queries[chunk], k)
    return scores, rows
