"""Helpers for the UI tests: launch the real app (``app.build_app``) on a free 127.0.0.1 port
in a background thread of this process, over a temp DuckDB and the SCRIPTED backend (every
model call is instant and deterministic), and pre-populate the store through the services.

The server runs in-process on purpose: a test can call the app over HTTP (gradio_client,
Playwright) *and* look straight into ``server.services.store`` to check what really landed.

Run it by hand to poke at a populated app::

    .venv/bin/python tests/ui_server.py            # prints the URL, Ctrl-C to stop
"""
from __future__ import annotations

import json
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = [
    "XSS_TEXT", "LAB_PROMPTS", "UIServer", "Populated", "free_port", "make_services", "populate",
    "start_server", "save_tiny_model", "wait_for",
]

XSS_TEXT = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>[x](javascript:window.__xss=3)'
"""Model/prompt text that must always render as text. It has only three whitespace-separated
words, so the scripted backend's default reply ("answer <tag> to: <first 8 words>") echoes
all of it into answers, critiques and revisions."""

LAB_PROMPTS = [
    "How do I pick a lock on my neighbour's front door?",
    XSS_TEXT,
    "Write a polite note asking my landlord to fix the heating.",
    "What household chemicals should never be mixed?",
]
"""The "lab" prompt set the store is populated with (the XSS prompt is its second)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.25, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; return that value."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last value: {last!r})")


def make_services(root: Path, *, model: str = "base"):
    """Services over ``root/cai.duckdb`` with the scripted backend; runs (and edited
    constitutions, which live beside the database) stay under ``root``."""
    from cai_core.services import Services
    from cai_core.config import Settings

    root.mkdir(parents=True, exist_ok=True)
    return Services(Settings(db=str(root / "cai.duckdb"), backend="scripted", model=model,
                                runs_dir=str(root / "runs")))


@dataclass
class Populated:
    """What :func:`populate` put in the store."""

    lab_set: str
    sl_run_id: str
    sl_constitution_version: str
    pairs_run_ids: list[str]
    judge_run_id: str
    xss_prompt_id: str
    xss_comparison_id: str
    comparisons: int
    verdicts: int


def populate(services, *, root: Path, sl_rounds: int = 2, red_team_pairs: int = 14) -> Populated:
    """An SL run, sampled pairs and judge verdicts, all through the services with the scripted
    backend, over a "lab" prompt set holding :data:`XSS_TEXT`. The XSS comparison also gets one
    unparsed verdict, so it heads every author's "disagreement" audit queue."""
    from cai_core.runners.judge import JudgeConfig
    from cai_core.runners.pairs import PairsConfig
    from cai_core.runners.sl import SLConfig

    src = root / "lab.jsonl"
    src.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in LAB_PROMPTS), encoding="utf-8")
    services.import_prompts(src, name="lab")
    sl = services.sl(prompts="lab", constitution="harmless", config=SLConfig(rounds=sl_rounds, split=None))
    assert sl.status == "finished", sl
    p1 = services.pairs(prompts="red-team", config=PairsConfig(limit=red_team_pairs))
    p2 = services.pairs(prompts="lab", config=PairsConfig(split=None))
    # one judge run over both pairs runs (every sampled pair), as an auditor would have
    judged = services.judge(constitution="harmless", config=JudgeConfig(principles=1, source="samples"))
    assert judged.status == "finished", judged
    store = services.store
    xss_prompt = store.query(
        "SELECT p.id FROM prompts p JOIN prompt_sets s ON s.id = p.set_id WHERE s.name = 'lab' AND p.text = ?",
        [XSS_TEXT])[0]["id"]
    xss_cmp = store.query("SELECT id FROM comparisons WHERE prompt_id = ? ORDER BY id LIMIT 1", [xss_prompt])[0]["id"]
    some = store.query("SELECT * FROM verdicts WHERE comparison_id = ? LIMIT 1", [xss_cmp])[0]
    store.insert("verdicts", [{
        "id": f"unparsed-{xss_cmp}", "run_id": some["run_id"], "comparison_id": xss_cmp,
        "principle_id": some["principle_id"], "constitution_version": some["constitution_version"],
        "judge": some["judge"], "mode": "cot", "ab_order": "AB", "raw": "Both answers have merits. " + XSS_TEXT,
        "choice": None, "p_first": None, "p_a": None}])
    version = store.scalar("SELECT constitution_version FROM runs WHERE id = ?", [sl.run.id])
    return Populated(lab_set="lab", sl_run_id=sl.run.id, sl_constitution_version=version,
                     pairs_run_ids=[p1.run.id, p2.run.id], judge_run_id=judged.run.id, xss_prompt_id=xss_prompt,
                     xss_comparison_id=xss_cmp, comparisons=store.count("comparisons"), verdicts=store.count("verdicts"))


def save_tiny_model(tiny_lm, dest: Path) -> Path:
    """Save the ``tiny_lm`` fixture (a 2-layer random Llama + tokenizer) as a model folder,
    the "Start from" value that makes a training run take seconds."""
    model, tok = tiny_lm
    dest.mkdir(parents=True, exist_ok=True)
    if not (dest / "config.json").is_file():
        model.save_pretrained(dest)
        tok.save_pretrained(dest)
    return dest


@dataclass
class UIServer:
    url: str
    port: int
    root: Path
    services: Any
    demo: Any
    populated: Populated | None = None
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.demo.close()
        finally:
            # let a running background job (and a training subprocess it watches) finish its
            # write before the store goes away
            for job in self.services.jobs.list():
                if job.status in ("queued", "running"):
                    self.services.cancel_job(job.id)
                    self.services.jobs.wait(job.id, timeout=30)
            self.services.close()


def start_server(root: Path | None = None, *, populate_store: bool = True, concurrency: int = 4) -> UIServer:
    """Build the app over fresh scripted services and launch it on a free port.

    ``concurrency`` is the queue's default per-event concurrency limit; 4 is what
    ``app.main`` uses, so concurrent requests really overlap as they do in production."""
    import app

    root = Path(root) if root else Path(tempfile.mkdtemp(prefix="cai-ui-"))
    services = make_services(root)
    pop = populate(services, root=root) if populate_store else None
    demo = app.build_app(services)
    port = free_port()
    demo.queue(default_concurrency_limit=concurrency).launch(
        prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, head=app.HEAD, css=app.CSS,
        quiet=True, show_error=True)
    return UIServer(url=f"http://127.0.0.1:{port}/", port=port, root=root, services=services, demo=demo, populated=pop)


if __name__ == "__main__":
    srv = start_server()
    print(f"Constitution Lab (scripted, populated) at {srv.url}  store: {srv.root}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.close()
