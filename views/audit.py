"""Audit tab: a spot-audit queue (random, stratified by principle, disagreement first, or the
least reliable AI labels first),
keyboard-friendly accept / A / B / tie / skip with an optional reason, undo, and plots of
AI–human agreement (κ overall, per principle, per judge), position flips, calibration and
label counts over time. Every action is appended to DuckDB with its author and time."""
from __future__ import annotations

import html

import gradio as gr

from cai_core.types import QUEUE_STRATEGIES

from .plots import agreement_figure, calibration_figure, judge_agreement_figure, label_counts_figure
from .render import side_by_side_html, text_block_html, verdict_badge_html

from . import answer_labels
from .common import fail

__all__ = ["build", "HEAD_JS"]

# Keys work when the focus is not in a text field: 1 accept, a/b choose, t tie, s skip, u undo, n next.
HEAD_JS = """
<script>
document.addEventListener('keydown', (e) => {
  const t = e.target; if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const ids = {'1': 'audit-accept', 'a': 'audit-a', 'b': 'audit-b', 't': 'audit-tie', 's': 'audit-skip',
               'u': 'audit-undo', 'n': 'audit-next'};
  const id = ids[e.key.toLowerCase()]; if (!id) return;
  const el = document.getElementById(id); if (el) { e.preventDefault(); el.click(); }
});
</script>
"""


def _item_html(item) -> str:
    if item is None:
        return "<div class='cai-empty'>The queue is empty: nothing left to audit with these settings.</div>"
    reasons = html.escape(item.reason)
    principles = ", ".join(html.escape(p) for p in item.principles)
    return (text_block_html(item.prompt, label="Prompt")
            + side_by_side_html([("A", item.answer_a), ("B", item.answer_b)])
            + f"<div class='cai-ai'>AI says {verdict_badge_html(item.choice, item.p_a)} · principles: {principles}"
            + f" · in the queue because: <i>{reasons}</i></div>")


def _handlers(services):
    """next, act, stats: what the Audit tab's events call."""
    def author_of(author, request: gr.Request | None):
        name = (author or "").strip() or (getattr(request, "username", None) or "")
        if not name:
            raise gr.Error("type your name first (every audit records its author)")
        return name

    def next_item(author, strategy, principle, request: gr.Request):
        who = author_of(author, request)
        try:
            items = services.audit_queue(strategy=strategy, author=who, limit=1, principle=principle or None)
        except Exception as e:
            raise fail(e)
        item = items[0] if items else None
        return _item_html(item), (item.comparison_id if item else "")

    def act(action, author, cid, reason, strategy, principle, request: gr.Request):
        who = author_of(author, request)
        if not cid and action != "undo":
            raise gr.Error("no comparison on screen: press Next")
        try:
            if action == "undo":
                standing = services.standing_audits(author=who)  # already-undone actions are not undone twice
                if not standing:
                    raise gr.Error("nothing to undo")
                last = standing[-1]["comparison_id"]
                services.record_audit(last, author=who, action="undo")
                status = f"undid your last action on {last}"
            else:
                services.record_audit(cid, author=who, action=action, reason=(reason or "").strip() or None)
                status = f"recorded {action} on {cid}"
        except gr.Error:
            raise
        except Exception as e:
            raise fail(e)
        item_html, next_cid = next_item(who, strategy, principle, request)
        return item_html, next_cid, "", status

    def stats():
        try:
            rep = services.agreement()
            counts = services.label_counts("hour")
        except Exception as e:
            raise fail(e)
        kappa = "—" if rep.kappa is None else f"{rep.kappa:.2f}"
        rate = "—" if rep.agreement is None else f"{100 * rep.agreement:.0f} %"
        flip = "—" if rep.flip_rate is None else f"{100 * rep.flip_rate:.0f} %"
        summary = (f"audited comparisons: {rep.n} · agreement {rate} · Cohen's κ {kappa} · "
                   f"position flips {flip} · unparsed verdicts {rep.unparsed}")
        return (summary, agreement_figure(rep), judge_agreement_figure(rep), calibration_figure(rep),
                label_counts_figure(counts, "hour"))

    return next_item, act, stats


def build(services) -> None:
    next_item, act, stats = _handlers(services)

    with gr.Tab("Audit"):
        with gr.Row():
            author = gr.Textbox(label="Your name", scale=1)
            strategy = gr.Radio(list(QUEUE_STRATEGIES), value="disagreement", label="Queue",
                                info="uncertain: least reliable AI labels first (entropy, flips, principles disagreeing)")
            principle = gr.Textbox(label="Only this principle (id)", scale=1)
            next_btn = gr.Button("Next (n)", elem_id="audit-next", scale=0)
        cid = gr.Textbox(label="Comparison id", interactive=False)
        item = gr.HTML("<div>Type your name and press Next.</div>", label="Item")
        reason = gr.Textbox(label="Reason (optional)")
        with gr.Row():
            accept = gr.Button("Accept AI label (1)", elem_id="audit-accept", variant="primary")
            choose_a = gr.Button("A is better (a)", elem_id="audit-a")
            choose_b = gr.Button("B is better (b)", elem_id="audit-b")
            tie = gr.Button("Tie (t)", elem_id="audit-tie")
            skip = gr.Button("Skip (s)", elem_id="audit-skip")
            undo = gr.Button("Undo (u)", elem_id="audit-undo", variant="stop")
        status = gr.Textbox(label="Last action", interactive=False)
        gr.Markdown("Keys (outside text fields): **1** accept · **a** / **b** choose · **t** tie · **s** skip · **u** undo · **n** next")
        stats_btn = gr.Button("Refresh agreement plots")
        summary = gr.Textbox(label="Agreement", interactive=False)
        with gr.Row():
            p1 = gr.Plot(label="Agreement by principle")
            p2 = gr.Plot(label="Agreement by judge")
        with gr.Row():
            p3 = gr.Plot(label="Calibration of P(A)")
            p4 = gr.Plot(label="Labels over time")

        inputs = [author, cid, reason, strategy, principle]
        outs = [item, cid, reason, status]
        next_btn.click(next_item, [author, strategy, principle], [item, cid], api_name="audit_next")
        def handler_for(action):
            def handler(author, cid, reason, strategy, principle, request: gr.Request):
                return act(action, author, cid, reason, strategy, principle, request)
            return handler

        for btn, action in ((accept, "accept"), (choose_a, "A"), (choose_b, "B"), (tie, "tie"), (skip, "skip"), (undo, "undo")):
            name = f"audit_{action.lower()}"
            btn.click(handler_for(action), inputs, outs, api_name=name).then(
                stats, [], [summary, p1, p2, p3, p4], api_name=f"{name}_refresh_plots")
        stats_btn.click(stats, [], [summary, p1, p2, p3, p4], api_name="audit_stats")
        answer_labels.build(services, author)
    return stats, [summary, p1, p2, p3, p4]
