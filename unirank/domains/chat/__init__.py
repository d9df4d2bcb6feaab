"""Chat reward models: the adapter (`adapter.py`), preference readers (`readers.py`), the data
source (`source.py`), pairwise evaluation (`evaluation.py`) and the domain (`domain.py`)."""
