"""Compare tab: one prompt sent to several models side by side (free-form chat), and the
before/after evaluation report (win rates with intervals, comply / objection / evasive)."""
from __future__ import annotations

import gradio as gr

from .plots import response_rates_figure, win_rate_figure
from .render import side_by_side_html

from .common import fail, job_panel_html

__all__ = ["build"]


def _models(text: str) -> list[str]:
    return [m.strip() for m in (text or "").split(",") if m.strip()]


def build(services) -> None:
    def chat(models, prompt, max_new):
        names = _models(models)
        if not names:
            raise gr.Error("name at least one model")
        try:
            answers = services.chat(names, prompt, max_new_tokens=int(max_new))
        except Exception as e:
            raise fail(e)
        return side_by_side_html(list(answers.items()))

    def evaluate(models, prompts, offset, limit, max_new):
        from cai_core.backends.base import GenerationParams
        from cai_core.runners.compare import CompareConfig

        try:
            cfg = CompareConfig(limit=int(limit) if limit else None, offset=int(offset or 0),
                                params=GenerationParams(max_new_tokens=int(max_new), repetition_penalty=1.1))
            job_id = services.submit_compare(models=_models(models), prompts=prompts, constitution="harmless", config=cfg)
        except Exception as e:
            raise fail(e)
        return job_id, job_panel_html(services.job_view(job_id))

    def report():
        rep = services.latest_report()
        if rep is None:
            return "No evaluation yet.", win_rate_figure({}), response_rates_figure({})
        return rep["markdown"], win_rate_figure(rep["report"]), response_rates_figure(rep["report"])

    def poll(job_id):
        view = services.job_view(job_id) if job_id else None
        return job_panel_html(view)

    with gr.Tab("Compare"):
        gr.Markdown("Model names: `base` (the embedded model), `sft`, `rl`, a checkpoint id, or a model folder.")
        with gr.Row():
            models = gr.Textbox(value="base", label="Models (comma-separated)")
            max_new = gr.Slider(16, 512, value=128, step=16, label="Max new tokens")
        prompt = gr.Textbox(label="Prompt", lines=2)
        send = gr.Button("Send to every model", variant="primary")
        answers = gr.HTML("<div>Answers appear here, side by side.</div>", label="Answers")
        with gr.Accordion("Evaluation: held-out prompts, judged pairwise", open=True):
            with gr.Row():
                eval_models = gr.Textbox(value="base,sft", label="Models to evaluate")
                eval_prompts = gr.Dropdown(["red-team", "benign"], value="red-team", label="Prompt set",
                                           allow_custom_value=True)
                offset = gr.Number(value=80, precision=0, label="Offset (skip training prompts)")
                limit = gr.Number(value=8, precision=0, label="Prompts")
            with gr.Row():
                run_eval = gr.Button("Run evaluation")
                show = gr.Button("Show latest report")
            job_id = gr.Textbox(label="Job", interactive=False)
            panel = gr.HTML(job_panel_html(None), label="Progress")
            report_txt = gr.Textbox(label="Report", lines=14, interactive=False)
            with gr.Row():
                wins = gr.Plot(label="Win rates")
                rates = gr.Plot(label="Comply / objection / evasive")
        timer = gr.Timer(2.0)

        send.click(chat, [models, prompt, max_new], [answers], api_name="compare_chat")
        prompt.submit(chat, [models, prompt, max_new], [answers], api_name="compare_chat_submit")
        run_eval.click(evaluate, [eval_models, eval_prompts, offset, limit, max_new], [job_id, panel], api_name="compare_run")
        show.click(report, [], [report_txt, wins, rates], api_name="compare_report")
        timer.tick(poll, [job_id], [panel], api_name="compare_poll", show_progress="hidden")
    return report, [report_txt, wins, rates]
