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

    def on(self, prompt: str, *actions: tuple) -> None:
        self.script[prompt].extend(actions)

    def calls_for(self, prompt: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["prompt"] == prompt]


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
            if kind == "echo":
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
