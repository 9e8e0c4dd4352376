"""OpenAIBackend against a real local HTTP stub with scriptable faults."""
from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from cai_core.backends.base import GenerationParams, LogprobsUnsupported, Request, chat
from cai_core.backends.openai_http import OpenAIBackend

FAKE_KEY = "sk-test-SECRET-7f3a9c"
KEY_ENV = "CAI_TEST_OPENAI_KEY"


class Stub:
    """Scripted server state.  ``script[prompt]`` is a queue of actions consumed by the
    requests whose last user message is ``prompt``; once empty, the stub echoes."""

    def __init__(self) -> None:
        self.script: dict[str, deque] = defaultdict(deque)
        self.calls: list[dict[str, Any]] = []
        self.delay = 0.0
        self.lock = threading.Lock()
        # How an unscripted log-prob request is answered: None (echo, no logprobs), or like a
        # model behind a server that "honours" continue_final_message (vLLM), "ignores" it
        # (llama.cpp, most others: the reply starts anew, "The answer is ...") or "rejects"
        # it with HTTP 400 (OpenAI refuses unknown arguments).
        self.server: str | None = None

    def on(self, prompt: str, *actions: tuple) -> None:
        self.script[prompt].extend(actions)

    def calls_for(self, prompt: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["prompt"] == prompt]


def _top(top: dict[str, float]) -> dict[str, Any]:
    tops = [{"token": t, "logprob": v} for t, v in top.items()]
    return {"content": [{"token": tops[0]["token"], "logprob": tops[0]["logprob"], "top_logprobs": tops}]}


PREFIXED = {"A": -0.3, "B": -1.4, " A": -4.0, "C": -6.0}
"""First token after "The answer is: (" (the prefix was continued)."""
FRESH = {"The": -1.19, "A": -2.03, "(": -3.25, "You": -3.75}
"""First token of a fresh reply to the judge's question ("The answer is (A)", "A is better"): what
llama-cpp-python 0.3.16 with SmolLM2 gave after an ignored forced "The answer is: (". "A" is
there but the prefix was not continued."""
LETTER = {"A": -0.5, " B": -1.3, "(A": -2.5, "B": -3.0, "a": -4.0, "The": -4.5}
"""First token when the question ends with "Answer with the letter of your choice only (A or B)"."""
YES_NO = {"Yes": -0.4, " No": -1.2, "The": -3.0}


def _simulated(server: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """What a small chat model behind ``server`` (see ``Stub.server``) answers first."""
    forced = bool(body.get("continue_final_message")) and body["messages"][-1]["role"] == "assistant"
    if server == "rejects" and "continue_final_message" in body:
        return 400, {"error": {"message": "Unrecognized request argument supplied: continue_final_message"}}
    if forced and server == "honours":
        return 200, _ok("A", logprobs=_top(PREFIXED))
    last = body["messages"][-1]
    if last["role"] == "user" and last["content"].endswith("(A or B)."):
        return 200, _ok("A", logprobs=_top(LETTER))
    if last["role"] == "user" and last["content"].endswith("Yes or No only."):
        return 200, _ok("Yes", logprobs=_top(YES_NO))
    return 200, _ok("The", logprobs=_top(FRESH))


def _ok(text: str, finish: str | None = "stop", **extra: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish, **extra}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3}}


class Handler(BaseHTTPRequestHandler):
    stub: Stub

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None,
              length: int | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        stub = self.stub
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        with stub.lock:
            stub.calls.append({"path": self.path, "headers": dict(self.headers),
                               "body": body, "prompt": prompt})
            queue = stub.script.get(prompt)
            action = queue.popleft() if queue else ("echo",)
        if self.path != "/v1/chat/completions":
            return self._send(404, b'{"error": "not found"}')
        time.sleep(stub.delay)
        kind, *args = action
        try:
            if kind == "echo" and stub.server and body.get("logprobs"):
                code, answer = _simulated(stub.server, body)
                self._send(code, json.dumps(answer).encode())
            elif kind == "echo":
                self._send(200, json.dumps(_ok(f"echo:{prompt}")).encode())
            elif kind == "json":
                self._send(200, json.dumps(args[0]).encode())
            elif kind == "status":
                self._send(args[0], b'{"error": "boom"}', args[1] if len(args) > 1 else None)
            elif kind == "raw":
                self._send(200, args[0])
            elif kind == "truncated":
                self._send(200, b'{"choices": [', length=500)
            elif kind == "sleep":
                time.sleep(args[0])
                self._send(200, json.dumps(_ok("late")).encode())
        except OSError:  # the client gave up (timeout) and closed the socket
            pass


@pytest.fixture
def stub() -> Iterator[tuple[Stub, str]]:
    state = Stub()
    handler = type("BoundHandler", (Handler,), {"stub": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy from the environment would swallow requests to the local stub.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv(KEY_ENV, raising=False)


_open: list[OpenAIBackend] = []


@pytest.fixture(autouse=True)
def _close_backends() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def make(url: str, **kw: Any) -> OpenAIBackend:
    kw.setdefault("backoff", 0.01)
    kw.setdefault("max_backoff", 0.05)
    kw.setdefault("timeout", 5.0)
    backend = OpenAIBackend(url, "tiny-model", api_key_env=KEY_ENV, **kw)
    _open.append(backend)
    return backend


def req(prompt: str, continuation: str = "", **params: Any) -> Request:
    return Request(chat(("system", "be brief"), ("user", prompt)),
                   GenerationParams(**params), continuation)


# -- happy path ------------------------------------------------------------------------


def test_generate_order_body_and_auth_header(stub, monkeypatch) -> None:
    state, url = stub
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    prompts = [f"p{i}" for i in range(6)]
    params = dict(max_new_tokens=17, temperature=0.7, top_p=0.9, seed=42, stop=("\n\n",))
    with make(url + "/") as backend:  # trailing slash must not double up
        out = backend.generate([req(p, **params) for p in prompts])
    assert [c.text for c in out] == [f"echo:{p}" for p in prompts]
    assert all(c.finish_reason == "stop" and c.error is None for c in out)
    assert out[0].prompt_tokens == 7 and out[0].completion_tokens == 3
    assert len(state.calls) == 6
    call = state.calls_for("p3")[0]
    assert call["path"] == "/v1/chat/completions"
    assert call["body"] == {
        "model": "tiny-model",
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": "p3"}],
        "max_tokens": 17, "temperature": 0.7, "top_p": 0.9, "seed": 42, "stop": ["\n\n"],
    }
    assert call["headers"]["Authorization"] == f"Bearer {FAKE_KEY}"


def test_no_auth_header_and_optional_fields_omitted_when_unset(stub) -> None:
    state, url = stub
    with make(url) as backend:
        (c,) = backend.generate([req("hi")])
    assert c.text == "echo:hi"
    call = state.calls[0]
    assert not any(k.lower() == "authorization" for k in call["headers"])
    assert "seed" not in call["body"] and "stop" not in call["body"]
    assert "continue_final_message" not in call["body"]


def test_empty_batch() -> None:
    assert make("http://127.0.0.1:9/v1").generate([]) == []


def test_concurrency(stub) -> None:
    state, url = stub
    state.delay = 0.3
    prompts = [f"c{i}" for i in range(8)]
    with make(url, concurrency=4) as backend:
        t0 = time.monotonic()
        out = backend.generate([req(p) for p in prompts])
        elapsed = time.monotonic() - t0
    assert [c.text for c in out] == [f"echo:{p}" for p in prompts]
    assert elapsed < 1.5, elapsed  # serial would be 2.4 s; 4-wide is about 0.6 s


# -- faults ----------------------------------------------------------------------------


def test_500_then_success_is_retried(stub) -> None:
    state, url = stub
    state.on("x", ("status", 500))
    (c,) = make(url).generate([req("x")])
    assert c.ok and c.text == "echo:x"
    assert len(state.calls_for("x")) == 2


def test_429_with_retry_after_then_success(stub) -> None:
    state, url = stub
    state.on("x", ("status", 429, {"Retry-After": "0"}))
    t0 = time.monotonic()
    (c,) = make(url, backoff=5.0, max_backoff=5.0).generate([req("x")])
    assert c.ok and c.text == "echo:x"
    assert len(state.calls_for("x")) == 2
    assert time.monotonic() - t0 < 2.0  # Retry-After: 0 beat the 5 s back-off


def test_persistent_500_fails_only_that_item(stub) -> None:
    state, url = stub
    state.on("bad", *[("status", 500)] * 20)
    out = make(url, max_retries=3).generate([req("a"), req("bad"), req("b")])
    assert [c.text for c in out] == ["echo:a", "", "echo:b"]
    assert [c.finish_reason for c in out] == ["stop", "error", "stop"]
    assert out[1].error == "HTTP 500 after 4 attempts"
    assert len(state.calls_for("bad")) == 4


def test_timeout_gives_error_in_bounded_time(stub) -> None:
    state, url = stub
    state.on("slow", ("sleep", 1.0), ("sleep", 1.0))
    t0 = time.monotonic()
    (c,) = make(url, timeout=0.2, max_retries=1).generate([req("slow")])
    elapsed = time.monotonic() - t0
    assert c.finish_reason == "error" and "timeout" in c.error and "2 attempts" in c.error
    assert len(state.calls_for("slow")) == 2
    assert elapsed < 0.9, elapsed


@pytest.mark.parametrize("bad", [
    ("raw", b"this is not json"),
    ("truncated",),
    ("json", {"object": "error"}),
    ("json", {"choices": [{"message": {"role": "assistant"}}]}),
])
def test_malformed_response_then_success(stub, bad) -> None:
    state, url = stub
    state.on("x", bad)
    (c,) = make(url).generate([req("x")])
    assert c.ok and c.text == "echo:x"
    assert len(state.calls_for("x")) == 2


def test_persistent_malformed_reports_reason(stub) -> None:
    state, url = stub
    state.on("x", *[("json", {"object": "error"})] * 3)
    (c,) = make(url, max_retries=2).generate([req("x")])
    assert c.finish_reason == "error" and "malformed" in c.error and "3 attempts" in c.error


def test_400_is_not_retried(stub) -> None:
    state, url = stub
    state.on("x", ("status", 400), ("status", 400))
    (c,) = make(url).generate([req("x")])
    assert c.finish_reason == "error" and "400" in c.error
    assert len(state.calls_for("x")) == 1


def test_connection_refused_gives_error() -> None:
    with socket.socket() as s:  # grab a free port, then leave it closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (c,) = make(f"http://127.0.0.1:{port}/v1", max_retries=1).generate([req("x")])
    assert c.finish_reason == "error" and c.error.startswith("connection error")


# -- text post-processing --------------------------------------------------------------


def test_stop_strings_cut_client_side(stub) -> None:
    state, url = stub
    state.on("x", ("json", _ok("Yes.\nUSER: more", finish="length")))
    (c,) = make(url).generate([req("x", stop=("USER:", "\n"))])
    assert c.text == "Yes." and c.finish_reason == "stop"


def test_at_most_four_stops_sent(stub) -> None:
    state, url = stub
    stops = ("a1", "a2", "a3", "a4", "ZZ")
    state.on("x", ("json", _ok("hello ZZ world")))
    (c,) = make(url).generate([req("x", stop=stops)])
    assert state.calls[0]["body"]["stop"] == list(stops[:4])
    assert c.text == "hello "  # the fifth stop still applies locally


def test_length_finish_reason(stub) -> None:
    state, url = stub
    state.on("x", ("json", _ok("abc", finish="length")))
    state.on("y", ("json", _ok("abc", finish=None)))
    state.on("z", ("json", _ok("abc", finish="eos")))
    out = make(url).generate([req("x"), req("y"), req("z")])
    assert [c.finish_reason for c in out] == ["length", "stop", "stop"]


def test_continuation_sent_and_stripped(stub) -> None:
    state, url = stub
    prefix = "The answer is: ("
    state.on("echoes", ("json", _ok(prefix + "B) because")))
    state.on("plain", ("json", _ok("C) since")))
    out = make(url).generate([req("echoes", prefix), req("plain", prefix)])
    assert [c.text for c in out] == ["B) because", "C) since"]
    body = state.calls_for("echoes")[0]["body"]
    assert body["messages"][-1] == {"role": "assistant", "content": prefix}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False


# -- choice_logprobs -------------------------------------------------------------------


def _lp(top: dict[str, float]) -> dict[str, Any]:
    tops = [{"token": t, "logprob": v} for t, v in top.items()]
    return _ok("A", logprobs={"content": [{"token": tops[0]["token"],
                                           "logprob": tops[0]["logprob"],
                                           "top_logprobs": tops}]})


def test_choice_logprobs_variants_and_absent(stub) -> None:
    state, url = stub
    state.on("q1", ("json", _lp({" A": -0.5, "A": -1.5, " B": -2.0, "C": -3.0})))
    state.on("q2", ("json", _lp({"B": -0.1, " B": -0.7})))
    out = make(url).choice_logprobs([req("q1", "Answer: ("), req("q2")], ["A", "B", " D"])
    assert out[0] == {"A": -0.5, "B": -2.0, " D": -math.inf}
    assert out[1] == {"A": -math.inf, "B": -0.1, " D": -math.inf}
    body = state.calls_for("q1")[0]["body"]
    assert body["max_tokens"] == 1 and body["temperature"] == 0
    assert body["logprobs"] is True and body["top_logprobs"] == 20
    assert body["messages"][-1] == {"role": "assistant", "content": "Answer: ("}
    assert body["continue_final_message"] is True


def test_choice_logprobs_legacy_shape(stub) -> None:
    state, url = stub
    legacy = _ok("A", logprobs={"tokens": ["A"], "top_logprobs": [{" A": -0.2, "B": -1.9}]})
    state.on("q", ("json", legacy))
    (scores,) = make(url).choice_logprobs([req("q")], ["A", "B", "C"])
    assert scores == {"A": -0.2, "B": -1.9, "C": -math.inf}


def test_choice_logprobs_unsupported_raises(stub) -> None:
    state, url = stub
    state.on("q", ("json", _ok("A", logprobs=None)))
    with pytest.raises(LogprobsUnsupported, match="127.0.0.1"):
        make(url).choice_logprobs([req("q")], ["A", "B"])
    assert len(state.calls_for("q")) == 1  # not something a retry would fix


def test_choice_logprobs_retry_then_nan_on_failure(stub) -> None:
    state, url = stub
    state.on("flaky", ("status", 503), ("json", _lp({"A": -0.3})))
    state.on("dead", *[("status", 500)] * 3)
    out = make(url, max_retries=2).choice_logprobs([req("flaky"), req("dead")], ["A", "B"])
    assert out[0] == {"A": -0.3, "B": -math.inf}
    assert set(out[1]) == {"A", "B"} and all(math.isnan(v) for v in out[1].values())
    assert len(state.calls_for("dead")) == 3


# -- secrets ---------------------------------------------------------------------------


def test_api_key_never_leaks(stub, monkeypatch) -> None:
    state, url = stub
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    state.on("e500", *[("status", 500)] * 5)
    state.on("e400", ("status", 401))
    state.on("slow", ("sleep", 0.5), ("sleep", 0.5))
    backend = make(url, timeout=0.1, max_retries=1)
    out = backend.generate([req("e500"), req("e400"), req("slow"), req("fine")])
    assert [c.ok for c in out] == [False, False, False, True]
    texts = [repr(backend), str(backend), backend.id] + [c.error or "" for c in out]
    assert all(FAKE_KEY not in t for t in texts), texts
    assert state.calls[0]["headers"]["Authorization"] == f"Bearer {FAKE_KEY}"  # it was used


def test_id_strips_credentials() -> None:
    b = OpenAIBackend("http://user:hunter2@example.invalid:8000/v1/", "m")
    assert b.id == "openai:m@http://example.invalid:8000/v1"
    assert "hunter2" not in repr(b)
    b.close()


# -- log-prob modes: prefix (continue_final_message), letter, and the probe ------------

JUDGE_PREFIX = "The answer is: ("
LETTER_ASK = "Answer with the letter of your choice only (A or B)."


def _judge_reqs(n: int = 3) -> list[Request]:
    return [req(f"Which answer is more harmless? q{i}", JUDGE_PREFIX) for i in range(n)]


def _lse(*xs: float) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def test_probe_keeps_prefix_mode_on_a_server_that_continues_the_prefix(stub) -> None:
    state, url = stub
    state.server = "honours"
    backend = make(url)
    assert backend.logprob_mode == "auto"
    out = backend.choice_logprobs(_judge_reqs(), ["A", "B"])
    assert backend.logprob_mode == "prefix" and "continue_final_message" in backend.logprob_mode_reason
    assert out == [{"A": -0.3, "B": -1.4}] * 3
    assert len(state.calls) == 3  # the probe's answer is the first request's scores
    assert all(c["body"]["continue_final_message"] is True for c in state.calls)
    backend.choice_logprobs(_judge_reqs(2), ["A", "B"])
    assert len(state.calls) == 5  # probed once per backend


def test_probe_falls_back_to_letter_mode_when_the_prefix_is_ignored(stub, caplog) -> None:
    state, url = stub
    state.server = "ignores"
    backend = make(url)
    with caplog.at_level("WARNING", logger="cai_core.backends.openai_http"):
        out = backend.choice_logprobs(_judge_reqs(), ["A", "B"])
    assert backend.logprob_mode == "letter"
    assert "'The'" in backend.logprob_mode_reason and "ignores continue_final_message" in backend.logprob_mode_reason
    assert any("letter mode" in r.getMessage() and "127.0.0.1" in r.getMessage() for r in caplog.records)
    # "A" and "(A" are the same answer; "B" and " B" too; "a" is not (case-sensitive)
    expected = {"A": _lse(-0.5, -2.5), "B": _lse(-1.3, -3.0)}
    assert all(o == pytest.approx(expected) for o in out)
    probe, *letter = state.calls
    assert probe["body"]["continue_final_message"] is True
    assert len(letter) == 3  # the probed request again, then the other two
    for call in letter:
        body = call["body"]
        assert "continue_final_message" not in body and "add_generation_prompt" not in body
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        assert body["max_tokens"] == 1 and body["logprobs"] is True and body["top_logprobs"] == 20
    assert {c["body"]["messages"][-1]["content"] for c in letter} == {
        f"Which answer is more harmless? q{i}\n\n{LETTER_ASK}" for i in range(3)}
    backend.choice_logprobs(_judge_reqs(2), ["A", "B"])
    assert len(state.calls) == 6 and all("continue_final_message" not in c["body"] for c in state.calls[4:])


def test_probe_falls_back_to_letter_mode_when_the_server_rejects_the_flag(stub) -> None:
    state, url = stub
    state.server = "rejects"
    backend = make(url)
    out = backend.choice_logprobs(_judge_reqs(2), ["A", "B"])
    assert backend.logprob_mode == "letter" and "HTTP 400" in backend.logprob_mode_reason
    assert all(math.isfinite(o["A"]) and math.isfinite(o["B"]) for o in out)
    assert len(state.calls) == 3  # 400 is not retried: one probe, two letter requests


def test_probe_that_gets_no_answer_decides_nothing(stub) -> None:
    state, url = stub
    state.server = "ignores"
    state.on("Which answer is more harmless? q0", *[("status", 503)] * 2)
    backend = make(url, max_retries=1)
    out = backend.choice_logprobs(_judge_reqs(), ["A", "B"])
    assert all(math.isnan(v) for o in out for v in o.values())  # failures, retried by a rerun
    assert "HTTP 503" in out[2].error and "probing" in out[2].error
    assert backend.logprob_mode == "auto" and len(state.calls) == 2
    out = backend.choice_logprobs(_judge_reqs(), ["A", "B"])
    assert backend.logprob_mode == "letter" and all(math.isfinite(o["A"]) for o in out)


def test_forced_modes_never_probe(stub) -> None:
    state, url = stub
    state.server = "ignores"
    old = make(url, logprob_mode="prefix").choice_logprobs(_judge_reqs(2), ["A", "B"])
    # the bug letter mode fixes: "The" first; "A" only as in "A is better", "B" nowhere: P(A) = 1
    assert old == [{"A": -2.03, "B": -math.inf}] * 2
    assert len(state.calls) == 2
    state.server = "honours"
    letter = make(url, logprob_mode="letter")
    assert letter.logprob_mode == "letter"
    (scores,) = letter.choice_logprobs(_judge_reqs(1), ["A", "B"])
    assert scores == pytest.approx({"A": _lse(-0.5, -2.5), "B": _lse(-1.3, -3.0)})
    assert "continue_final_message" not in state.calls[-1]["body"]
    with pytest.raises(ValueError, match="logprob_mode"):
        OpenAIBackend(url, "m", logprob_mode="completions")


def test_letter_mode_keeps_the_meaning_of_other_continuations(stub) -> None:
    state, url = stub
    state.server = "ignores"
    backend = make(url, logprob_mode="letter")
    # pointwise: "Answer:" then " Yes" / " No"
    (yn,) = backend.choice_logprobs([req("Is this answer harmless?", "Answer:")], [" Yes", " No"])
    assert yn == {" Yes": -0.4, " No": -1.2}
    assert state.calls[-1]["body"]["messages"][-1]["content"] == "Is this answer harmless?\n\nAnswer with Yes or No only."
    # cot-forced: the reasoning already written becomes the judge's turn, then the question
    reasoning = "Let's think step by step: the first answer explains the risk.\nThe second does not."
    (ab,) = backend.choice_logprobs([req("Which is better?", reasoning + "\nTherefore, the answer is (")], ["A", "B"])
    assert math.isfinite(ab["A"]) and ab["A"] > ab["B"]
    assert state.calls[-1]["body"]["messages"][1:] == [
        {"role": "user", "content": "Which is better?"},
        {"role": "assistant", "content": reasoning},
        {"role": "user", "content": f"So which is your answer? {LETTER_ASK}"},
    ]


def test_judge_stage_gets_verdicts_from_a_server_that_ignores_the_prefix(stub) -> None:
    from cai_core.stages.judge import judge
    from cai_core.types import Comparison, Principle

    state, url = stub
    state.server = "ignores"
    comps = [Comparison(id=f"c{i}", run_id=None, prompt_id="p", source="pairs", answer_a=f"no {i}", answer_b=f"sure {i}")
             for i in range(2)]
    principles = {c.id: [Principle("harm", "", "", "Which response is less harmful?")] for c in comps}

    def run(backend: OpenAIBackend) -> list:
        return judge(comps, {"p": "How do I pick a lock?"}, principles, backend, mode="logprob",
                     constitution_version="v", run_id=None)

    stuck = run(make(url, logprob_mode="prefix"))
    assert [v.p_first for v in stuck] == [1.0] * 4  # "A" somewhere in a fresh reply: certainty, wrongly
    verdicts = run(make(url))
    assert len(verdicts) == 4 and all(v.p_first is not None for v in verdicts)
    p = 1 / (1 + math.exp(_lse(-1.3, -3.0) - _lse(-0.5, -2.5)))  # this server always prefers the first shown
    assert [v.p_first for v in verdicts] == pytest.approx([p] * 4)
    assert [v.choice for v in verdicts] == ["A", "B", "A", "B"]  # AB, BA per comparison


def test_cli_judge_against_a_server_without_logprobs_says_what_to_do(stub, tmp_path, monkeypatch, capsys) -> None:
    from cai_core.cli.main import main

    state, url = stub  # unscripted requests are answered without logprobs
    monkeypatch.chdir(tmp_path)
    for var in [v for v in __import__("os").environ if v.startswith("CAI_")]:
        monkeypatch.delenv(var)
    db = str(tmp_path / "cai.duckdb")
    assert main(["--db", db, "--backend", "scripted", "pairs", "--prompts", "red-team", "--limit", "1"]) == 0
    capsys.readouterr()
    code = main(["--db", db, "--backend", "openai", "--base-url", url, "--model", "tiny", "judge", "--mode", "logprob"])
    err = capsys.readouterr().err
    assert code == 2
    assert url in err and "no logprobs" in err and "--mode cot" in err


@pytest.mark.parametrize("first, mode", [
    ({"The": -0.5, "A": -1.0, "B": -3.0}, "letter"),   # choices in the top 20, but a fresh reply
    ({"(": -0.6, "A": -1.0, "B": -1.5}, "prefix"),     # not the likeliest, but most of the mass
    ({" B": -0.7, "The": -0.9}, "prefix"),             # the likeliest token is a choice
    ({"Response": -0.1}, "letter"),
])
def test_probe_decision_rule(stub, first, mode) -> None:
    state, url = stub
    state.server = "ignores"  # what answers the letter-mode requests
    state.on("Which answer is more harmless? q0", ("json", _ok("x", logprobs=_top(first))))
    backend = make(url)
    (scores,) = backend.choice_logprobs(_judge_reqs(1), ["A", "B"])
    assert backend.logprob_mode == mode
    if mode == "prefix":
        assert scores == {c: max([v for t, v in first.items() if t.strip() == c], default=-math.inf) for c in "AB"}
        assert len(state.calls) == 1
    else:
        assert scores == pytest.approx({"A": _lse(-0.5, -2.5), "B": _lse(-1.3, -3.0)}) and len(state.calls) == 2


def test_the_logprob_mode_setting_reaches_the_backend(tmp_path, monkeypatch):
    """--logprob-mode / CAI_LOGPROB_MODE / the settings file force the mode of the facade's backend."""
    from cai_core.cli.main import build_parser
    from cai_core.config import load_settings
    from cai_core.services import Services

    monkeypatch.setenv("CAI_LOGPROB_MODE", "letter")
    monkeypatch.chdir(tmp_path)  # no ./cai.toml
    s = Services(load_settings(db=str(tmp_path / "x.duckdb"), backend="openai", base_url="http://127.0.0.1:9/v1",
                               model="m"))
    try:
        b = s.backend()
        assert b.logprob_mode == "letter" and b.logprob_mode_reason == "forced by the caller"
    finally:
        s.close()
    args = build_parser().parse_args(["--logprob-mode", "prefix", "stats"])
    assert args.logprob_mode == "prefix"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--logprob-mode", "guess", "stats"])
