"""Overview tab: what is in the store (counts, prompt sets, constitutions, runs)."""
from __future__ import annotations

import gradio as gr

__all__ = ["build"]


def build(services) -> None:
    def refresh():
        stats = services.stats()
        sets = [[r["name"], r["prompts"], r["source"]] for r in services.prompt_sets()]
        cons = []
        for name, path in services.constitutions().items():
            try:
                c = services.constitution(name)
                cons.append([name, c.version, len(c.principles), c.title])
            except Exception as e:  # show a broken file instead of failing the page
                cons.append([name, "INVALID", 0, str(e)])
        runs = [[r["id"], r["kind"], r["status"], r["model"], str(r["created_at"])[:16]] for r in services.runs()]
        return stats, sets, cons, runs

    with gr.Tab("Overview"):
        gr.Markdown("What the store holds. The full tabs (Constitutions, Prompts, Generate, Critique, "
                    "Preferences, Audit, Train, Compare) build on these records.")
        refresh_btn = gr.Button("Refresh", variant="secondary")
        stats = gr.JSON(label="Record counts")
        sets = gr.Dataframe(headers=["name", "prompts", "source"], label="Prompt sets", interactive=False)
        cons = gr.Dataframe(headers=["name", "version", "principles", "title"], label="Constitutions", interactive=False)
        runs = gr.Dataframe(headers=["id", "kind", "status", "model", "created"], label="Runs", interactive=False)
        refresh_btn.click(refresh, outputs=[stats, sets, cons, runs], api_name="overview_refresh")
    return refresh, [stats, sets, cons, runs]
