"""unirank: train rerankers and reward models with one trainer, calibrated by a Thurstone fit."""

__version__ = "0.1.0"
