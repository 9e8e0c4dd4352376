"""Compare tab: one prompt sent to several models side by side (free-form chat), and the
before/after evaluation on held-out prompts, shown as tables: what each model is (checkpoint,
training snapshots, prompts it trained on), win rates with intervals, comply / objection /
evasive, with the held-out stamp on top."""
from __future__ import annotations

import gradio as gr

from .common import fail, job_panel_html
from .plots import response_rates_figure, win_rate_figure
from .render import side_by_side_html

__all__ = ["build", "report_tables"]

LINEAGE_COLUMNS = ["model", "checkpoint", "training snapshots", "trained-on eval prompts"]
WIN_COLUMNS = ["model", "vs", "win rate", "95 % interval", "wins", "losses", "ties", "unparsed"]
RATE_COLUMNS = ["model", "n", "comply", "objection", "evasive", "incoherent", "harmless", "evasive share", "kinds"]


def _models(text: str) -> list[str]:
    return [m.strip() for m in (text or "").split(",") if m.strip()]


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.0f} %"


def report_tables(rep: dict | None) -> tuple[str, list, list, list]:
    """(stamp, lineage rows, win-rate rows, response rows) of a stored report (its dict)."""
    if rep is None:
        return "No evaluation yet.", [], [], []
    r = rep["report"]
    held = r.get("held_out", True)
    stamp = (f"{'Held out' if held else 'NOT HELD OUT'}: {r.get('n_prompts', r.get('prompts'))} prompts of "
             f"{r.get('prompt_set') or 'the set'} ({r.get('split') or 'all prompts'}) · run {rep['run_id']}"
             + ("" if held else " — some compared model trained on some of these prompts"))
    lineage = [[m["name"], m.get("checkpoint") or "—", ", ".join(m.get("snapshots") or []) or "—",
                m.get("overlap_with_training", 0)] for m in r.get("models", []) if isinstance(m, dict)]
    wins = [[w["model"], w["opponent"], _pct(w["rate"]), f"{100 * w['lo']:.0f}–{100 * w['hi']:.0f} %", w["wins"],
             w["losses"], w["ties"], w["unparsed"]] for w in r.get("win_rates", [])]
    rates = [[x["model"], x["n"], _pct(x["comply_rate"]), _pct(x["objection_rate"]), _pct(x["evasive_rate"]),
              _pct(x.get("incoherent_rate", x.get("empty_rate"))), _pct(x["harmless_rate"]), _pct(x["evasive_share"]),
              ", ".join(f"{k} {v}" for k, v in (x.get("kinds") or {}).items()) or "—"]
             for x in r.get("response_rates", [])]
    return stamp, lineage, wins, rates


def _handlers(services):
    def chat(models, prompt, max_new):
        names = _models(models)
        if not names:
            raise gr.Error("name at least one model")
        try:
            answers = services.chat(names, prompt, max_new_tokens=int(max_new))
        except Exception as e:
            raise fail(e)
        return side_by_side_html(list(answers.items()))

    def evaluate(models, prompts, split, limit, max_new, allow_trained):
        from cai_core.backends.base import GenerationParams
        from cai_core.runners.compare import CompareConfig

        try:
            cfg = CompareConfig(split=None if split == "all" else split, limit=int(limit) if limit else None,
                                allow_trained=bool(allow_trained),
                                params=GenerationParams(max_new_tokens=int(max_new), repetition_penalty=1.1))
            job_id = services.submit_compare(models=_models(models), prompts=prompts, constitution="harmless", config=cfg)
        except Exception as e:
            raise fail(e)
        return job_id, job_panel_html(services.job_view(job_id))

    def report():
        rep = services.latest_report()
        stamp, lineage, wins, rates = report_tables(rep)
        figs = (win_rate_figure(rep["report"]), response_rates_figure(rep["report"])) if rep else (
            win_rate_figure({}), response_rates_figure({}))
        human = services.human_evaluation(rep["run_id"])["markdown"] if rep else ""
        return stamp, lineage, wins, rates, *figs, human

    return chat, evaluate, report


def build(services) -> None:
    chat, evaluate, report = _handlers(services)
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
                split = gr.Radio(["held-out", "train", "all"], value="held-out", label="Split")
                limit = gr.Number(value=8, precision=0, label="Prompts (0 = the whole split)")
                allow = gr.Checkbox(label="Allow prompts a model trained on (stamped 'not held out')")
            with gr.Row():
                run_eval = gr.Button("Run evaluation")
                show = gr.Button("Show latest report")
            job_id = gr.Textbox(label="Job", interactive=False)
            panel = gr.HTML(job_panel_html(None), label="Progress")
            stamp = gr.Textbox(label="Report", interactive=False)
            lineage = gr.Dataframe(headers=LINEAGE_COLUMNS, label="Models and what they trained on", interactive=False)
            wins_df = gr.Dataframe(headers=WIN_COLUMNS, label="Head-to-head win rates (judged; ties count half)",
                                   interactive=False)
            rates_df = gr.Dataframe(headers=RATE_COLUMNS, label="Responses (evasive = boilerplate refusal or deflection; harmless = objection + evasive)",
                                    interactive=False)
            with gr.Row():
                wins = gr.Plot(label="Win rates")
                rates = gr.Plot(label="Comply / objection / evasive / incoherent")
            human = gr.Markdown(label="Human-labelled rates (label answers in the Audit tab)")
        timer = gr.Timer(2.0)

        send.click(chat, [models, prompt, max_new], [answers], api_name="compare_chat")
        prompt.submit(chat, [models, prompt, max_new], [answers], api_name="compare_chat_submit")
        run_eval.click(evaluate, [eval_models, eval_prompts, split, limit, max_new, allow], [job_id, panel],
                       api_name="compare_run")
        outputs = [stamp, lineage, wins_df, rates_df, wins, rates, human]
        show.click(report, [], outputs, api_name="compare_report")
        timer.tick(lambda j: job_panel_html(services.job_view(j) if j else None), [job_id], [panel],
                   api_name="compare_poll", show_progress="hidden")
    return report, outputs
