"""`cai app`: the Gradio app over the same facade (the same flags as `python app.py`)."""
from __future__ import annotations

import os


def add_arguments(p) -> None:
    """The app's own flags (besides the global options); app.py's parser adds the same."""
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; anything else requires --auth)")
    p.add_argument("--port", type=int, default=None, help="port (default $GRADIO_SERVER_PORT or 7860)")
    p.add_argument("--auth", help="USER:PASSWORD required to log in (needed for a shared host); or set CAI_APP_AUTH")


def register(sub, common) -> None:
    p = sub.add_parser("app", parents=[common], help="start the Gradio app",
                       description="Start the Gradio app on 127.0.0.1 (a shared host needs --auth).")
    add_arguments(p)
    p.set_defaults(run=run)


def auth_of(text: str | None, host: str) -> tuple[str, str] | None:
    """(user, password) from --auth or CAI_APP_AUTH; a host other than loopback requires one."""
    text = text or os.environ.get("CAI_APP_AUTH")
    if host not in ("127.0.0.1", "localhost", "::1") and not text:
        raise ValueError("a shared host needs a login: pass --auth USER:PASSWORD (or set CAI_APP_AUTH)")
    if not text:
        return None
    if ":" not in text:
        raise ValueError("--auth takes USER:PASSWORD")
    user, password = text.split(":", 1)
    return user, password


def port_of(port: int | None) -> int:
    return int(port if port is not None else os.environ.get("GRADIO_SERVER_PORT", 7860))


def run(args, services) -> int:
    from app import serve

    return serve(services, host=args.host, port=port_of(args.port), auth=auth_of(args.auth, args.host)) or 0
