"""LLM judges over an OpenAI-compatible endpoint, against a local server the test starts that speaks
the chat-completions wire format: verdicts in both orders become p and weight; a 429, a timeout,
malformed JSON and a refusal are retried or counted, never guessed; a run killed in the middle
resumes asking only for what is missing."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pytest

from unirank.cli import main
from unirank.domains.chat.source import Preferences
from unirank.mining.llm_judge import parse_verdict

from ..conftest import REPO


BROKEN = {
    "html": b"<html><body>502 Bad Gateway</body></html>",
    "letter": json.dumps({"choices": [{"message": {"content": "C"}}]}).encode(),
    "no choices": json.dumps({"choices": []}).encode(),
    "null content": json.dumps({"choices": [{"message": {"content": None}}]}).encode(),
}
"""Replies of a broken endpoint: 200 OK, and no verdict in them."""


class Judge(BaseHTTPRequestHandler):
    """Prefers the longer response; the n-th request misbehaves as `faults[n]` says."""

    faults: dict[int, str] = {}
    requests = 0
    redirect_to = ""

    def do_POST(self):
        type(self).requests += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        fault = self.faults.get(type(self).requests)
        if fault == "429":
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        if fault == "redirect":  # to another origin (`redirect_to`)
            self.send_response(302)
            self.send_header("Location", type(self).redirect_to + "/chat/completions")
            self.end_headers()
            return
        if fault == "trickle":  # a byte every 0.1 s: each read comes within the socket's timeout
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            try:
                for byte in b'{"choices": [{"message": {"content": "A"}}]}' * 4:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        if fault in BROKEN:
            self.send_response(200)
            self.send_header("Content-Type", "text/html" if fault == "html" else "application/json")
            self.end_headers()
            self.wfile.write(BROKEN[fault])
            return
        if fault == "slow":
            time.sleep(1.5)  # past the client's timeout: it retries
        prompt = body["messages"][-1]["content"]
        first = prompt.split("Response A:\n", 1)[1].split("\n\nResponse B:\n", 1)[0]
        second = prompt.split("\n\nResponse B:\n", 1)[1].rsplit("\n\nWhich response", 1)[0]
        answer = "A" if len(first) > len(second) else "B" if len(second) > len(first) else "T"
        answer = "I cannot judge this." if fault == "refuse" else answer
        reply = {"choices": [{"message": {"role": "assistant", "content": answer}}], "usage": {"total_tokens": 50}}
        payload = b"{not json" if fault == "malformed" else json.dumps(reply).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped waiting (the slow fault): it retries

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Judge.requests, Judge.faults = 0, {}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Judge)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


@pytest.fixture
def mined(tmp_path):
    tables = Preferences(str(REPO / "data/demo-preferences.jsonl")).load()
    keep = pl.col("group_id").is_in(tables.groups["group_id"].head(6).implode())
    type(tables)(tables.groups.filter(keep), tables.items.filter(keep), tables.comparisons.filter(keep)).write(
        tmp_path / "mined"
    )
    return tmp_path / "mined"


def judge_words(mined, server, out, *extra):
    return ["judge", "llm", "--tables", str(mined), "--endpoint", server, "--model", "judge", "--out", str(out),
            "--judges", "2", "--rate", "1000", "--timeout", "0.5", *extra]  # fmt: skip


def test_verdicts_in_both_orders_become_p_and_weight_faults_counted_not_guessed(mined, server, tmp_path, capsys):
    Judge.faults = {1: "429", 2: "slow", 5: "malformed", 6: "refuse"}
    main(judge_words(mined, server, tmp_path / "judged"))
    labelled = pl.read_parquet(tmp_path / "judged/comparisons.parquet")
    items = pl.read_parquet(tmp_path / "judged/items.parquet").select("group_id", "item_id", "text")
    longer_wins = labelled.join(
        items.rename({"item_id": "item_a", "text": "text_a"}), on=["group_id", "item_a"], maintain_order="left"
    ).join(items.rename({"item_id": "item_b", "text": "text_b"}), on=["group_id", "item_b"], maintain_order="left")
    difference = longer_wins["text_a"].str.len_chars().cast(int) - longer_wins["text_b"].str.len_chars().cast(int)
    expected = (difference.sign().cast(float) + 1.0) / 2.0  # the longer wins; equal lengths: a tie
    assert labelled.height == 6 and (longer_wins["p"] == expected).all()  # the same verdict in both orders
    assert sorted(labelled["weight"].to_list()) == [2.0, 4.0, 4.0, 4.0, 4.0, 4.0]  # the first pair: 2 gave no vote
    out = capsys.readouterr().out
    assert "24 answers (0 from" in out and "2 not a verdict (no vote)" in out
    assert Judge.requests == 26  # 24 answers, plus the 429 and the timed-out request retried


def test_a_killed_run_resumes_asking_only_for_what_is_missing(mined, server, tmp_path):
    Judge.faults = {n: "slow" for n in range(8, 30)}  # slow enough to be killed in the middle
    progress = tmp_path / "progress.jsonl"
    words = judge_words(mined, server, tmp_path / "judged", "--progress", str(progress), "--timeout", "5")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    child = subprocess.Popen([sys.executable, "-m", "unirank.cli", *words], env=env, cwd=REPO)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not progress.exists() or len(progress.read_text().splitlines()) < 7):
        time.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    child.wait()
    answered = len(progress.read_text().splitlines())
    assert 7 <= answered < 24 and not (tmp_path / "judged").exists()
    Judge.faults, before = {}, Judge.requests
    main(words)
    assert Judge.requests - before == 24 - answered  # only what was missing was asked
    assert pl.read_parquet(tmp_path / "judged/comparisons.parquet")["weight"].sum() == 24


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [("A", "a"), (" b.", "b"), ("[[A]]", "a"), ("Answer: T", "tie"), ("I'd say A", None), ("", None), ("AB", None)],
)
def test_a_verdict_is_read_only_when_it_is_one(answer, verdict):
    assert parse_verdict(answer) == verdict


def test_cycles_compare_each_item_with_two_neighbours():
    from unirank.data.tables import Tables
    from unirank.mining.llm_judge import cycle_pairs

    items = pl.DataFrame({"group_id": ["g"] * 4 + ["h"] * 2, "item_id": ["a", "b", "c", "d", "x", "y"],
                          "text": ["t"] * 6})  # fmt: skip
    tables = Tables(pl.DataFrame({"group_id": ["g", "h"], "context": ["q", "r"]}), items, pl.DataFrame())
    pairs = cycle_pairs(tables, cycles=1, seed=0)
    in_g = [p for p in pairs if p[0] == "g"]
    assert len(in_g) == 4 and all(sum(item in p[1:] for p in in_g) == 2 for item in "abcd")
    assert [p for p in pairs if p[0] == "h"] == [("h", "x", "y")]


def test_a_progress_path_that_cannot_be_written_is_refused_before_any_request(mined, server, tmp_path):
    (tmp_path / "a-folder").mkdir()
    with pytest.raises(SystemExit, match=r"--progress .*a-folder: is a folder"):
        main(judge_words(mined, server, tmp_path / "judged", "--progress", str(tmp_path / "a-folder")))
    assert Judge.requests == 0 and not (tmp_path / "judged").exists()


def test_a_progress_file_of_something_else_is_named_not_read(mined, server, tmp_path):
    progress = tmp_path / "progress.jsonl"
    progress.write_text('{"pair_id": "x", "preferred": "a"}\n')
    with pytest.raises(SystemExit, match=r"progress\.jsonl, line 1: not an answer `unirank judge llm` wrote"):
        main(judge_words(mined, server, tmp_path / "judged", "--progress", str(progress)))
    assert Judge.requests == 0 and not (tmp_path / "judged").exists()


class Elsewhere(BaseHTTPRequestHandler):
    """Another origin: records every request that reaches it, with its Authorization header."""

    seen: list = []

    def do_GET(self):
        type(self).seen.append((self.command, self.headers.get("Authorization")))
        self.send_response(404)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args):
        pass


def test_a_redirect_to_another_origin_is_not_followed_and_the_key_stays_home(mined, server, tmp_path, monkeypatch):
    other = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    Elsewhere.seen, Judge.redirect_to = [], f"http://127.0.0.1:{other.server_address[1]}/v1"
    Judge.faults = {1: "redirect"}
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    try:
        with pytest.raises(SystemExit, match=r"HTTP 302, a redirect to .*not followed"):
            main(judge_words(mined, server, tmp_path / "judged"))
    finally:
        other.shutdown()
    assert Elsewhere.seen == [] and not (tmp_path / "judged").exists()


def test_a_reply_that_trickles_in_is_given_up_at_the_deadline(mined, server, tmp_path, capsys):
    """A byte every 0.1 s never trips the 0.5 s socket timeout; the deadline ends each attempt."""
    Judge.faults = {n: "trickle" for n in range(1, 4)}
    started = time.monotonic()
    with pytest.raises(SystemExit, match="no answer after 3 attempts .*TimeoutError"):
        main(judge_words(mined, server, tmp_path / "judged", "--retries", "2"))
    assert time.monotonic() - started < 3 * (0.5 + 0.2) + 4  # three attempts of ~0.5 s and their backoff


def test_a_rate_of_zero_is_refused_in_a_sentence(mined, server, tmp_path):
    with pytest.raises(SystemExit, match=r"rate \(0.0\) and timeout \(0.5\) must be > 0"):
        main([*judge_words(mined, server, tmp_path / "judged"), "--rate", "0"])


@pytest.mark.parametrize("fault", sorted(BROKEN))
def test_a_broken_endpoint_labels_nothing_and_its_replies_are_asked_again(fault, mined, server, tmp_path):
    """Every reply broken: exit non-zero with the counts, no labelled folder; once the endpoint
    answers, the rerun asks again for every one of them (none was cached as an answer)."""
    Judge.faults = {n: fault for n in range(1, 25)}
    progress = tmp_path / "progress.jsonl"
    words = judge_words(mined, server, tmp_path / "judged", "--progress", str(progress))
    with pytest.raises(SystemExit, match=r"only 0 of 24 answers were a verdict .*nothing was labelled"):
        main(words)
    assert not (tmp_path / "judged").exists() and len(progress.read_text().splitlines()) == 24
    Judge.faults, Judge.requests = {}, 0
    main(words)
    assert Judge.requests == 24 and pl.read_parquet(tmp_path / "judged/comparisons.parquet").height == 6
