"""Small helpers every tab uses: the job progress panel, tables, error messages.
No logic about the method lives here (that is cai_core's)."""
from __future__ import annotations

import html

import gradio as gr

__all__ = ["job_panel_html", "table", "fail", "short", "fmt_p"]


def fail(e: Exception) -> gr.Error:
    """A clean message for the person (never a stack trace)."""
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    return gr.Error(str(msg)[:2000])


def short(text: str | None, n: int = 90) -> str:
    t = " ".join((text or "").split())
    return t if len(t) <= n else t[: n - 1] + "…"


def fmt_p(p: float | None) -> str:
    return "" if p is None else f"{p:.2f}"


def _cell(v):
    if v is None:
        return ""
    if hasattr(v, "isoformat"):  # timestamps: the Dataframe cannot serialise datetime objects
        return v.isoformat(sep=" ", timespec="seconds")
    return v


def table(rows: list[dict], columns: list[str]) -> list[list]:
    return [[_cell(r.get(c)) for c in columns] for r in rows]


def job_panel_html(view: dict | None) -> str:
    """Progress bar + status + last log lines for one background job (all text escaped)."""
    if not view:
        return "<div class='cai-job'>No job started yet.</div>"
    pct = int(round(100 * view["fraction"]))
    colour = {"finished": "#2e7d32", "failed": "#c62828", "cancelled": "#6d6d6d"}.get(view["status"], "#1565c0")
    log = "<br>".join(html.escape(line) for line in view["log"][-8:])
    err = f"<div style='color:#c62828'>{html.escape(view['error'])}</div>" if view.get("error") else ""
    run = f" · run <code>{html.escape(view['run_id'])}</code>" if view.get("run_id") else ""
    return (
        f"<div class='cai-job' data-status='{html.escape(view['status'])}'>"
        f"<div><b>{html.escape(view['title'])}</b> — <span class='cai-job-status'>{html.escape(view['status'])}</span>"
        f" · {view['done']}/{view['total']} {html.escape(view['what'] or '')} · {view['elapsed_s']} s{run}</div>"
        f"<div style='background:#e0e0e0;border-radius:4px;height:14px;margin:6px 0'>"
        f"<div class='cai-progress' style='width:{pct}%;background:{colour};height:14px;border-radius:4px'></div></div>"
        f"{err}<div style='font-family:monospace;font-size:12px;color:#444'>{log}</div></div>"
    )
