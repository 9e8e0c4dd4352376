"""Constitutions tab: list, view, edit, validate, save as a new version, diff two versions,
and what-if: re-judge stored comparisons with a draft before saving."""
from __future__ import annotations

import gradio as gr

from .common import fail, fmt_p, short, table

__all__ = ["build"]


def build(services) -> None:
    names = sorted(services.constitutions())

    def load(name):
        try:
            text = services.constitution_source(name)
            vers = services.constitution_versions(name)
        except Exception as e:
            raise fail(e)
        choices = [v["version"] for v in vers]
        return (text, "", table(vers, ["version", "title", "created_at"]),
                gr.update(choices=choices, value=choices[-1] if choices else None),
                gr.update(choices=choices, value=choices[0] if choices else None))

    def validate(name, text):
        from cai_core.constitutions import ConstitutionError, parse_constitution

        try:
            c = parse_constitution(text, name=name or "draft", where=f"{name or 'draft'}.toml")
        except ConstitutionError as e:
            return f"✗ {e}"
        return f"✓ valid: {len(c.principles)} principles, {len(c.examples)} examples, version {c.version}"

    def save(name, text):
        try:
            c = services.save_constitution(name, text)
        except Exception as e:
            raise fail(e)
        vers = services.constitution_versions(name)
        choices = [v["version"] for v in vers]
        return (f"✓ saved {c.name} as version {c.version} (older versions are kept)",
                table(vers, ["version", "title", "created_at"]),
                gr.update(choices=choices, value=choices[-1] if len(choices) > 1 else choices[0]),
                gr.update(choices=choices, value=c.version))

    def diff(old, new):
        if not old or not new:
            raise gr.Error("choose two versions")
        try:
            return services.diff_versions(old, new)
        except Exception as e:
            raise fail(e)

    def what_if(name, text, principle_ids, sample):
        ids = [p.strip() for p in (principle_ids or "").split(",") if p.strip()] or None
        try:
            rows = services.what_if(name, text, principle_ids=ids, sample=int(sample))
        except Exception as e:
            raise fail(e)
        flips = sum(r.flipped for r in rows)
        summary = (f"{flips} of {len(rows)} re-judged labels would flip under the draft" if rows else
                   "nothing to re-judge: no stored verdicts use the changed principles (edit a principle's "
                   "preference question, or name principle ids)")
        data = [[short(r.prompt, 60), r.principle_id, r.old_vote or "", fmt_p(r.old_p_a), r.new_vote or "",
                 fmt_p(r.new_p_a), "FLIP" if r.flipped else ""] for r in rows]
        return summary, data

    with gr.Tab("Constitutions"):
        with gr.Row():
            name = gr.Dropdown(names, value="harmless" if "harmless" in names else (names[0] if names else None),
                               label="Constitution", allow_custom_value=True, scale=2)
            load_btn = gr.Button("Load", scale=0)
        source = gr.Code(label="TOML (edit here)", language=None, lines=22, max_lines=30, interactive=True)
        with gr.Row():
            validate_btn = gr.Button("Validate")
            save_btn = gr.Button("Save as new version", variant="primary")
        status = gr.Textbox(label="Status", interactive=False)
        versions = gr.Dataframe(headers=["version", "title", "created_at"], label="Versions", interactive=False)
        with gr.Accordion("Diff two versions", open=False):
            with gr.Row():
                old_v = gr.Dropdown([], label="Old version")
                new_v = gr.Dropdown([], label="New version")
                diff_btn = gr.Button("Diff", scale=0)
            diff_out = gr.Code(label="Diff", language=None, interactive=False)
        with gr.Accordion("What-if: re-judge stored comparisons with this draft (nothing is saved)", open=False):
            with gr.Row():
                pids = gr.Textbox(label="Principle ids (comma-separated; empty = the ones whose preference question changed)")
                sample = gr.Slider(1, 32, value=8, step=1, label="Comparisons per principle")
                whatif_btn = gr.Button("Re-judge", scale=0)
            whatif_summary = gr.Textbox(label="What-if result", interactive=False)
            whatif_rows = gr.Dataframe(headers=["prompt", "principle", "old vote", "old P(A)", "new vote", "new P(A)", "flip"],
                                       label="Labels under the draft", interactive=False)

        load_btn.click(load, [name], [source, status, versions, old_v, new_v], api_name="constitution_load")
        name.change(load, [name], [source, status, versions, old_v, new_v], api_name="constitution_select")
        validate_btn.click(validate, [name, source], [status], api_name="constitution_validate")
        save_btn.click(save, [name, source], [status, versions, old_v, new_v], api_name="constitution_save")
        diff_btn.click(diff, [old_v, new_v], [diff_out], api_name="constitution_diff")
        whatif_btn.click(what_if, [name, source, pids, sample], [whatif_summary, whatif_rows], api_name="constitution_what_if")
    default = name.value
    return (lambda: load(default) if default else ("", "", [], gr.update(), gr.update())), [source, status, versions, old_v, new_v]
