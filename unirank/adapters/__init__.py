"""Domain adapters: the only thing that changes between domains. Each owns formatting,
truncation and tokenisation of (context, candidate) into one model input."""

from unirank.adapters.base import Adapter, Encoded, pad_chunks
from unirank.adapters.chat import ChatAdapter
from unirank.adapters.process import ProcessAdapter
from unirank.adapters.retrieval import RetrievalAdapter

__all__ = ["Adapter", "ChatAdapter", "Encoded", "ProcessAdapter", "RetrievalAdapter", "pad_chunks"]
