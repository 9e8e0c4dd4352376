"""Constitution Lab app: ``build_app(services)`` assembles the tabs from ``views/``;
``main()`` parses flags and launches (127.0.0.1 unless told otherwise)."""
from __future__ import annotations

import argparse
import os
import sys

import gradio as gr

from cai_core.config import load_settings
from cai_core.services import Services
from views import overview

__all__ = ["build_app", "main"]


def build_app(services: Services) -> gr.Blocks:
    with gr.Blocks(title="Constitution Lab") as demo:
        gr.Markdown("# Constitution Lab\nConstitutional AI end to end — every AI judgement auditable.")
        refresh, outputs = overview.build(services)
        demo.load(refresh, outputs=outputs, api_name=False)
    return demo


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="app.py", description="Start the Constitution Lab app.")
    p.add_argument("--db", help="DuckDB file (default ./cai.duckdb or $CAI_DB)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; anything else requires --auth)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--auth", help="USER:PASSWORD required to log in (needed for a shared host)")
    p.add_argument("--config", help="settings file (default ./cai.toml when present)")
    args = p.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.auth:
        p.error("a shared host needs a login: pass --auth USER:PASSWORD")
    services = Services(load_settings(args.config, db=args.db))
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    build_app(services).queue().launch(server_name=args.host, server_port=args.port, auth=auth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
