"""Preferences tab: comparisons with answers A and B side by side, every judge verdict with
its reasoning, probability, principle and order, the AB/BA flip and the aggregated label; and
judge validation: a judge's accuracy against gold labels, its flip rate and reliability."""
from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from cai_core.gold.metrics import CHANCE, MAX_FLIP_RATE
from cai_core.types import COMPARISON_SOURCES, DEFAULT_JUDGE_MODE, JUDGE_MODES

from .render import side_by_side_html, text_block_html, verdict_badge_html

from .common import fail, fmt_p, job_panel_html, short
from .plots import reliability_figure

__all__ = ["build", "detail_html", "validation_rows", "validation_summary"]

FILTERS = ["all", "disagreement", "low confidence", "unparsed", "audited", "not audited"]
LIST_COLUMNS = ["id", "prompt", "AI label", "P(A)", "confidence", "flips", "unparsed", "label", "label by"]
VERDICT_COLUMNS = ["judge run", "principle", "judge", "mode", "order", "choice", "P(first)", "P(A)", "raw"]
VALIDATION_COLUMNS = ["judge", "mode", "gold", "split", "n", "accuracy [95 % CI]", "AB accuracy", "BA accuracy",
                      "flip rate", "Brier", "run id"]
VALIDATION_SPLITS = ["test", "tune", "all"]
ENDED = ("finished", "failed", "cancelled")


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


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.1%}"


def validation_rows(validations: list[dict]) -> list[list]:
    """The results table: one row per validation (newest first), accuracy with its interval."""
    out = []
    for v in validations:
        m = v.get("metrics") or {}
        by_order = m.get("accuracy_by_order") or {}
        ci = f" [{_pct(v['ci_lo'])}, {_pct(v['ci_hi'])}]" if v.get("ci_lo") is not None else ""
        out.append([v["judge"], v["mode"], v["gold"], v["split"], v["n"], _pct(v.get("accuracy")) + ci,
                    _pct(by_order.get("AB")), _pct(by_order.get("BA")), _pct(v.get("flip_rate")),
                    "—" if v.get("brier") is None else f"{v['brier']:.3f}", v["run_id"]])
    return out


def _code(text: object) -> str:
    """Store text (a judge id, a gold set's name) as a Markdown code span: shown, never rendered."""
    return "`" + str(text).replace("`", "'") + "`"


def validation_summary(validations: list[dict]) -> str:
    """For the newest validation, in plain words: is it better than chance, does it follow position."""
    if not validations:
        return "No validations yet: choose a gold set and press **Validate**."
    v = validations[0]
    lo, hi, flip = v.get("ci_lo"), v.get("ci_hi"), v.get("flip_rate")
    head = f"**Newest:** {_code(v['judge'])} ({v['mode']}) on {_code(v['gold'])}/{v['split']}, n = {v['n']}: "
    if lo is None or hi is None or v.get("accuracy") is None:
        chance = "no pair was scored, so its accuracy is unknown."
    else:
        acc = f"accuracy {_pct(v['accuracy'])} [{_pct(lo)}, {_pct(hi)}]"
        if hi < CHANCE:
            chance = f"{acc}. Its 95 % interval lies below 50 %: **worse than chance**."
        elif lo <= CHANCE:
            chance = f"{acc}. Its 95 % interval includes 50 %: **no better than chance**."
        else:
            chance = f"{acc}. Its 95 % interval excludes 50 %: better than chance."
    if flip is None:
        position = "Flip rate unknown (no pair has a choice in both orders)."
    elif flip > MAX_FLIP_RATE:
        position = f"Flip rate {_pct(flip)} exceeds 50 %: **follows position** (its choice flips when A and B swap)."
    else:
        position = f"Flip rate {_pct(flip)} does not exceed 50 %: it does not follow position."
    return f"{head}{chance} {position}"


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


def _validation(services):
    def results():
        try:
            vs = services.validations(limit=50)
        except Exception as e:
            raise fail(e)
        return validation_rows(vs), validation_summary(vs), reliability_figure(vs)

    def start_validate(gold, split, modes, limit):
        from cai_core.runners.validate import ValidateConfig

        gold = (gold or "").strip()
        if not gold:
            raise gr.Error("choose a gold set (a name, a .jsonl file, or audits)")
        if not modes:
            raise gr.Error("choose at least one judge mode")
        known = _gold_choices(services)
        if gold not in known and not Path(gold).is_file():  # else the job would fail only in its log
            raise gr.Error(f"no gold set or file {gold!r}; known sets: {', '.join(known)}")
        try:
            n = int(limit) if limit not in (None, "") else 0
            config = ValidateConfig(gold=gold, split=split or "test", modes=tuple(modes), limit=n or None)
            job = services.submit_validate(gold=gold, config=config)
        except Exception as e:
            raise fail(e)
        return job, job_panel_html(services.job_view(job))

    def poll(job_id):
        view = services.job_view(job_id) if job_id else None
        if not view or view["status"] not in ENDED:
            return job_panel_html(view), gr.update(), gr.update(), gr.update()
        return job_panel_html(view), *results()

    return results, start_validate, poll


def _gold_choices(services) -> list[str]:
    try:
        names = [g["name"] for g in services.gold_sets()]
    except Exception:  # the panel still builds; the Validate button reports the store's error
        names = []
    return list(dict.fromkeys([*names, "audits"]))


def _build_validation(services) -> None:
    results, start_validate, poll = _validation(services)
    table0, summary0, figure0 = results()
    with gr.Accordion("Judge validation: accuracy against gold labels", open=False):
        gr.Markdown("Judge pairs whose better answer is known (both orders) and score the judge: accuracy with its "
                    "95 % interval, accuracy per shown order, flip rate, Brier score and reliability. Report on "
                    "*test*; choose settings on *tune*. `audits` = people's audit decisions; a `.jsonl` path is "
                    "imported as a gold set.")
        with gr.Row():
            gold = gr.Dropdown(_gold_choices(services), value="hhh", label="Gold set (or a .jsonl file)",
                               allow_custom_value=True)
            split = gr.Radio(VALIDATION_SPLITS, value="test", label="Split")
            modes = gr.CheckboxGroup(list(JUDGE_MODES), value=[DEFAULT_JUDGE_MODE], label="Judge modes")
            limit = gr.Number(value=40, precision=0, label="Pairs (0 = all)")
            validate_btn = gr.Button("Validate", variant="primary")
        with gr.Row():
            job_id = gr.Textbox(label="Validation job", interactive=False)
            refresh_btn = gr.Button("Refresh results", scale=0)
        panel = gr.HTML(job_panel_html(None), label="Validation progress")
        summary = gr.Markdown(summary0)
        table = gr.Dataframe(value=table0 or None, headers=VALIDATION_COLUMNS, interactive=False,
                             label="Recent validations (newest first)")
        figure = gr.Plot(figure0, label="Reliability")
        timer = gr.Timer(2.0)

    validate_btn.click(start_validate, [gold, split, modes, limit], [job_id, panel], api_name="judge_validate")
    timer.tick(poll, [job_id], [panel, table, summary, figure], api_name="judge_validate_poll", show_progress="hidden")
    refresh_btn.click(results, None, [table, summary, figure], api_name="judge_validate_refresh")


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
                judge_mode = gr.Radio(list(JUDGE_MODES), value=DEFAULT_JUDGE_MODE, label="Mode")
                judge_k = gr.Slider(1, 4, value=1, step=1, label="Principles per comparison")
                judges = gr.Textbox(value="base", label="Judges (comma-separated)")
                judge_btn = gr.Button("Judge the latest pairs")
            job_id = gr.Textbox(label="Job", interactive=False)
            panel = gr.HTML(job_panel_html(None), label="Progress")
            timer = gr.Timer(2.0)
        _build_validation(services)

        pairs_btn.click(start_pairs, [pairs_set, pairs_model, pairs_limit], [job_id, panel], api_name="pairs_start")
        judge_btn.click(start_judge, [judge_cons, judge_mode, judge_k, judges], [job_id, panel], api_name="judge_start")
        timer.tick(lambda j: job_panel_html(services.job_view(j) if j else None), [job_id], [panel],
                   api_name="preferences_poll", show_progress="hidden")
        list_btn.click(listing, [filter_, principle, judge, source], [rows, cid, count], api_name="preferences_list")
        cid.change(detail, [cid], [detail_out, verdicts], api_name="preferences_detail")
    return on_open, [principle, judge, rows, cid, count]
