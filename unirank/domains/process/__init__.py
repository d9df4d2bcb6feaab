"""Process reward models: the adapter (`adapter.py`), step-solution readers (`readers.py`), the data
source (`source.py`), step evaluation (`evaluation.py`), chain pruning (`pruning.py`) and the
domain (`domain.py`)."""
