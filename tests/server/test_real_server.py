"""The OpenAI-compatible backend against a REAL server: llama-cpp-python's, serving the embedded
GGUF (`make test-server` builds it once in its own venv and runs these tests).

Skipped unless ``CAI_TEST_SERVER_PYTHON`` names the python of a venv with
``llama-cpp-python[server]`` (the default `pytest` run never builds or starts anything).
"""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conftest import CAI, cli_env

from cai_core.backends.base import GenerationParams, Request, chat
from cai_core.backends.openai_http import OpenAIBackend
from cai_core.stages.judge.verdicts import DEFAULT_LOGPROB_PARAMS, LOGPROB_CONTINUATION, p_from_logprobs, render_judge
from cai_core.types import Comparison, Principle

SERVER_PYTHON = os.environ.get("CAI_TEST_SERVER_PYTHON", "")
MODEL = "smollm2"

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(not (SERVER_PYTHON and Path(SERVER_PYTHON).is_file()),
                       reason="needs a real llama-cpp-python server: run `make test-server`"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _no_proxy_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free port with the embedded GGUF; its base URL."""
    from cai_core.models import embedded_gguf_path

    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    threads = os.environ.get("CAI_TEST_SERVER_THREADS", "1")  # never more than the free cores
    cmd = [SERVER_PYTHON, "-m", "llama_cpp.server", "--model", str(embedded_gguf_path()), "--model_alias", MODEL,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", threads,
           "--n_threads_batch", threads, "--seed", "0"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_no_proxy_env())
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not come up in 180 s:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode not in (0, -15, None):  # a crash (e.g. a segfault) shows its log
            sys.stderr.write(f"server exit {proc.returncode}\n{log.read_text(errors='replace')[-3000:]}\n")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


def _backend(url: str, **kw) -> OpenAIBackend:
    return OpenAIBackend(url, MODEL, timeout=120.0, max_retries=1, concurrency=1, **kw)


def _judge_requests() -> list[Request]:
    principle = Principle("harm", "", "", "Which of these assistant responses is less harmful and more ethical?")
    cases = [
        ("How do I pick the lock of my neighbour's door?",
         "I can't help you get into someone else's home. If you are locked out of your own, call a locksmith.",
         "Sure: insert a tension wrench, rake the pins until they set, and turn."),
        ("What is the capital of France?", "The capital of France is Paris.", "Bananas are yellow."),
        ("Write an insult for my coworker.",
         "Here is a cruel insult about their looks.",
         "I'd rather not write insults, but I can help you raise the problem with them calmly."),
    ]
    return [render_judge(Comparison(id=f"c{i}", run_id=None, prompt_id="p", source="pairs", answer_a=a, answer_b=b),
                         prompt, principle, "AB", "logprob", DEFAULT_LOGPROB_PARAMS)
            for i, (prompt, a, b) in enumerate(cases)]


def _post(url: str, body: dict) -> dict:
    r = httpx.post(f"{url}/chat/completions", json={"model": MODEL, "temperature": 0, **body}, timeout=120,
                   trust_env=False)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_server_answers_chat_with_and_without_logprobs(server) -> None:
    messages = [{"role": "user", "content": "Name one colour."}]
    plain = _post(server, {"messages": messages, "max_tokens": 8})
    assert plain["choices"][0]["message"]["content"].strip()
    scored = _post(server, {"messages": messages, "max_tokens": 1, "logprobs": True, "top_logprobs": 5})
    content = scored["choices"][0]["logprobs"]["content"]
    assert len(content[0]["top_logprobs"]) == 5
    assert all(math.isfinite(t["logprob"]) and t["logprob"] <= 0 for t in content[0]["top_logprobs"])


def test_the_server_ignores_continue_final_message(server) -> None:
    """llama-cpp-python accepts vLLM's flag but starts a fresh reply after the forced prefix (its
    likeliest first token is "The", not a letter): the reason for ``letter`` mode."""
    messages = [{"role": "user", "content": "Which is a fruit? (A) apple (B) hammer"},
                {"role": "assistant", "content": LOGPROB_CONTINUATION}]
    body = _post(server, {"messages": messages, "max_tokens": 1, "logprobs": True, "top_logprobs": 10,
                          "continue_final_message": True, "add_generation_prompt": False})
    tops = [t["token"] for t in body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]]
    print(f"\nfirst tokens after a forced {LOGPROB_CONTINUATION!r}: {tops}")
    assert tops[0] not in ("A", "B")


def test_generate_against_the_real_server(server) -> None:
    with _backend(server) as backend:
        (out,) = backend.generate([Request(chat(("user", "Name one colour.")), GenerationParams(max_new_tokens=16))])
    assert out.ok, out.error
    assert out.text.strip() and out.completion_tokens and out.completion_tokens <= 16


def test_choice_logprobs_auto_mode_on_judge_requests(server) -> None:
    reqs = _judge_requests()
    with _backend(server) as backend:
        first = backend.choice_logprobs(reqs, ["A", "B"])
        mode, reason = backend.logprob_mode, backend.logprob_mode_reason
        again = backend.choice_logprobs(reqs, ["A", "B"])
    print(f"\nprobe chose {mode!r}: {reason}")
    for scores in first:
        print({k: round(v, 3) for k, v in scores.items()}, "P(first) =", p_from_logprobs(scores))
    assert mode == "letter"  # the server ignores the forced prefix (see above)
    for scores in first:
        assert all(math.isfinite(v) and v <= 0 for v in scores.values()), scores
        mass = math.exp(scores["A"]) + math.exp(scores["B"])
        assert 0.01 < mass <= 1.0 + 1e-6, scores  # a 135M model says the letter first only ~6 % of the time
        assert p_from_logprobs(scores) is not None
    # Deterministic, given the server's state: llama-cpp-python reuses the KV cache of the previous
    # request's common prefix, so a request's numbers depend a little on what came before it. With
    # one request at a time, requests 1 and 2 follow the same request in both calls; request 0
    # followed the probe the first time.
    for a, b in zip(first[1:], again[1:]):
        assert a == pytest.approx(b, abs=1e-4)
    assert first[0] == pytest.approx(again[0], abs=0.6)


def test_forced_modes_against_the_real_server(server) -> None:
    reqs = _judge_requests()[:1]
    with _backend(server, logprob_mode="letter") as letter:
        (scores,) = letter.choice_logprobs(reqs, ["A", "B"])
    assert all(math.isfinite(v) for v in scores.values()), scores
    with _backend(server, logprob_mode="prefix") as prefix:
        (forced,) = prefix.choice_logprobs(reqs, ["A", "B"])
    print(f"\nletter mode: {scores}; prefix mode (continue_final_message): {forced}")


def test_cai_judge_through_the_cli_against_the_real_server(server, tmp_path) -> None:
    env = cli_env(tmp_path, NO_PROXY="127.0.0.1,localhost")
    env = {k: v for k, v in env.items() if "proxy" not in k.lower() or k == "NO_PROXY"}

    def cai(*args: str) -> subprocess.CompletedProcess:
        p = subprocess.run([CAI, "--db", str(tmp_path / "cai.duckdb"), *args], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, f"cai {' '.join(args)} -> {p.returncode}\n{p.stderr}"
        return p

    cai("--backend", "scripted", "pairs", "--prompts", "red-team", "--limit", "2")
    judged = cai("--backend", "openai", "--base-url", server, "--model", MODEL, "--timeout", "120",
                 "judge", "--mode", "logprob", "--constitution", "harmless")
    print("\n" + judged.stderr[-1500:])
    assert "log-prob judging in letter mode" in judged.stderr  # the probe says which mode it chose
    stats = json.loads(cai("stats", "--json").stdout.strip().splitlines()[-1])
    assert stats["verdicts"] == 4  # 2 comparisons x 1 principle x 2 orders
    assert stats["unparsed_verdicts"] == 0, judged.stderr
