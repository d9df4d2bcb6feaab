"""Retrieval: the adapter (`adapter.py`), BEIR and SMART readers (`readers.py`), the mined data
source (`source.py`), reranking evaluation (`evaluation.py`) and the domain (`domain.py`)."""
