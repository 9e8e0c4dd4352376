"""Generate (SL) tab: start an SL run as a background job, watch its progress, cancel,
resume (re-starting the same settings resumes the same run), and the list of runs."""
from __future__ import annotations

import gradio as gr

from .common import fail, job_panel_html, table

__all__ = ["build"]

RUN_COLUMNS = ["id", "status", "model", "generations", "critiques", "revisions", "created_at", "error"]


def build(services) -> None:
    from cai_core.prompt_sets import shipped_prompt_sets

    def runs():
        return table(services.runs_table("sl"), RUN_COLUMNS)

    def start(prompts, constitution, model, rounds, limit, cot, few_shot, seed, max_new_tokens, new_run, candidates=1,
              sentences=0):
        from dataclasses import replace

        from cai_core.runners.sl import SLConfig

        try:
            cfg = SLConfig(rounds=int(rounds), limit=int(limit) if limit else None, cot=bool(cot), few_shot=int(few_shot),
                           seed=int(seed), chunk=8, candidates=int(candidates or 1),
                           revision_sentences=int(sentences or 0))
            cfg = replace(cfg, answer=replace(cfg.answer, max_new_tokens=int(max_new_tokens)),
                          revision=replace(cfg.revision, max_new_tokens=int(max_new_tokens)))
            job_id = services.submit_sl(prompts=prompts, constitution=constitution, config=cfg,
                                        model=(model or "").strip() or None, new_run=bool(new_run))
        except Exception as e:
            raise fail(e)
        return job_id, job_panel_html(services.job_view(job_id))

    def poll(job_id):
        return job_panel_html(services.job_view(job_id)), runs()

    def cancel(job_id):
        if not job_id or not services.cancel_job(job_id):
            raise gr.Error("no running job to cancel")
        return job_panel_html(services.job_view(job_id))

    set_names = sorted({r["name"] for r in services.prompt_sets()} | set(shipped_prompt_sets()))
    with gr.Tab("Generate (SL)"):
        with gr.Row():
            prompts = gr.Dropdown(set_names, value="red-team", label="Prompt set", allow_custom_value=True)
            constitution = gr.Dropdown(sorted(services.constitutions()), value="harmless", label="Constitution")
            model = gr.Textbox(value=services.settings.model, label="Model (embedded, a folder, or a checkpoint id)")
        with gr.Row():
            rounds = gr.Slider(1, 4, value=2, step=1, label="Rounds")
            limit = gr.Number(value=4, precision=0, label="Limit (prompts; 0 = all)")
            few_shot = gr.Slider(0, 4, value=2, step=1, label="Few-shot examples")
            seed = gr.Number(value=0, precision=0, label="Seed")
            max_new = gr.Slider(16, 512, value=160, step=16, label="Max new tokens")
            candidates = gr.Slider(1, 8, value=1, step=1, label="Revision candidates",
                                   info="sampled only when the greedy revision is not an on-topic explained objection; "
                                        "the best is kept")
            sentences = gr.Number(value=0, precision=0, minimum=0, label="Keep first N sentences of each revision",
                                  info="0 = all; a small model's objection and reason come first, the rest drifts")
        with gr.Row():
            cot = gr.Checkbox(label="Chain-of-thought critique")
            new_run = gr.Checkbox(label="Force a new run")
            start_btn = gr.Button("Start (or resume) SL run", variant="primary")
            cancel_btn = gr.Button("Cancel", variant="stop")
        job_id = gr.Textbox(label="Job", interactive=False)
        panel = gr.HTML(job_panel_html(None), label="Progress")
        runs_df = gr.Dataframe(headers=RUN_COLUMNS, value=runs(), label="SL runs", interactive=False)
        timer = gr.Timer(1.0)

        start_btn.click(start, [prompts, constitution, model, rounds, limit, cot, few_shot, seed, max_new, new_run,
                                candidates, sentences],
                        [job_id, panel], api_name="sl_start")
        cancel_btn.click(cancel, [job_id], [panel], api_name="sl_cancel")
        timer.tick(poll, [job_id], [panel, runs_df], api_name="sl_poll", show_progress="hidden")
    return runs, [runs_df]
