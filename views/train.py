"""Train tab: launch SFT / reward / PPO / RLOO / GRPO with editable key hyper-parameters, live
loss / reward / KL curves, the log tail, cancel, and the runs and checkpoints with lineage."""
from __future__ import annotations

import gradio as gr

from .plots import training_curves_figure

from .common import fail, job_panel_html, table

__all__ = ["build"]

CKPT_COLUMNS = ["id", "kind", "run_id", "snapshot_hash", "overrides", "base_model", "path", "created_at"]
RUN_COLUMNS = ["id", "kind", "status", "model", "created_at", "error"]


def build(services) -> None:
    def train_runs():
        rows = [r for r in services.runs_table() if r["kind"].startswith("train-")]
        return table(rows, RUN_COLUMNS), table(services.checkpoints(), CKPT_COLUMNS)

    def launch(kind, max_steps, lr, batch, soft, lora, base, new_run):
        cfg = {"max_steps": int(max_steps), "learning_rate": float(lr), "per_device_batch_size": int(batch),
               "save_steps": max(1, int(max_steps) // 2)}
        if kind == "reward" and soft:
            cfg["soft_labels"] = True
        if kind == "sft" and lora:
            cfg["lora"] = True
        if kind in ("rloo", "grpo"):
            cfg["per_device_batch_size"] = max(int(batch), 4) // 4 * 4  # a multiple of num_generations
        try:
            if (base or "").strip():
                cfg["model"] = services.resolve_model_path(base.strip())
            job_id = services.submit_training(kind, config=cfg, new_run=bool(new_run))
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

    def cancel(job_id):
        if not job_id or not services.cancel_job(job_id):
            raise gr.Error("no running training job to cancel")
        return "cancel requested: the job saves a checkpoint and stops; launch the same settings again to resume"

    with gr.Tab("Train"):
        with gr.Row():
            kind = gr.Dropdown(["sft", "reward", "ppo", "rloo", "grpo"], value="sft", label="Kind")
            max_steps = gr.Number(value=8, precision=0, label="Max steps (PPO: iterations)")
            lr = gr.Number(value=2e-5, label="Learning rate")
            batch = gr.Number(value=4, precision=0, label="Batch size per device")
        with gr.Row():
            base = gr.Textbox(label="Start from (empty = default: base for sft/reward, latest SFT for RL)")
            soft = gr.Checkbox(label="Reward: soft labels", value=True)
            lora = gr.Checkbox(label="SFT: LoRA")
            new_run = gr.Checkbox(label="Force a new run")
        with gr.Row():
            launch_btn = gr.Button("Launch (or resume)", variant="primary")
            cancel_btn = gr.Button("Cancel", variant="stop")
        with gr.Row():
            job_id = gr.Textbox(label="Job", interactive=False)
            run_id = gr.Textbox(label="Training run", interactive=False)
        panel = gr.HTML(job_panel_html(None), label="Progress")
        message = gr.Textbox(label="Message", interactive=False)
        curves = gr.Plot(label="Training curves")
        log = gr.Textbox(label="Log (tail)", lines=10, interactive=False, max_lines=12)
        runs_df = gr.Dataframe(headers=RUN_COLUMNS, label="Training runs", interactive=False)
        ckpt_df = gr.Dataframe(headers=CKPT_COLUMNS, label="Checkpoints (lineage: run, snapshot, human overrides in it)",
                               interactive=False)
        timer = gr.Timer(2.0)

        launch_btn.click(launch, [kind, max_steps, lr, batch, soft, lora, base, new_run], [job_id, run_id, panel],
                         api_name="train_launch")
        cancel_btn.click(cancel, [job_id], [message], api_name="train_cancel")
        timer.tick(poll, [job_id, run_id], [panel, curves, log, runs_df, ckpt_df], api_name="train_poll",
                   show_progress="hidden")
    return train_runs, [runs_df, ckpt_df]
