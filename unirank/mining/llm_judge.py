"""LLM judges over an OpenAI-compatible endpoint (vLLM, SGLang, Ollama, or a hosted API): each pair of
a mined folder is shown in both orders (which order goes first is random and recorded), to several
judges or samples, and the verdicts become comparisons: p = the share of votes for item_a (a tie a
half), weight = the number of valid votes, as `judge import` reads external judges.

A verdict is parsed, never guessed: an answer that is not one of A, B or T (a refusal, a ramble,
malformed JSON, an HTML page, empty choices) is recorded and counted, gives no vote, and is asked
again by the next run. A run where fewer than half the answers are verdicts (a broken endpoint, the
wrong model) ends with the counts and labels nothing. Requests are retried with exponential
backoff on timeouts, 429 (honouring Retry-After) and 5xx; a rate limit spaces them. Every answer is
appended to a progress file as it comes (JSONL, flushed), so a killed run resumes asking only for
what is missing. A redirect is never followed (the request, and its API key, stay with the
endpoint named), and each request has a total deadline of `timeout_s`, however slowly a reply trickles.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from unirank.data.tables import TableError, Tables

SYSTEM = (
    "You compare two responses to the same request and say which is better: more helpful, correct "
    "and relevant. Answer with one letter only: A if Response A is better, B if Response B is better, "
    "T if they are equally good."
)
VERDICTS = {"A": "a", "B": "b", "T": "tie"}


class JudgeError(RuntimeError):
    """The endpoint could not be reached or kept failing after every retry."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx answer stays an error: urllib would resend the request, headers and key included, to
    wherever the Location points (another origin, as a GET)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _read_before(response, deadline: float) -> bytes:
    """The whole body, or TimeoutError once the deadline has passed, checked as bytes arrive (the
    socket's timeout alone restarts with every byte of a reply that trickles; a silent connection
    still times out there)."""
    parts = []
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("the reply did not arrive within the deadline")
        part = response.read1(65536)
        if not part:
            return b"".join(parts)
        parts.append(part)


@dataclass
class Endpoint:
    """An OpenAI-compatible chat-completions endpoint (base URL ending before /chat/completions)."""

    url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 60.0
    retries: int = 5
    requests_per_second: float = 5.0
    temperature: float = 1.0
    _last: float = field(default=0.0, repr=False)
    tokens: int = 0

    def __post_init__(self) -> None:
        if not self.requests_per_second > 0 or not self.timeout_s > 0 or self.retries < 0:
            raise ValueError(
                f"rate ({self.requests_per_second}) and timeout ({self.timeout_s}) must be > 0 and retries "
                f"({self.retries}) ≥ 0"
            )

    def ask(self, prompt: str) -> str:
        """The judge's answer text (retried; raises JudgeError when every attempt failed, and at
        once on a redirect or another 4xx)."""
        body = json.dumps({
            "model": self.model, "temperature": self.temperature, "max_tokens": 4,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
        }).encode()  # fmt: skip
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        problem = "no attempt"
        for attempt in range(self.retries + 1):
            wait = 1.0 / self.requests_per_second - (time.monotonic() - self._last)
            if wait > 0:
                time.sleep(wait)
            self._last = time.monotonic()
            request = urllib.request.Request(self.url.rstrip("/") + "/chat/completions", body, headers)
            deadline = time.monotonic() + self.timeout_s
            try:
                with _OPENER.open(request, timeout=self.timeout_s) as response:
                    reply = json.loads(_read_before(response, deadline).decode("utf-8"))
                self.tokens += int((reply.get("usage") or {}).get("total_tokens") or 0)
                return str(reply["choices"][0]["message"]["content"])
            except urllib.error.HTTPError as error:
                problem = f"HTTP {error.code}"
                if 300 <= error.code < 400:
                    raise JudgeError(
                        f"{self.url}: HTTP {error.code}, a redirect to {error.headers.get('Location')!r}: not followed "
                        "(the request and its API key go to the endpoint named only); give the final URL as --endpoint"
                    ) from None
                if error.code != 429 and error.code < 500:
                    raise JudgeError(f"{self.url}: {problem} ({error.read()[:200]!r})") from None
                delay = float(error.headers.get("Retry-After") or 0) or 2.0**attempt * 0.5
            except (urllib.error.URLError, TimeoutError, OSError) as error:
                problem, delay = f"{type(error).__name__}: {getattr(error, 'reason', error)}", 2.0**attempt * 0.5
            except (ValueError, KeyError, IndexError, TypeError) as error:
                return f"<malformed reply: {type(error).__name__}>"  # answered, but not as the format says
            time.sleep(min(delay, 30.0))
        raise JudgeError(f"{self.url}: no answer after {self.retries + 1} attempts (last: {problem})")


def parse_verdict(answer: str) -> str | None:
    """ "a", "b" or "tie" for an answer that is one of A, B, T (brackets, quotes, a full stop or
    "Answer:" around it allowed); None for anything else (refusals and rambles are not guessed)."""
    text = answer.strip().strip("[]()\"'*. ").removeprefix("Answer:").strip().strip("[]()\"'*. ")
    return VERDICTS.get(text.upper()) if len(text) == 1 else None


def prompt_for(context: str, first: str, second: str) -> str:
    return f"Request:\n{context}\n\nResponse A:\n{first}\n\nResponse B:\n{second}\n\nWhich response is better?"


def cycle_pairs(tables: Tables, cycles: int, seed: int) -> list[tuple[str, str, str]]:
    """(group, item_a, item_b) of `cycles` random cycles through each group's items (every item
    compared with two neighbours per cycle, zELO's sparse sampling); a two-item group gives its one pair."""
    rng = np.random.default_rng(seed)
    pairs = set()
    for group, items in tables.items.group_by("group_id", maintain_order=True).agg("item_id").iter_rows():
        for _ in range(cycles):
            order = [items[i] for i in rng.permutation(len(items))]
            for i in range(len(order) if len(order) > 2 else len(order) - 1):
                a, b = order[i], order[(i + 1) % len(order)]
                pairs.add((group, *sorted((a, b))))
    return sorted(pairs)


def judge_pairs(
    tables: Tables, endpoint: Endpoint, progress: Path, judges: int = 3, cycles: int = 0, seed: int = 0,
    report=print,
) -> tuple[pl.DataFrame, dict]:  # fmt: skip
    """Judge every pair (the folder's comparisons, or `cycles` random cycles per group) `judges`
    times in each order; returns (comparisons, counts). Verdicts already in `progress` are reused;
    raises JudgeError where fewer than MIN_VERDICT_SHARE of the answers are verdicts."""
    from unirank.progress import ProgressLines

    contexts = dict(tables.groups.select("group_id", "context").iter_rows())
    texts = {(g, i): t for g, i, t in tables.items.select("group_id", "item_id", "text").iter_rows()}
    if cycles:
        pairs = cycle_pairs(tables, cycles, seed)
    else:
        pairs = sorted({(g, a, b) for g, a, b in tables.comparisons.select("group_id", "item_a", "item_b").iter_rows()})
    done = _answers(progress)
    rng = random.Random(seed)
    jobs = []
    for group, a, b in pairs:
        for judge in range(judges):
            orders = [(a, b), (b, a)]
            rng.shuffle(orders)  # which order is asked first: random, and recorded with each answer
            for rank, (first, second) in enumerate(orders):
                key = f"{group}\x1f{a}\x1f{b}\x1f{judge}\x1f{first}"
                jobs.append((key, group, a, b, judge, rank, first, second))
    todo = [job for job in jobs if job[0] not in done]
    lines = ProgressLines(len(todo), "judge llm", enabled=True)
    progress.parent.mkdir(parents=True, exist_ok=True)
    with open(progress, "a", encoding="utf-8") as handle:
        for count, (key, group, a, b, judge, rank, first, second) in enumerate(todo, start=1):
            answer = endpoint.ask(prompt_for(contexts[group], texts[(group, first)], texts[(group, second)]))
            verdict = parse_verdict(answer)
            row = {"key": key, "group_id": group, "item_a": a, "item_b": b, "judge": judge, "asked": rank,
                   "shown_first": first, "answer": answer[:200], "verdict": verdict}  # fmt: skip
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            done[key] = row
            lines.update(count, f"{endpoint.tokens:,} tokens")
    rows = [done[job[0]] for job in jobs]
    counts = {
        "pairs": len(pairs), "requests": len(rows), "asked_now": len(todo), "reused": len(rows) - len(todo),
        "unparsed": sum(r["verdict"] is None for r in rows), "tokens": endpoint.tokens,
    }  # fmt: skip
    report(f"judge llm: {counts['requests']} answers ({counts['reused']} from {progress}), "
           f"{counts['unparsed']} not a verdict (no vote), {counts['tokens']:,} tokens")  # fmt: skip
    if counts["requests"] and counts["requests"] - counts["unparsed"] < MIN_VERDICT_SHARE * counts["requests"]:
        examples = sorted({repr(r["answer"][:40]) for r in rows if r["verdict"] is None})[:3]
        raise JudgeError(
            f"only {counts['requests'] - counts['unparsed']} of {counts['requests']} answers were a verdict (A, B or T; "
            f"others: {', '.join(examples)}): check the endpoint and the model; nothing was labelled, and the next "
            "run asks again for every answer that was not a verdict"
        )
    return _comparisons(rows), counts


MIN_VERDICT_SHARE = 0.5
"""Below this share of verdicts among a run's answers, the judge, not the pairs, is what failed."""


def _answers(progress: Path) -> dict[str, dict]:
    """The verdicts a run already has (a torn line, from a kill mid-write, is dropped; an answer that
    was not a verdict is kept in the file but asked again); a line that is not one of this
    command's answers is a TableError naming the file and line."""
    answers = {}
    if progress.exists():
        for number, line in enumerate(progress.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(row, dict) or not {"key", "verdict", "shown_first", "item_a"} <= set(row):
                raise TableError(f"{progress}, line {number}: not an answer `unirank judge llm` wrote")
            if row["verdict"] is not None:
                answers[row["key"]] = row
    return answers


def _comparisons(rows: list[dict]) -> pl.DataFrame:
    """p = the share of valid votes for item_a (a verdict for the response shown first is a vote for
    that item), weight = their number; pairs without a valid vote are left out."""
    from unirank.mining.judges import comparisons_from_votes

    votes: dict[tuple[str, str, str], list[float]] = {}
    for row in rows:
        if row["verdict"] is None:
            continue
        first_wins = {"a": 1.0, "b": 0.0, "tie": 0.5}[row["verdict"]]
        for_a = first_wins if row["shown_first"] == row["item_a"] else 1.0 - first_wins
        votes.setdefault((row["group_id"], row["item_a"], row["item_b"]), []).append(for_a)
    return comparisons_from_votes(votes, "llm-judge")
