"""Domain adapters: each owns formatting, truncation and tokenisation of (context, candidate) into
one model input. The base class is here; each domain's adapter lives with its domain
(`unirank.domains.<domain>.adapter`) and is named here for recipes and `unirank.json`."""

from unirank.adapters.base import Adapter, Encoded, pad_chunks
from unirank.domains.chat.adapter import ChatAdapter
from unirank.domains.process.adapter import ProcessAdapter
from unirank.domains.retrieval.adapter import RetrievalAdapter

__all__ = ["Adapter", "ChatAdapter", "Encoded", "ProcessAdapter", "RetrievalAdapter", "pad_chunks"]
