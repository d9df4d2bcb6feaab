"""Step 1 of mining: embed texts with a sentence-transformers bi-encoder, cached on disk.

The cache key hashes the model's resolved path, the prompt and every text in order, so a changed
corpus or model never reuses stale vectors, and a second run of the same mining loads the vectors
instead of re-encoding them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unirank.atomic import atomic_path
from unirank.models import resolve_model_path


@dataclass
class Encoder:
    """A bi-encoder: `path` is the resolved model location (the cache key); the SentenceTransformer
    loads on first use, so a run served from the cache never loads it."""

    path: str
    device: str | None = None
    _model: object = None

    @classmethod
    def load(cls, name_or_path: str = "minilm", device: str | None = None) -> Encoder:
        return cls(path=resolve_model_path(name_or_path), device=device)

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.path, device=self.device)
        return self._model

    def encode(
        self,
        texts: list[str],
        *,
        role: str = "document",
        batch_size: int = 64,
        cache_dir: str | Path | None = None,
        show_progress_bar: bool = True,
    ) -> np.ndarray:
        """Normalised float32 embeddings, one row per text.

        role: "query" or "document"; the model's prompt of that name is used when it has one.
        cache_dir: where vectors are cached; None disables the cache.
        """
        cache = None
        if cache_dir is not None:
            digest = hashlib.sha256(f"{self.path}\x1e{role}\x1e".encode())
            for text in texts:
                digest.update(text.encode("utf-8") + b"\x1f")
            cache = Path(cache_dir) / f"{role}-{digest.hexdigest()[:24]}.npy"
            if cache.exists():
                return np.load(cache)
        prompt_name = role if role in (getattr(self.model, "prompts", None) or {}) else None
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            prompt_name=prompt_name,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress_bar,
        ).astype(np.float32)
        if cache is not None:
            with atomic_path(cache) as tmp, open(tmp, "wb") as handle:
                np.save(handle, vectors)
        return vectors
