"""Constitution Lab app: ``build_app(services)`` assembles the tabs from ``views/``;
``main()`` parses flags and launches (127.0.0.1 unless told otherwise; a shared host needs a login)."""
from __future__ import annotations

import argparse
import sys

import gradio as gr

from cai_core.background import JobManager
from cai_core.services import Services
from views import audit, compare, constitutions, critique, generate, overview, preferences, prompts, train

__all__ = ["build_app", "serve", "main", "HEAD", "CSS"]

HEAD = audit.HEAD_JS
CSS = """
.cai-text { border: 1px solid #ddd; border-radius: 6px; padding: 8px; margin: 4px 0; }
.cai-del { background: #ffebee; text-decoration: line-through; }
.cai-ins { background: #e8f5e9; }
"""


def build_app(services: Services) -> gr.Blocks:
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


def serve(services: Services, *, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None) -> int:
    """Open the database (a second writer fails here, with a clear message) and launch."""
    services.store
    build_app(services).queue(default_concurrency_limit=4).launch(
        server_name=host, server_port=port, auth=auth, head=HEAD, css=CSS, footer_links=["api"])
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python app.py``: the same flags as ``cai app`` (global options included)."""
    from cai_core.cli.commands.app import add_arguments, auth_of, port_of
    from cai_core.cli.options import global_options, settings_from
    from cai_core.store import StoreLocked

    p = argparse.ArgumentParser(prog="app.py", parents=[global_options()], description="Start the Constitution Lab app.")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        auth = auth_of(args.auth, args.host)
        services = Services(settings_from(args), JobManager())
        return serve(services, host=args.host, port=port_of(args.port), auth=auth)
    except (ValueError, StoreLocked) as e:
        p.exit(2, f"app.py: error: {e}\n")


if __name__ == "__main__":
    sys.exit(main())
