"""Reading a data set's items with a model: logits, and where the model has a head posterior or a
novelty reference, the head's inputs and the pooled states from the same pass."""

from __future__ import annotations

import numpy as np

from unirank.data.tables import Tables


def score_items(predictor, tables: Tables) -> np.ndarray:
    """The model's logit for every row of tables.items, each (context, item) scored once."""
    return predictor.score_texts(tables.item_contexts(), tables.items["text"].to_list())


def read_items(predictor, tables: Tables) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(logits, the head's inputs, the pooled states) of every row of tables.items from one pass;
    the last two only where the model has a head posterior or a novelty reference to read them."""
    if getattr(predictor, "posterior", None) is None and getattr(predictor, "novelty", None) is None:
        return score_items(predictor, tables), None, None
    return predictor.score_texts_with_features(tables.item_contexts(), tables.items["text"].to_list(), states=True)
