"""Domains: what changes between rerankers, reward models and process reward models, each in one place.

A domain is a `Domain`: its name (recorded in unirank.json), its adapter (how a (context,
candidate) becomes model input), and how `unirank evaluate` measures a model on its tables and
prints the summary. Its readers, data sources and decisions live in its own package
(`unirank.domains.<name>`). The built-in domains are `retrieval`, `chat` and `process`. A domain
defined elsewhere registers itself (`register(MyDomain())`), or the package that defines it
declares it as an entry point of the group `unirank.domains` (`name = "package.module:DOMAIN"`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from unirank.adapters.base import Adapter

BUILT_IN = {
    "retrieval": "unirank.domains.retrieval.domain",
    "chat": "unirank.domains.chat.domain",
    "process": "unirank.domains.process.domain",
}
ENTRY_POINTS = "unirank.domains"


@dataclass(frozen=True)
class EvaluationOptions:
    """thresholds: where precision and recall of "probability > t" are read; folder: where the
    tables came from (a mined folder keeps its split's qrels.tsv); qrels: judgments given directly."""

    thresholds: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
    folder: Path | None = None
    qrels: dict | None = None


class Domain(ABC):
    """name: as `Adapter.domain` and unirank.json record it; adapter: the domain's adapter class;
    reliability_title: the title of `unirank evaluate`'s reliability diagram."""

    name: str
    adapter: type[Adapter]
    reliability_title: str = "σ(score) vs label"

    @abstractmethod
    def evaluate(self, models: dict, tables, options: EvaluationOptions) -> dict:
        """A report of `models` ({name: `unirank.model.Model`}) on `tables`: {"domain", "systems":
        {name: metrics}, ...}; a system's `_curve` (probabilities, labels) is drawn, then dropped."""

    @abstractmethod
    def summary_lines(self, report: dict) -> list[str]:
        """The domain's own lines of the printed summary (the shared lines follow them)."""


_registered: dict[str, Domain] = {}


def register(domain: Domain) -> Domain:
    """Make `domain` known by its name (models of that domain then load, score and evaluate)."""
    if not (isinstance(getattr(domain, "adapter", None), type) and issubclass(domain.adapter, Adapter)):
        raise TypeError(f"{type(domain).__name__}: a domain's `adapter` must be an Adapter subclass")
    _registered[domain.name] = domain
    return domain


def get(name: str) -> Domain:
    """The domain of that name: registered, built in, or declared by an installed package's entry point."""
    if name in _registered:
        return _registered[name]
    if name in BUILT_IN:
        return register(import_module(BUILT_IN[name]).DOMAIN)
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINTS, name=name):
        return register(entry.load())
    known = sorted({*BUILT_IN, *_registered})
    raise ValueError(
        f"unknown domain {name!r} (known: {', '.join(known)}); a domain defined elsewhere must be registered "
        f"(unirank.domains.register) or declared as a {ENTRY_POINTS!r} entry point"
    )


def adapter_class(name: str, domain: str) -> type[Adapter]:
    """The adapter class a model records (`name`, its class name) for its `domain`."""
    adapter = get(domain).adapter
    if adapter.__name__ != name:
        raise ValueError(f"the {domain!r} domain's adapter is {adapter.__name__}, not {name!r}")
    return adapter
