"""Prompts tab: import files, browse and search prompt sets, add a prompt by hand."""
from __future__ import annotations

import gradio as gr

from .common import fail, table

__all__ = ["build"]


def _set_names(services) -> list[str]:
    from cai_core.prompt_sets import shipped_prompt_sets

    return sorted({r["name"] for r in services.prompt_sets()} | set(shipped_prompt_sets()))


def build(services) -> None:
    def sets_table():
        return table(services.prompt_sets(), ["name", "prompts", "source"])

    def do_import(file, name, column):
        if file is None:
            raise gr.Error("choose a file first")
        path = file if isinstance(file, str) else file.name
        try:
            ps, added, dup = services.import_prompts(path, name=(name or "").strip() or None, column=(column or "").strip() or None)
        except Exception as e:
            raise fail(e)
        return f"✓ {ps.name}: {added} added, {dup} already present or duplicated", sets_table(), gr.update(choices=_set_names(services), value=ps.name)

    def browse(set_name, search):
        if not set_name:
            return []
        try:
            from cai_core.prompt_sets import get_prompt_set

            get_prompt_set(services.store, set_name)  # a shipped set is imported on first look
            return table(services.prompts_page(set_name, search=search or ""), ["position", "category", "text"])
        except Exception as e:
            raise fail(e)

    def add(set_name, text):
        try:
            n = services.add_prompt(set_name, text)
        except Exception as e:
            raise fail(e)
        return ("✓ added" if n else "already in the set"), "", browse(set_name, ""), sets_table()

    with gr.Tab("Prompts"):
        sets = gr.Dataframe(headers=["name", "prompts", "source"], label="Prompt sets", interactive=False)
        with gr.Accordion("Import a file (JSONL, CSV/TSV, TXT one per line)", open=False):
            with gr.Row():
                file = gr.File(label="Prompt file", file_types=[".jsonl", ".json", ".csv", ".tsv", ".txt"])
                with gr.Column():
                    name = gr.Textbox(label="Set name (default: the file name)")
                    column = gr.Textbox(label="Column (default: prompt, text, question…)")
                    import_btn = gr.Button("Import", variant="primary")
            import_status = gr.Textbox(label="Import result", interactive=False)
        with gr.Row():
            set_name = gr.Dropdown(_set_names(services), value="red-team", label="Prompt set", allow_custom_value=True)
            search = gr.Textbox(label="Search")
            browse_btn = gr.Button("Show", scale=0)
        prompts = gr.Dataframe(headers=["position", "category", "text"], label="Prompts", interactive=False, wrap=True)
        with gr.Row():
            new_prompt = gr.Textbox(label="New prompt", scale=4)
            add_btn = gr.Button("Add to set", scale=0)
        add_status = gr.Textbox(label="Add result", interactive=False)

        import_btn.click(do_import, [file, name, column], [import_status, sets, set_name], api_name="prompts_import")
        browse_btn.click(browse, [set_name, search], [prompts], api_name="prompts_browse")
        search.submit(browse, [set_name, search], [prompts], api_name="prompts_search")
        add_btn.click(add, [set_name, new_prompt], [add_status, new_prompt, prompts, sets], api_name="prompts_add")
    return sets_table, [sets]
