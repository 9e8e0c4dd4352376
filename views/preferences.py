"""Preferences tab: comparisons with answers A and B side by side, every judge verdict with
its reasoning, probability, principle and order, the AB/BA flip and the aggregated label."""
from __future__ import annotations

import html

import gradio as gr

from cai_core.types import COMPARISON_SOURCES, JUDGE_MODES

from .render import side_by_side_html, text_block_html, verdict_badge_html

from .common import fail, fmt_p, job_panel_html, short

__all__ = ["build", "detail_html"]

FILTERS = ["all", "disagreement", "low confidence", "unparsed", "audited", "not audited"]
LIST_COLUMNS = ["id", "prompt", "AI label", "P(A)", "confidence", "flips", "unparsed", "label", "label by"]
VERDICT_COLUMNS = ["judge run", "principle", "judge", "mode", "order", "choice", "P(first)", "P(A)", "raw"]


def detail_html(d: dict) -> str:
    c, label = d["comparison"], d["label"]
    head = text_block_html(c["prompt"], label="Prompt")
    pair = side_by_side_html([(f"A ({c.get('model_a') or c['source']})", c["answer_a"]),
                              (f"B ({c.get('model_b') or c['source']})", c["answer_b"])])
    if label is None:
        summary = "<div>No verdicts yet.</div>"
    else:
        human = (f" · human decision <b>{html.escape(label.human.action)}</b> by {html.escape(label.human.author)}"
                 if label.human else "")
        summary = (f"<div class='cai-label'>AI: {verdict_badge_html(label.ai_choice, label.ai_p_a)}{human} · "
                   f"effective label: {verdict_badge_html(label.choice, label.p_a)} "
                   f"(from {html.escape(label.source)})</div>")
    return head + pair + summary


def _jobs(services):
    def start_pairs(set_name, model, limit):
        from cai_core.runners.pairs import PairsConfig

        try:
            job = services.submit_pairs(prompts=set_name, config=PairsConfig(limit=int(limit) or None),
                                        model=(model or "").strip() or None)
        except Exception as e:
            raise fail(e)
        return job, job_panel_html(services.job_view(job))

    def start_judge(cons, mode, k, judge_names):
        from cai_core.runners.judge import JudgeConfig

        try:
            names = [j.strip() for j in (judge_names or "").split(",") if j.strip()] or None
            job = services.submit_judge(constitution=cons, config=JudgeConfig(mode=mode, principles=int(k)), judges=names)
        except Exception as e:
            raise fail(e)
        return job, job_panel_html(services.job_view(job))

    return start_pairs, start_judge


def _browsing(services):
    def listing(filter_, principle, judge, source):
        try:
            rows = services.comparisons_page(filter=filter_, principle=principle or None, judge=judge or None,
                                             source=source or None, limit=500)
        except Exception as e:
            raise fail(e)
        data = [[r["id"], short(r["prompt"], 60), r["ai_choice"] or "", fmt_p(r["ai_p_a"]), fmt_p(r["confidence"]),
                 r["flips"], r["unparsed"], r["label"] or "", r["label_source"]] for r in rows]
        choices = [r["id"] for r in rows]
        return data, gr.update(choices=choices, value=choices[0] if choices else None), f"{len(rows)} comparisons"

    def detail(cid):
        if not cid:
            return "<div>Choose a comparison.</div>", []
        try:
            d = services.comparison_detail(cid)
        except Exception as e:
            raise fail(e)
        verdicts = [[v["run_id"] or "", v["principle_id"], v["judge"], v["mode"], v["ab_order"], v["choice"] or "unparsed",
                     fmt_p(v["p_first"]), fmt_p(v["p_a"]), v["raw"]] for v in d["verdicts"]]
        return detail_html(d), verdicts

    def on_open():
        """What the tab shows when the page opens: the filter choices and the listing."""
        data, cid, count = listing("all", "", "", "")
        return (gr.update(choices=[""] + services.principle_ids()), gr.update(choices=[""] + services.judge_ids()),
                data, cid, count)

    return listing, detail, on_open


def build(services) -> None:
    listing, detail, on_open = _browsing(services)
    start_pairs, start_judge = _jobs(services)
    with gr.Tab("Preferences"):
        with gr.Row():
            filter_ = gr.Dropdown(FILTERS, value="all", label="Show")
            principle = gr.Dropdown([""], value="", label="Principle", allow_custom_value=True)
            judge = gr.Dropdown([""], value="", label="Judge", allow_custom_value=True)
            source = gr.Dropdown(["", *COMPARISON_SOURCES], value="", label="Source")
            list_btn = gr.Button("List", scale=0)
        count = gr.Textbox(label="Found", interactive=False)
        rows = gr.Dataframe(headers=LIST_COLUMNS, label="Comparisons (AI label: each one's latest judge run)",
                            interactive=False)
        cid = gr.Dropdown([], label="Comparison")
        detail_out = gr.HTML("<div>Choose a comparison.</div>", label="Comparison")
        verdicts = gr.Dataframe(headers=VERDICT_COLUMNS, label="Verdicts (raw text kept for every one)",
                                interactive=False, wrap=True)
        with gr.Accordion("Make comparisons and judge them (background jobs)", open=False):
            with gr.Row():
                pairs_set = gr.Dropdown(["red-team", "benign"], value="red-team", label="Prompt set (train split)",
                                        allow_custom_value=True)
                pairs_model = gr.Textbox(value="", label="Sample from model (empty: the latest SFT checkpoint, else base)")
                pairs_limit = gr.Number(value=8, precision=0, label="Prompts")
                pairs_btn = gr.Button("Sample pairs")
            with gr.Row():
                judge_cons = gr.Dropdown(sorted(services.constitutions()), value="harmless", label="Constitution")
                judge_mode = gr.Radio(list(JUDGE_MODES), value="logprob", label="Mode")
                judge_k = gr.Slider(1, 4, value=1, step=1, label="Principles per comparison")
                judges = gr.Textbox(value="base", label="Judges (comma-separated)")
                judge_btn = gr.Button("Judge the latest pairs")
            job_id = gr.Textbox(label="Job", interactive=False)
            panel = gr.HTML(job_panel_html(None), label="Progress")
            timer = gr.Timer(2.0)

        pairs_btn.click(start_pairs, [pairs_set, pairs_model, pairs_limit], [job_id, panel], api_name="pairs_start")
        judge_btn.click(start_judge, [judge_cons, judge_mode, judge_k, judges], [job_id, panel], api_name="judge_start")
        timer.tick(lambda j: job_panel_html(services.job_view(j) if j else None), [job_id], [panel],
                   api_name="preferences_poll", show_progress="hidden")
        list_btn.click(listing, [filter_, principle, judge, source], [rows, cid, count], api_name="preferences_list")
        cid.change(detail, [cid], [detail_out, verdicts], api_name="preferences_detail")
    return on_open, [principle, judge, rows, cid, count]
