"""Critique → Revision tab: for a prompt of an SL run, the first answer, then each round's
principle, critique and revision, with a word-level diff between consecutive answers."""
from __future__ import annotations

import html

import gradio as gr

from .render import text_block_html, word_diff_html

from .common import fail, short, table

__all__ = ["build", "chain_html", "candidates_html"]


def candidates_html(cands: list[dict]) -> str:
    """The revision candidates a round searched, in order, with the scorer's reading of each and
    which one was kept (collapsed: the kept revision is shown above)."""
    kept = next((c for c in cands if c["kept"]), None)
    good = sum(bool(c["acceptable"]) for c in cands)
    summary = (f"{len(cands)} revision candidate{'s' if len(cands) != 1 else ''} searched, {good} acceptable"
               + (f"; kept #{int(kept['idx'])}" if kept else ""))
    blocks = []
    for c in cands:
        rel = "n/a" if c["relevance"] is None else f"{c['relevance']:.2f}"
        how = "greedy" if c["idx"] == 0 else f"sampled at T={c['temperature']:g}"
        label = (f"#{int(c['idx'])} ({how}) · {c['kind']} · relevance {rel} · score {c['score']:.2f}"
                 + (" · acceptable" if c["acceptable"] else "") + (" · KEPT" if c["kept"] else ""))
        blocks.append(text_block_html(c["text"], label=label, flags=c["flags"]))
    return (f"<details class='cai-candidates'><summary>{html.escape(summary)}</summary>"
            + "\n".join(blocks) + "</details>")


def chain_html(chain: dict) -> str:
    """All model and prompt text escaped; only our own markup is HTML."""
    parts = [text_block_html(chain["prompt"], label="Prompt"),
             text_block_html(chain["first"] or "", label="First answer", flags=chain["first_flags"])]
    previous = chain["first"] or ""
    for r in chain["rounds"]:
        parts.append(f"<h4 class='cai-round'>Round {int(r['round'])} — principle <code>{html.escape(r['principle_id'])}</code>"
                     f"{' (chain of thought)' if r['cot'] else ''}</h4>")
        parts.append(text_block_html(r["critique_request"], label="Critique request"))
        parts.append(text_block_html(r["critique"], label="Critique", flags=r["critique_flags"]))
        if r["revision"] is not None:
            parts.append(text_block_html(r["revision_request"], label="Revision request"))
            parts.append(text_block_html(r["revision"], label="Revision", flags=r["revision_flags"]))
            if r.get("candidates"):
                parts.append(candidates_html(r["candidates"]))
            parts.append("<div class='cai-diff-label'><b>Changes from the previous answer</b></div>"
                         f"<div class='cai-diff'>{word_diff_html(previous, r['revision'])}</div>")
            previous = r["revision"]
    return "\n".join(parts)


def build(services) -> None:
    def run_ids():
        return [r["id"] for r in services.runs_table("sl")]

    def list_prompts(run_id, principle, flagged_only):
        if not run_id:
            return [], gr.update(choices=[])
        try:
            rows = services.sl_prompts(run_id, principle=principle or None, flagged_only=bool(flagged_only))
        except Exception as e:
            raise fail(e)
        data = [[r["position"], short(r["text"], 80), r["rounds"] or 0, r["principles"] or "", r["flagged"]] for r in rows]
        choices = [(f"#{r['position']} {short(r['text'], 60)}", r["id"]) for r in rows]
        return data, gr.update(choices=choices, value=choices[0][1] if choices else None)

    def show(run_id, prompt_id):
        if not run_id or not prompt_id:
            return "<div>Choose a run and a prompt.</div>"
        try:
            return chain_html(services.sl_chain(run_id, prompt_id))
        except Exception as e:
            raise fail(e)

    def refresh_runs():
        ids = run_ids()
        run_id = ids[0] if ids else None
        rows, prompt_update = list_prompts(run_id, "", False)
        return gr.update(choices=ids, value=run_id), rows, prompt_update

    with gr.Tab("Critique → Revision"):
        with gr.Row():
            run = gr.Dropdown(run_ids(), label="SL run")
            refresh = gr.Button("Refresh runs", scale=0)
            principle = gr.Textbox(label="Principle filter (id)")
            flagged = gr.Checkbox(label="Flagged outputs only")
            list_btn = gr.Button("List prompts", scale=0)
        prompts = gr.Dataframe(headers=["position", "prompt", "rounds", "principles", "flagged"], label="Prompts in the run",
                               interactive=False)
        prompt = gr.Dropdown([], label="Prompt")
        chain = gr.HTML("<div>Choose a run and a prompt.</div>", label="Critique → revision chain")

        refresh.click(refresh_runs, [], [run, prompts, prompt], api_name="critique_runs")
        list_btn.click(list_prompts, [run, principle, flagged], [prompts, prompt], api_name="critique_prompts")
        run.change(list_prompts, [run, principle, flagged], [prompts, prompt], api_name="critique_run_select")
        prompt.change(show, [run, prompt], [chain], api_name="critique_chain")
    return refresh_runs, [run, prompts, prompt]
