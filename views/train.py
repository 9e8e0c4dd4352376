"""Train tab: launch SFT / reward / PPO / RLOO / GRPO on an explicit selection of data (each
kind with its own default hyper-parameters), live loss / reward / KL curves, the log tail,
cancel, the curves of any past run, and the runs and checkpoints with their lineage."""
from __future__ import annotations

from html import escape as html_escape

import gradio as gr

from cai_core.training import default_config
from cai_core.types import PREFERENCE_KINDS, RL_KINDS, TRAIN_KINDS

from .common import fail, job_panel_html, table
from .plots import training_curves_figure

__all__ = ["build", "SELECTION_HELP"]

CKPT_COLUMNS = ["id", "kind", "run_id", "snapshot_hash", "overrides", "base_model", "path", "created_at"]
RUN_COLUMNS = ["id", "kind", "status", "model", "created_at", "error"]
SELECTION_HELP = {
    "sft": "SL run ids (comma-separated; empty: the latest finished SL run); then optionally "
           "'; helpful: RUN[,RUN] [ratio R]' to mix in those runs' helpful first answers",
    "reward": "judge run ids (comma-separated, several = an ensemble; empty: the latest judge run over training pairs)",
    "dpo": "judge run ids whose labels DPO trains the SFT policy on (comma-separated; empty: the latest judge run "
           "over training pairs); or pairs by construction, no judge: 'contrast: SL RUN[,RUN]; helpful: RUN; "
           "refusals: RUN [ratio R]; rejected: first,bare' (revisions over first answers, and/or over themselves with "
           "the reason cut off; helpful answers over the refusals of those benign prompts, at most R per revision pair)",
    **{k: "prompt set[:split] (empty: red-team:train)" for k in RL_KINDS},
}


def _selection(kind: str, text: str) -> dict:
    text, _, helpful = (text or "").partition(";")
    items = [x.strip() for x in text.split(",") if x.strip()]
    if kind == "sft":
        sel: dict = {"sl_runs": items or None}
        helpful = helpful.strip().removeprefix("helpful:").strip()
        if helpful:
            runs, _, ratio = helpful.partition(" ratio ")
            sel["helpful_runs"] = [x.strip() for x in runs.split(",") if x.strip()]
            try:
                sel["helpful_ratio"] = float(ratio) if ratio.strip() else 1.0
            except ValueError:
                raise gr.Error(f"helpful ratio {ratio.strip()!r} is not a number") from None
        return sel
    if kind in PREFERENCE_KINDS and text.strip().startswith("contrast:"):
        return _contrast_selection(f"{text};{helpful}")
    if kind in PREFERENCE_KINDS:
        return {"judge_runs": items or None}
    set_name, _, split = (items[0] if items else "red-team").partition(":")
    return {"prompt_set": set_name, "split": split or "train"}


def _contrast_selection(text: str) -> dict:
    """'contrast: SL[,SL]; helpful: H; refusals: R [ratio X]; rejected: first,bare' -> a
    pairs-by-construction selection."""
    keys = {"contrast": "sl_runs", "helpful": "helpful_runs", "refusals": "refusal_runs", "rejected": "harmful_rejected"}
    sel: dict = {"contrast": True}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, colon, runs = part.partition(":")
        if not colon or name.strip() not in keys:
            raise gr.Error(f"{part!r}: expected 'contrast: RUN', 'helpful: RUN', 'refusals: RUN' or 'rejected: first,bare'")
        runs, _, ratio = runs.partition(" ratio ")
        sel[keys[name.strip()]] = [x.strip() for x in runs.split(",") if x.strip()] or None
        if ratio.strip():
            try:
                sel["benign_ratio"] = float(ratio)
            except ValueError:
                raise gr.Error(f"benign ratio {ratio.strip()!r} is not a number") from None
    return sel


def _handlers(services):
    def train_runs():
        rows = [r for r in services.runs_table() if r["kind"].startswith("train-")]
        return table(rows, RUN_COLUMNS), table(services.checkpoints(), CKPT_COLUMNS)

    def on_kind(kind):
        d = default_config(kind)
        return (gr.update(value=d["learning_rate"]), gr.update(value=d["per_device_batch_size"]),
                gr.update(label=f"Train on: {SELECTION_HELP[kind]}", value=""))

    def launch(kind, max_steps, lr, batch, soft, lora, length_power, base, new_run, selection):
        cfg = {"max_steps": int(max_steps), "learning_rate": float(lr), "per_device_batch_size": int(batch),
               "save_steps": max(1, int(max_steps) // 2)}
        if kind == "reward":
            cfg["soft_labels"] = bool(soft)
        if kind == "sft" and lora:
            cfg["lora"] = True
        if kind == "sft" and length_power is not None and float(length_power) != 1.0:
            cfg["length_power"] = float(length_power)
        if kind in ("rloo", "grpo"):
            cfg["per_device_batch_size"] = max(int(batch), 4) // 4 * 4  # a multiple of num_generations
        try:
            if (base or "").strip():
                cfg["model"] = services.resolve_model_path(base.strip())
            job_id = services.submit_training(kind, config=cfg, selection=_selection(kind, selection),
                                              new_run=bool(new_run))
        except Exception as e:
            raise fail(e)
        view = services.job_view(job_id)
        return job_id, view["run_id"], job_panel_html(view)

    def poll(job_id, run_id):
        view = services.job_view(job_id) if job_id else None
        run_id = run_id or (view or {}).get("run_id")  # launch returns before the job names its run
        metrics = services.metrics(run_id) if run_id else []
        log = services.training_log(run_id) if run_id else ""
        runs, ckpts = train_runs()
        return job_panel_html(view), training_curves_figure(metrics), log, runs, ckpts

    def show_run(run_id):
        if not run_id:
            raise gr.Error("choose a training run")
        return training_curves_figure(services.metrics(run_id)), services.training_log(run_id)

    def cancel(job_id):
        if not job_id or not services.cancel_job(job_id):
            raise gr.Error("no running training job to cancel")
        return "cancel requested: the job saves a checkpoint and stops; launch the same settings again to resume"

    def label_trust(kind, text):
        """Reward, DPO: what is known about the judges behind the labels (validation on gold pairs)."""
        if kind not in PREFERENCE_KINDS:
            return ""
        sel = _selection(kind, text)
        if sel.get("contrast"):
            return "Pairs by construction: no judge labels (each revision over its first answer; helpful answers over refusals)."
        try:
            warnings = services.label_warnings(sel["judge_runs"])
        except Exception as e:
            raise fail(e)
        if not warnings:
            return "The judges behind these labels were validated above chance on gold pairs, without following position."
        return "\n".join(f"- ⚠ {html_escape(w)}" for w in warnings)

    def on_open():
        runs, ckpts = train_runs()
        ids = [r[0] for r in runs]
        return runs, ckpts, gr.update(choices=ids, value=ids[0] if ids else None)

    return train_runs, on_kind, launch, poll, show_run, cancel, on_open, label_trust


def build(services) -> None:
    train_runs, on_kind, launch, poll, show_run, cancel, on_open, label_trust = _handlers(services)
    sft = default_config("sft")
    with gr.Tab("Train"):
        with gr.Row():
            kind = gr.Dropdown(list(TRAIN_KINDS), value="sft", label="Kind")
            max_steps = gr.Number(value=8, precision=0, label="Max steps (PPO: iterations)")
            lr = gr.Number(value=sft["learning_rate"], label="Learning rate (each kind's default)")
            batch = gr.Number(value=sft["per_device_batch_size"], precision=0, label="Batch size per device")
        with gr.Row():
            selection = gr.Textbox(label=f"Train on: {SELECTION_HELP['sft']}")
            base = gr.Textbox(label="Start from (empty = default: base for sft/reward, latest SFT for RL)")
        trust = gr.Markdown("", label="How far the labels can be trusted")
        with gr.Row():
            soft = gr.Checkbox(label="Reward: soft labels (the paper's)", value=True)
            lora = gr.Checkbox(label="SFT: LoRA")
            length_power = gr.Number(value=sft["length_power"], minimum=0, maximum=1, step=0.25,
                                     label="SFT: length weight p",
                                     info="a record weighs (its answer tokens)^p: 1 = long answers weigh more, "
                                          "0 = every record the same")
            new_run = gr.Checkbox(label="Force a new run")
            launch_btn = gr.Button("Launch (or resume)", variant="primary")
            cancel_btn = gr.Button("Cancel", variant="stop")
        with gr.Row():
            job_id = gr.Textbox(label="Job", interactive=False)
            run_id = gr.Textbox(label="Training run", interactive=False)
        panel = gr.HTML(job_panel_html(None), label="Progress")
        message = gr.Textbox(label="Message", interactive=False)
        curves = gr.Plot(label="Training curves")
        log = gr.Textbox(label="Log (tail)", lines=10, interactive=False, max_lines=12)
        with gr.Row():
            past = gr.Dropdown([], label="A past training run", allow_custom_value=True)
            show_btn = gr.Button("Show its curves", scale=0)
        runs_df = gr.Dataframe(headers=RUN_COLUMNS, label="Training runs", interactive=False)
        ckpt_df = gr.Dataframe(headers=CKPT_COLUMNS, label="Checkpoints (lineage: run, snapshot, human overrides in it)",
                               interactive=False)
        timer = gr.Timer(2.0)

        kind.change(on_kind, [kind], [lr, batch, selection], api_name="train_kind")
        gr.on([kind.change, selection.submit], label_trust, [kind, selection], [trust], api_name="train_label_trust")
        launch_btn.click(launch, [kind, max_steps, lr, batch, soft, lora, length_power, base, new_run, selection],
                         [job_id, run_id, panel], api_name="train_launch")
        cancel_btn.click(cancel, [job_id], [message], api_name="train_cancel")
        show_btn.click(show_run, [past], [curves, log], api_name="train_show_run")
        timer.tick(poll, [job_id, run_id], [panel, curves, log, runs_df, ckpt_df], api_name="train_poll",
                   show_progress="hidden")
    return on_open, [runs_df, ckpt_df, past]
