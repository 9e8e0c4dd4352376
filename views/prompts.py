"""Prompts tab: import files, browse and search prompt sets with each prompt's recorded split
(train / held-out), split a set anew, add a prompt by hand."""
from __future__ import annotations

import gradio as gr

from .common import fail, table

__all__ = ["build"]

SET_COLUMNS = ["name", "prompts", "train", "held_out", "source"]
PROMPT_COLUMNS = ["position", "category", "split", "text"]


def _set_names(services) -> list[str]:
    from cai_core.prompt_sets import shipped_prompt_sets

    return sorted({r["name"] for r in services.prompt_sets()} | set(shipped_prompt_sets()))


def build(services) -> None:
    def sets_table():
        return table(services.prompt_sets(), SET_COLUMNS)

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
        try:  # a shipped set is imported (and split) on first look
            return table(services.prompts_page(set_name, search=search or ""), PROMPT_COLUMNS)
        except Exception as e:
            raise fail(e)

    def resplit(set_name, held_out, seed):
        try:
            counts = services.split_prompts(set_name, held_out=float(held_out), seed=int(seed))
        except Exception as e:
            raise fail(e)
        return (f"✓ {set_name}: train {counts.get('train', 0)}, held-out {counts.get('held-out', 0)}",
                browse(set_name, ""), sets_table())

    def add(set_name, text):
        try:
            n = services.add_prompt(set_name, text)
        except Exception as e:
            raise fail(e)
        return ("✓ added" if n else "already in the set"), "", browse(set_name, ""), sets_table()

    with gr.Tab("Prompts"):
        sets = gr.Dataframe(headers=SET_COLUMNS, label="Prompt sets (training uses the train split, evaluation the held-out one)",
                            interactive=False)
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
        prompts = gr.Dataframe(headers=PROMPT_COLUMNS, label="Prompts", interactive=False, wrap=True)
        with gr.Accordion("Split this set anew (a seeded hash of each prompt's text)", open=False):
            with gr.Row():
                held_out = gr.Slider(0.05, 0.5, value=0.2, step=0.05, label="Held-out share")
                split_seed = gr.Number(value=0, precision=0, label="Seed")
                split_btn = gr.Button("Split", scale=0)
            split_status = gr.Textbox(label="Split result", interactive=False)
        with gr.Row():
            new_prompt = gr.Textbox(label="New prompt", scale=4)
            add_btn = gr.Button("Add to set", scale=0)
        add_status = gr.Textbox(label="Add result", interactive=False)

        import_btn.click(do_import, [file, name, column], [import_status, sets, set_name], api_name="prompts_import")
        browse_btn.click(browse, [set_name, search], [prompts], api_name="prompts_browse")
        search.submit(browse, [set_name, search], [prompts], api_name="prompts_search")
        add_btn.click(add, [set_name, new_prompt], [add_status, new_prompt, prompts, sets], api_name="prompts_add")
        split_btn.click(resplit, [set_name, held_out, split_seed], [split_status, prompts, sets], api_name="prompts_split")
    return sets_table, [sets]
