"""Secrets and exposure.

- API keys (OPENAI_API_KEY, or the variable named by --api-key-env) are sent to the server
  (the stub sees them in the Authorization header) and appear nowhere else: not in the DuckDB
  file, not in any file the runs write (snapshots, run folders, exports in JSONL/CSV/Parquet),
  not in the CLI's stdout/stderr, not in the app's pages, API answers or console -- even when
  the server echoes the key in an error body.
- The app listens on 127.0.0.1 only by default; `--host 0.0.0.0` without a login exits 2
  with a message; with --auth every page but the login form and every API call needs a login.
- No unsafe deserialisation or code evaluation in the app's code (a static scan).
"""
from __future__ import annotations

import ast
import json
import re
import secrets
import shutil
import socket
import subprocess

import pytest

from reliability_helpers import (
    PYTHON, ROOT, Fault, OpenAIStub, base_env, cai, free_port, open_store, start_app, stop_app,
)


def _leaks(blob: bytes | str, keys: list[str]) -> list[str]:
    data = blob if isinstance(blob, bytes) else blob.encode("utf-8", "replace")
    found = []
    for k in keys:
        # the key itself, and its middle part (a truncated or masked echo would still carry it)
        for needle in (k, k[4:-4]):
            for enc in ("utf-8", "utf-16-le"):
                if needle.encode(enc) in data:
                    found.append(f"{k[:6]}… ({enc})")
    return found


def _non_loopback_ipv4() -> list[str]:
    addrs = set()
    ip = shutil.which("ip")
    if ip:
        out = subprocess.run([ip, "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
        addrs |= set(re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out))
    try:
        addrs |= {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    except OSError:
        pass
    return sorted(a for a in addrs if not a.startswith("127."))


def _listening(port: int) -> list[str]:
    ss = shutil.which("ss")
    if not ss:
        pytest.skip("ss is not installed")
    out = subprocess.run([ss, "-ltnH"], capture_output=True, text=True).stdout
    return [line.split()[3] for line in out.splitlines() if line.split()[3].endswith(f":{port}")]


class _App:
    """Calls to the running app over HTTP (what a browser or gradio_client does)."""

    def __init__(self, port: int):
        import httpx

        self.base = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(timeout=60)

    def call(self, api: str, data: list) -> str:
        r = self.http.post(f"{self.base}/gradio_api/call/{api}", json={"data": data})
        if r.status_code != 200:
            return f"{r.status_code} {r.text}"
        text = ""
        # Server-sent events: read until the result (the server may close the stream right after it).
        with self.http.stream("GET", f"{self.base}/gradio_api/call/{api}/{r.json()['event_id']}") as resp:
            try:
                for line in resp.iter_lines():
                    text += line + "\n"
                    if text.count("event: ") and line.startswith("data:") and "event: heartbeat" not in text[-200:]:
                        if "event: complete" in text or "event: error" in text:
                            break
            except Exception as e:  # noqa: BLE001 - reported with what was read
                raise AssertionError(f"{api}: {type(e).__name__} after {text[-500:]!r}") from None
        assert "event: complete" in text, (api, text[:500])
        return text


def test_api_keys_reach_the_server_and_nowhere_else(tmp_path, tiny_lm):
    key = "sk-cai-SECRET-" + secrets.token_hex(16)
    judge_key = "lab-judge-SECRET-" + secrets.token_hex(16)
    keys = [key, judge_key]
    db = tmp_path / "cai.duckdb"
    said: list[str] = []  # every stdout/stderr the CLI printed

    def run(*args, env, check=True):
        p = cai(tmp_path, *args, env=env, check=check)
        said.append(p.stdout + p.stderr)
        return p

    prompts = ["Explain tides.", "How do I pick a lock?", "Write a poem. [unauth]", "Tell a joke. [f500]",
               "=cmd|' /C calc'!A0", "Describe rain."]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    with OpenAIStub() as stub:
        # a server that echoes the Authorization header in its 401 body, like some real ones
        stub.state.faults = [Fault("[unauth]", "unauthorized", stage="answer"),
                             Fault("[f500]", "status", 500, stage="answer")]
        env_sl = base_env(OPENAI_API_KEY=key)
        env_judge = base_env(LAB_JUDGE_KEY=judge_key)  # the judge's key lives in its own variable
        openai = ["--backend", "openai", "--base-url", stub.url, "--model", "stub-model"]
        run("prompts", "import", str(tmp_path / "p.jsonl"), env=env_sl)
        sl = run(*openai, "sl", "--split", "all", "--prompts", "p", "--constitution", "seed", "--rounds", "1", env=env_sl, check=False)
        assert sl.returncode == 3 and "2 failed" in sl.stderr, sl.stderr[-2000:]
        run("pairs", "--from-sl", sl.stdout.strip(), env=env_sl)
        for mode in ("logprob", "cot"):
            run(*openai, "--api-key-env", "LAB_JUDGE_KEY", "judge", "--constitution", "seed", "--mode", mode,
                env=env_judge)
        for what, suffix in (("sft", "jsonl"), ("sft", "csv"), ("preferences", "jsonl"), ("preferences", "csv")):
            # the SL run is incomplete (two answers failed): name it, the default is the latest finished one
            flagged = ["--include-flagged", "--sl-runs", sl.stdout.strip()] if what == "sft" else []
            run("export", what, "--out", str(tmp_path / "exports" / f"{what}.{suffix}"), *flagged, env=env_sl)
        run("stats", "--json", env=env_sl)
        run("runs", env=env_sl)
        # a training job inherits the environment: its run folder must not keep the key either
        model, tok = tiny_lm
        model.save_pretrained(tmp_path / "tiny")
        tok.save_pretrained(tmp_path / "tiny")
        (tmp_path / "cfg.json").write_text(json.dumps({"per_device_batch_size": 2, "save_steps": 1, "num_threads": 1}))
        run("train", "sft", "--base", str(tmp_path / "tiny"), "--max-steps", "2", "--config", str(tmp_path / "cfg.json"),
            "--sl-runs", sl.stdout.strip(), env=env_sl)

        with open_store(db) as st:  # the 401 whose body echoed the key is recorded without it
            assert sorted(r["error"] for r in st.query("SELECT error FROM failures")) == [
                "HTTP 401 (not retried)", "HTTP 500 after 5 attempts"]
        n_cli = len(stub.state.auth)
        by_stage: dict[str, set] = {}
        for stage, auth in stub.state.auth:
            by_stage.setdefault(stage, set()).add(auth)
        assert by_stage["answer"] == by_stage["critique"] == by_stage["revision"] == {f"Bearer {key}"}
        assert by_stage["judge"] == {f"Bearer {judge_key}"}  # --api-key-env chose the judge's key

        # The app, with both keys in its environment, behind a login.
        port = free_port()
        # (meanwhile: an open host without a login, or with a malformed one, is refused)
        refused = [subprocess.Popen([PYTHON, str(ROOT / "app.py"), "--db", str(tmp_path / "other.duckdb"), "--host",
                                     "0.0.0.0", "--port", str(free_port())], cwd=tmp_path, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for env in (base_env(), base_env(CAI_APP_AUTH="no-colon"))]
        app = start_app(db, port, *openai, "--auth", "ann:pw-123", cwd=tmp_path,
                        env=base_env(OPENAI_API_KEY=key, LAB_JUDGE_KEY=judge_key))
        pages: list[str] = []
        try:
            # listening on the loopback interface only
            bound = _listening(port)
            assert bound and all(b.startswith(("127.0.0.1:", "[::1]:")) for b in bound), bound
            for addr in _non_loopback_ipv4():
                with pytest.raises(OSError):
                    socket.create_connection((addr, port), timeout=2).close()

            client = _App(port)
            h = client.http
            assert h.get(f"{client.base}/config").status_code == 401
            assert h.get(f"{client.base}/gradio_api/info").status_code == 401
            assert client.call("load_overview", []).startswith("401")
            assert h.post(f"{client.base}/gradio_api/queue/join", json={}).status_code == 401
            assert h.post(f"{client.base}/login", data={"username": "ann", "password": "wrong"}).status_code == 400
            login = h.get(f"{client.base}/")
            assert login.status_code == 200
            pages.append(login.text)
            assert h.post(f"{client.base}/login", data={"username": "ann", "password": "pw-123"}).json() == {"success": True}
            for path in ("/", "/config", "/gradio_api/info"):
                r = h.get(client.base + path)
                assert r.status_code == 200, path
                pages.append(r.text)
            for api in ("load_overview", "load_critique", "load_preferences", "load_audit", "load_train", "load_constitutions",
                        "critique_runs", "overview_refresh", "compare_report"):
                pages.append(client.call(api, []))
            pages.append(client.call("preferences_list", ["all", "", "", ""]))
            pages.append(client.call("audit_next", ["ann", "random", ""]))
            stub.state.auth.clear()
            chat = client.call("compare_chat", ["stub-model", "Say hello. [chat]", 32])
            assert "stub answer" in chat  # the app called the server ...
            assert {a for _, a in stub.state.auth} == {f"Bearer {key}"}  # ... with the key
            pages.append(chat)
        finally:
            console = stop_app(app)
        for p, want in zip(refused, ("a shared host needs a login: pass --auth USER:PASSWORD (or set CAI_APP_AUTH)",
                                     "--auth takes USER:PASSWORD")):
            out, err = p.communicate(timeout=60)
            assert p.returncode == 2 and want in err and "Traceback" not in err, err
            assert "Running on" not in out + err

    leaks = []
    for i, text in enumerate(said):
        leaks += [f"CLI output #{i}: {x}" for x in _leaks(text, keys)]
    for i, text in enumerate(pages):
        leaks += [f"app page/answer #{i}: {x}" for x in _leaks(text, keys)]
    leaks += [f"app console: {x}" for x in _leaks(console, keys)]
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert any(f.suffix == ".duckdb" for f in files) and any("runs" in f.parts for f in files)
    for f in files:
        leaks += [f"{f.relative_to(tmp_path)}: {x}" for x in _leaks(f.read_bytes(), keys)]
    assert not leaks, "the key leaked:\n" + "\n".join(leaks)
    print(f"secrets: {n_cli} requests from the CLI and {len(stub.state.auth)} from the app carried the right key; "
          f"searched {len(files)} files, {len(said)} CLI outputs, {len(pages)} app responses + its console: no key")


# ---------------------------------------------------------------- static scan

_SCANNED = [ROOT / "app.py", *sorted((ROOT / "cai_core").rglob("*.py")), *sorted((ROOT / "views").rglob("*.py"))]


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _unsafe_calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    aliases: dict[str, str] = {}  # `from pickle import loads as l` -> l: pickle.loads
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        name = aliases.get(name, name)
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        const = lambda k: isinstance(kw.get(k), ast.Constant) and kw[k].value  # noqa: E731
        if name in ("eval", "exec", "builtins.eval", "builtins.exec", "os.system", "os.popen"):
            found.append((node.lineno, name))
        elif re.fullmatch(r"(c?pickle|dill|marshal|shelve|joblib|_pickle)\.(load|loads|Unpickler|open)", name):
            found.append((node.lineno, name))
        elif name in ("yaml.load", "yaml.load_all", "yaml.unsafe_load", "yaml.full_load"):
            loader = _dotted(kw["Loader"]) if "Loader" in kw else ""
            if not loader.endswith("SafeLoader"):
                found.append((node.lineno, name))
        elif name == "torch.load" and const("weights_only") is not True:
            found.append((node.lineno, "torch.load without weights_only=True"))
        elif name.startswith("subprocess.") and const("shell") is True:
            found.append((node.lineno, f"{name}(shell=True)"))
        elif "trust_remote_code" in kw and not (isinstance(kw["trust_remote_code"], ast.Constant)
                                               and kw["trust_remote_code"].value is False):
            found.append((node.lineno, f"{name}(trust_remote_code=...)"))
    return found


def test_no_unsafe_deserialisation_eval_or_remote_code_in_the_apps_code():
    assert len(_SCANNED) > 40
    problems = []
    for f in _SCANNED:
        text = f.read_text(encoding="utf-8")
        problems += [f"{f.relative_to(ROOT)}:{line}: {what}" for line, what in _unsafe_calls(ast.parse(text))]
    assert not problems, "\n".join(problems)
    # the scanner itself finds what it must
    bad = ("import pickle, yaml, torch, subprocess\nfrom pickle import loads as l\npickle.load(f)\nl(b)\neval('1')\n"
           "exec('x')\nyaml.load(s)\ntorch.load(p)\ntorch.load(p, weights_only=False)\n"
           "subprocess.run('ls', shell=True)\nM.from_pretrained(p, trust_remote_code=True)\n"
           "yaml.load(s, Loader=yaml.SafeLoader)\ntorch.load(p, weights_only=True)\nsubprocess.run(['ls'])\n")
    assert [line for line, _ in _unsafe_calls(ast.parse(bad))] == [3, 4, 5, 6, 7, 8, 9, 10, 11]


def test_the_app_sends_no_telemetry(tmp_path, monkeypatch):
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    from app import build_app
    from cai_core.services import Services
    from cai_core.backends.scripted import ScriptedBackend
    from cai_core.config import Settings

    services = Services(Settings(db=str(tmp_path / "t.duckdb"), backend="scripted", model="t"),
                           backend=ScriptedBackend("scripted:t"))
    try:
        assert build_app(services).analytics_enabled is False
    finally:
        services.close()


@pytest.mark.parametrize("tab", ["train", "constitutions"])
def test_tabs_showing_timestamps_load(tmp_path, tab):
    import gradio as gr

    from cai_core.services import Services
    from cai_core.backends.scripted import ScriptedBackend
    from cai_core.config import Settings

    services = Services(Settings(db=str(tmp_path / "t.duckdb"), backend="scripted", model="t"),
                           backend=ScriptedBackend("scripted:t"))
    try:
        services.store.insert("runs", [{"id": "train-sft-x", "kind": "train-sft", "config_hash": "h", "config": {},
                                        "model": "m", "status": "finished"}])
        module = __import__(f"views.{tab}", fromlist=["build"])
        with gr.Blocks():
            load, outputs = module.build(services)
        for component, value in zip(outputs, load()):
            if isinstance(value, dict):  # gr.update(...)
                continue
            payload = component.postprocess(value)
            json.dumps(payload.model_dump() if hasattr(payload, "model_dump") else payload)  # what the page gets
    finally:
        services.close()
