"""Shared helpers for the reliability and security suite (tests/test_reliability_*.py).

- ``cai(...)``: run the real ``cai`` CLI as a subprocess (as a person would), against a
  DuckDB file in the test's folder.
- ``ProgressKiller``: start a CLI run, read its progress bar from stderr and ``kill -9`` it
  once the progress reaches a chosen point (so kill points are chosen by the test's seeded
  RNG, and robust to how fast the machine is).
- ``check_integrity``: the invariants every crash must preserve (no duplicate ids, one record
  per logical key, required fields non-null, every child's parent exists).
- ``OpenAIStub``: a local OpenAI-compatible server (``/v1/chat/completions`` with canned
  text and log-probs) that can fail chosen requests (HTTP 500/429, timeouts, malformed JSON,
  truncated bodies), be healed, and records the Authorization headers it received.
- ``start_app`` / ``stop_app``: the Gradio app as a subprocess (``python app.py``).
- ``executable_markup``: what an HTML fragment holds that a browser could execute.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
CAI = str(Path(sys.executable).parent / "cai")
PYTHON = sys.executable

__all__ = [
    "ROOT", "CAI", "PYTHON", "base_env", "cai", "stats", "ProgressKiller", "check_integrity",
    "OpenAIStub", "Fault", "free_port", "start_app", "stop_app", "wait_listening",
    "executable_markup", "MarkupAudit", "open_store", "one_clear_line",
]


# ---------------------------------------------------------------- the CLI as a subprocess


def base_env(**extra: str) -> dict:
    """The caller's environment without CAI_* settings or proxies (a proxy would swallow
    requests to the local stub), plus ``extra``."""
    drop = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAI_") and k not in drop}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    env.update(extra)
    return env


def cai(cwd: Path, *args: str, db: Path | None = None, env: dict | None = None, check: bool = True,
        timeout: float = 240) -> subprocess.CompletedProcess:
    """``cai --db cwd/cai.duckdb ARGS`` in ``cwd``; raises with stderr when ``check`` and rc != 0."""
    db = db or (cwd / "cai.duckdb")
    p = subprocess.run([CAI, "--db", str(db), *args], cwd=cwd, env=env or base_env(),
                       capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"cai {' '.join(args)} -> {p.returncode}\n{p.stderr[-4000:]}")
    return p


def stats(db: Path) -> dict:
    with open_store(db) as s:
        from cai_core.services import STAT_KINDS

        out = {k: s.count(k) for k in STAT_KINDS if k != "unparsed_verdicts"}
        out["unparsed_verdicts"] = s.count("verdicts", "WHERE choice IS NULL")
        return out


def open_store(db: Path):
    """The store, opened in this process (only after every writer has exited)."""
    from cai_core.store import Store

    return Store(db)


def one_clear_line(stderr: str) -> str:
    """The CLI's error output must be one line, with no traceback; returns that line."""
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip() and "%|" not in ln]
    assert len(lines) == 1, f"expected one error line, got:\n{stderr}"
    return lines[0]


_PROGRESS = re.compile(r"(\d+)/(\d+)")


class ProgressKiller:
    """Run a command in its own process group, follow the ``done/total`` of its tqdm bar on
    stderr, and SIGKILL the whole group when ``done`` reaches a target (plus a random extra
    delay), modelling a machine crash at a point chosen by the test."""

    def __init__(self, cmd: list[str], *, cwd: Path, env: dict) -> None:
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.done: int | None = None
        self.first: int | None = None
        self.total: int | None = None
        self.err = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = self.proc.stderr.read1(4096) if hasattr(self.proc.stderr, "read1") else self.proc.stderr.read(1)
            if not chunk:
                return
            self.err += chunk
            buf = (buf + chunk)[-400:]
            found = _PROGRESS.findall(buf.decode("utf-8", "replace"))
            if found:
                d, t = map(int, found[-1])
                self.done, self.total = d, t
                if self.first is None:
                    self.first = d

    def kill_after(self, advance: int, extra_delay: float, timeout: float = 120) -> bool:
        """SIGKILL the process group once progress is ``advance`` past where this run
        started (then after ``extra_delay`` s). Returns False if the process ended on its
        own first (nothing was killed)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.first is not None and self.done is not None and self.done >= self.first + advance:
                break
            time.sleep(0.005)
        else:
            raise AssertionError(f"progress never advanced by {advance} (at {self.done}/{self.total})")
        time.sleep(extra_delay)
        if self.proc.poll() is not None:
            return False
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        return True

    def wait(self, timeout: float = 240) -> int:
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(5)
        return rc

    @property
    def stderr(self) -> str:
        return self.err.decode("utf-8", "replace")


# ---------------------------------------------------------------- integrity after a crash

# Columns that must never be NULL (the schema's NOT NULL columns, checked independently).
REQUIRED = {
    "prompt_sets": ("id", "name", "source"),
    "prompts": ("id", "set_id", "position", "text"),
    "runs": ("id", "kind", "config_hash", "config", "status"),
    "generations": ("id", "run_id", "prompt_id", "text", "finish_reason", "flags", "model"),
    "critiques": ("id", "run_id", "prompt_id", "parent_id", "round", "principle_id", "constitution_version",
                  "cot", "request", "text", "finish_reason", "flags", "model"),
    "revisions": ("id", "run_id", "prompt_id", "critique_id", "round", "principle_id", "request", "text",
                  "finish_reason", "flags", "model"),
    "failures": ("id", "run_id", "item", "stage", "error"),
    "comparisons": ("id", "prompt_id", "source", "answer_a", "answer_b"),
    "verdicts": ("id", "run_id", "comparison_id", "principle_id", "constitution_version", "judge", "mode",
                 "ab_order", "raw"),
    "audits": ("id", "comparison_id", "author", "action"),
    "checkpoints": ("id", "run_id", "path", "base_model"),
    "train_metrics": ("run_id", "step", "metrics"),
}

# (child table, child column, parent query): every non-null child value must be in the parent set.
PARENTS = [
    ("prompts", "set_id", "SELECT id FROM prompt_sets"),
    ("generations", "run_id", "SELECT id FROM runs"),
    ("generations", "prompt_id", "SELECT id FROM prompts"),
    ("critiques", "run_id", "SELECT id FROM runs"),
    ("critiques", "prompt_id", "SELECT id FROM prompts"),
    ("critiques", "parent_id", "SELECT id FROM generations UNION ALL SELECT id FROM revisions"),
    ("critiques", "constitution_version", "SELECT version FROM constitutions"),
    ("revisions", "run_id", "SELECT id FROM runs"),
    ("revisions", "critique_id", "SELECT id FROM critiques"),
    ("failures", "run_id", "SELECT id FROM runs"),
    ("comparisons", "prompt_id", "SELECT id FROM prompts"),
    ("comparisons", "run_id", "SELECT id FROM runs"),
    ("comparisons", "parent_a", "SELECT id FROM generations UNION ALL SELECT id FROM revisions"),
    ("comparisons", "parent_b", "SELECT id FROM generations UNION ALL SELECT id FROM revisions"),
    ("verdicts", "run_id", "SELECT id FROM runs"),
    ("verdicts", "comparison_id", "SELECT id FROM comparisons"),
    ("audits", "comparison_id", "SELECT id FROM comparisons"),
    ("checkpoints", "run_id", "SELECT id FROM runs"),
    ("train_metrics", "run_id", "SELECT id FROM runs"),
]

# One record per logical key: (table, key columns, optional filter).
LOGICAL_KEYS = [
    ("generations", "run_id, prompt_id", "WHERE run_id IN (SELECT id FROM runs WHERE kind = 'sl')"),
    ("critiques", "run_id, prompt_id, round", ""),
    ("revisions", "run_id, prompt_id, round", ""),
    ("verdicts", "run_id, comparison_id, principle_id, judge, mode, ab_order", ""),
    ("train_metrics", "run_id, step", ""),
    ("prompts", "set_id, position", ""),
]


def check_integrity(db: Path) -> dict:
    """Assert the crash invariants on a closed database; returns the counts per table."""
    problems: list[str] = []
    with open_store(db) as s:
        counts = {t: s.count(t) for t in REQUIRED}
        for table, cols in REQUIRED.items():
            if table != "train_metrics":
                dup = s.scalar(f"SELECT count(*) - count(DISTINCT id) FROM {table}")
                if dup:
                    problems.append(f"{table}: {dup} duplicate ids")
            for c in cols:
                n = s.scalar(f"SELECT count(*) FROM {table} WHERE {c} IS NULL")
                if n:
                    problems.append(f"{table}.{c}: {n} NULL values")
        for table, key, where in LOGICAL_KEYS:
            n = s.scalar(f"SELECT count(*) FROM (SELECT {key}, count(*) AS n FROM {table} {where} GROUP BY ALL HAVING n > 1)")
            if n:
                problems.append(f"{table}: {n} logical keys ({key}) stored more than once")
        for table, col, parent in PARENTS:
            n = s.scalar(f"SELECT count(*) FROM {table} WHERE {col} IS NOT NULL AND {col} NOT IN ({parent})")
            if n:
                problems.append(f"{table}.{col}: {n} rows whose parent does not exist")
        # a critique's parent is the same prompt's previous answer in the same run
        n = s.scalar("""
            SELECT count(*) FROM critiques c
            WHERE NOT EXISTS (SELECT 1 FROM generations g WHERE c.round = 1 AND g.id = c.parent_id
                              AND g.run_id = c.run_id AND g.prompt_id = c.prompt_id)
              AND NOT EXISTS (SELECT 1 FROM revisions r WHERE c.round > 1 AND r.id = c.parent_id
                              AND r.run_id = c.run_id AND r.prompt_id = c.prompt_id AND r.round = c.round - 1)""")
        if n:
            problems.append(f"critiques: {n} rows whose parent is not the previous answer of the same prompt/run")
        n = s.scalar("""
            SELECT count(*) FROM revisions r WHERE NOT EXISTS (
              SELECT 1 FROM critiques c WHERE c.id = r.critique_id AND c.run_id = r.run_id
              AND c.prompt_id = r.prompt_id AND c.round = r.round)""")
        if n:
            problems.append(f"revisions: {n} rows whose critique is not the same prompt/run/round")
        n = s.scalar("SELECT count(*) FROM verdicts WHERE raw LIKE '[backend error]%'")
        if n:
            problems.append(f"verdicts: {n} backend errors stored as verdicts")
    assert not problems, "integrity problems:\n" + "\n".join(problems)
    return counts


# ---------------------------------------------------------------- an OpenAI-compatible stub


@dataclass
class Fault:
    """Fail requests whose messages contain ``marker`` (and, if given, of one ``stage``:
    answer | critique | revision | judge)."""

    marker: str
    kind: str
    """status | timeout | malformed | truncated | unauthorized"""
    code: int = 500
    stage: str | None = None
    retry_after: str | None = "0"
    sleep: float = 3.0


@dataclass
class StubState:
    faults: list[Fault] = field(default_factory=list)
    healed: bool = False
    reply: Callable[[dict, str], str] | None = None
    """(request body, stage) -> completion text (default: a canned answer)."""
    raw_reply: Callable[[dict, str], bytes | None] | None = None
    """(request body, stage) -> a raw 200 body to send instead (None: the normal reply)."""
    auth: list[tuple[str, str | None]] = field(default_factory=list)
    """(stage, Authorization header) per request."""
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(stage, last user message) per request."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def stage_of(body: dict) -> str:
    msgs = body.get("messages") or []
    last = msgs[-1] if msgs else {}
    if last.get("role") == "assistant":
        cont = last.get("content", "")
        if cont.startswith("Critique"):
            return "critique"
        if cont.startswith("Revision"):
            return "revision"
        return "judge"
    return "answer"


def _canned(body: dict, stage: str) -> str:
    user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    tag = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()[:6]
    if stage == "judge":
        return f"Both answers considered ({tag}). Therefore, the answer is (A)."
    return f"stub {stage} {tag}: {' '.join(user.split()[:6])}"


class _Handler(BaseHTTPRequestHandler):
    state: StubState
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: bytes, headers: dict | None = None, length: int | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self) -> None:  # /v1/models, for completeness
        self._send(200, json.dumps({"data": [{"id": "stub-model", "object": "model"}]}).encode())

    def do_POST(self) -> None:
        st = self.state
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        except ValueError:
            return self._send(400, b'{"error": "bad json"}')
        stage = stage_of(body)
        text_all = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        with st.lock:
            st.auth.append((stage, self.headers.get("Authorization")))
            st.requests.append((stage, user))
            fault = None if st.healed else next(
                (f for f in st.faults if f.marker in text_all and (f.stage is None or f.stage == stage)), None)
        if self.path != "/v1/chat/completions":
            return self._send(404, b'{"error": "not found"}')
        try:
            if fault is not None:
                if fault.kind == "status":
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                    return self._send(fault.code, b'{"error": {"message": "injected fault"}}', headers)
                if fault.kind == "unauthorized":
                    # Like some real servers: the error body repeats (part of) the key it got.
                    got = self.headers.get("Authorization", "")
                    return self._send(401, json.dumps({"error": {"message": f"Incorrect API key provided: {got}"}}).encode())
                if fault.kind == "timeout":
                    time.sleep(fault.sleep)
                    return self._send(200, json.dumps(self._ok("too late", body)).encode())
                if fault.kind == "malformed":
                    return self._send(200, b'{"choices": [{"message": {"content": "half" <html>oops')
                if fault.kind == "truncated":
                    self._send(200, b'{"choices": [{"index": 0, "message": {"ro', length=4000)
                    self.close_connection = True
                    return
            raw = st.raw_reply(body, stage) if st.raw_reply else None
            if raw is not None:
                return self._send(200, raw)
            text = (st.reply or _canned)(body, stage)
            self._send(200, json.dumps(self._ok(text, body)).encode())
        except OSError:  # the client gave up (timeout) and closed the socket
            pass

    def _ok(self, text: str, body: dict) -> dict:
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        if body.get("logprobs"):
            digest = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).digest()
            pa = 0.2 + 0.6 * digest[0] / 255
            top = [{"token": "A", "logprob": math.log(pa)}, {"token": "B", "logprob": math.log(1 - pa)}]
            choice["message"]["content"] = "A" if pa >= 0.5 else "B"
            choice["logprobs"] = {"content": [{"token": top[0]["token"], "logprob": top[0]["logprob"],
                                               "top_logprobs": top}]}
        return {"id": "chatcmpl-stub", "object": "chat.completion", "model": body.get("model"),
                "choices": [choice], "usage": {"prompt_tokens": 11, "completion_tokens": 7}}


class OpenAIStub:
    """``with OpenAIStub() as stub: stub.url`` -> ``http://127.0.0.1:PORT/v1``."""

    def __init__(self) -> None:
        self.state = StubState()
        handler = type("BoundHandler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "OpenAIStub":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def requests_of(self, stage: str) -> list[str]:
        with self.state.lock:
            return [u for s, u in self.state.requests if s == stage]

    def reset_log(self) -> None:
        with self.state.lock:
            self.state.requests.clear()
            self.state.auth.clear()


# ---------------------------------------------------------------- the app as a subprocess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen | None = None, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"the app exited with {proc.returncode} before listening:\n{out}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def start_app(db: Path, port: int, *args: str, env: dict | None = None, cwd: Path | None = None,
              wait: bool = True) -> subprocess.Popen:
    proc = subprocess.Popen([PYTHON, str(ROOT / "app.py"), "--db", str(db), "--port", str(port), *args],
                            cwd=cwd or db.parent, env=env or base_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    if wait:
        wait_listening(port, proc)
    return proc


def stop_app(proc: subprocess.Popen) -> str:
    """SIGINT (what Ctrl-C does), then SIGKILL if it lingers; returns its output."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
    return proc.stdout.read() if proc.stdout else ""


# ---------------------------------------------------------------- executable markup


_DANGEROUS_TAGS = {"script", "img", "iframe", "svg", "object", "embed", "style", "link", "meta", "a", "form",
                   "input", "button", "video", "audio", "source", "base", "math", "frame", "frameset", "template"}


class MarkupAudit(HTMLParser):
    """Collects every tag and attribute of a fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]

    handle_startendtag = handle_starttag

    def handle_comment(self, data):
        self.comments.append(data)


def executable_markup(fragment: str) -> list[str]:
    """What in ``fragment`` a browser could run or that could fetch/navigate: dangerous tags,
    ``on*`` attributes, ``javascript:``/``data:`` URLs, ``href``/``src`` at all. Empty = inert."""
    p = MarkupAudit()
    p.feed(fragment)
    p.close()
    found = [f"<{t}>" for t in p.tags if t in _DANGEROUS_TAGS]
    for tag, k, v in p.attrs:
        low = re.sub(r"[\s\x00-\x1f]", "", v).lower()
        if k.startswith("on"):
            found.append(f"<{tag} {k}=...>")
        if k in ("href", "src", "srcdoc", "action", "formaction", "xlink:href", "background", "poster"):
            found.append(f"<{tag} {k}={v[:40]!r}>")
        if "javascript:" in low or "vbscript:" in low or "data:text/html" in low:
            found.append(f"<{tag} {k}={v[:40]!r}>")
        if k == "style" and ("url(" in low or "expression(" in low):
            found.append(f"<{tag} style={v[:40]!r}>")
    return found
