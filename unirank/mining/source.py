"""Moved in 0.2: `MinedBeir` is `unirank.domains.retrieval.source.MinedBeir`; this name still
resolves (a recipe's old class_path included), with a warning, for one release."""


def __getattr__(name: str):
    if name == "MinedBeir":
        import warnings

        from unirank.domains.retrieval.source import MinedBeir

        warnings.warn(
            "unirank.mining.source.MinedBeir moved to unirank.domains.retrieval.source", FutureWarning, stacklevel=2
        )
        return MinedBeir
    raise AttributeError(f"module 'unirank.mining.source' has no attribute {name!r}")
