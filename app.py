"""Constitution Lab app: ``build_app(services)`` assembles the tabs from ``views/``;
``main()`` parses flags and launches (127.0.0.1 unless told otherwise; a shared host needs a login)."""
from __future__ import annotations

import argparse
import os
import sys

import gradio as gr

from cai_core.app_services import AppServices
from cai_core.config import load_settings
from views import audit, compare, constitutions, critique, generate, overview, preferences, prompts, train

__all__ = ["build_app", "main", "HEAD", "CSS"]

HEAD = audit.HEAD_JS
CSS = """
.cai-text { border: 1px solid #ddd; border-radius: 6px; padding: 8px; margin: 4px 0; }
.cai-del { background: #ffebee; text-decoration: line-through; }
.cai-ins { background: #e8f5e9; }
"""


def build_app(services: AppServices) -> gr.Blocks:
    # No analytics: the app must not call home (nor wait on a network it may not have).
    with gr.Blocks(title="Constitution Lab", analytics_enabled=False) as demo:
        gr.Markdown("# Constitution Lab\nConstitutional AI end to end — every AI judgement auditable.")
        loaders = [
            constitutions.build(services),
            prompts.build(services),
            generate.build(services),
            critique.build(services),
            preferences.build(services),
            audit.build(services),
            train.build(services),
            compare.build(services),
            overview.build(services),
        ]
        names = ["constitutions", "prompts", "generate", "critique", "preferences", "audit", "train", "compare", "overview"]
        for name, (fn, outputs) in zip(names, loaders):
            demo.load(fn, outputs=outputs, api_name=f"load_{name}")
    return demo


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="app.py", description="Start the Constitution Lab app.")
    p.add_argument("--db", help="DuckDB file (default ./cai.duckdb or $CAI_DB)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; anything else requires --auth)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--auth", help="USER:PASSWORD required to log in (needed for a shared host); "
                                  "or set CAI_APP_AUTH")
    p.add_argument("--model", help="default model (embedded, a folder, a checkpoint id)")
    p.add_argument("--backend", choices=["local", "openai", "scripted"])
    p.add_argument("--base-url", help="OpenAI-compatible endpoint for --backend openai")
    p.add_argument("--settings", help="settings file (default ./cai.toml when present)")
    args = p.parse_args(argv)
    auth_text = args.auth or os.environ.get("CAI_APP_AUTH")
    if args.host not in ("127.0.0.1", "localhost", "::1") and not auth_text:
        p.error("a shared host needs a login: pass --auth USER:PASSWORD (or set CAI_APP_AUTH)")
    auth = None
    if auth_text:
        if ":" not in auth_text:
            p.error("--auth takes USER:PASSWORD")
        auth = tuple(auth_text.split(":", 1))
    settings = load_settings(args.settings, db=args.db, model=args.model, backend=args.backend, base_url=args.base_url)
    services = AppServices(settings)
    from cai_core.store import StoreLocked

    try:
        services.store  # open the database now: a second writer fails here with a clear message
    except StoreLocked as e:
        p.exit(2, f"app.py: error: {e}\n")
    build_app(services).queue(default_concurrency_limit=4).launch(
        server_name=args.host, server_port=args.port, auth=auth, head=HEAD, css=CSS, footer_links=["api"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
