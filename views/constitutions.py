"""Constitutions tab: list, view, edit, validate, save as a new version, diff two versions,
import the Constitutional AI paper's prompt files as a constitution, and what-if: re-judge
stored comparisons with a draft before saving (a background job: the same judge configuration
as the stored verdicts, the principle's old text vs the draft's)."""
from __future__ import annotations

import gradio as gr

from .common import fail, fmt_p, job_panel_html, short, table

__all__ = ["build", "what_if_table", "import_paper"]

WHAT_IF_COLUMNS = ["prompt", "principle", "judge run", "stored label", "old text", "old P(A)", "draft", "draft P(A)",
                   "flip"]


def what_if_table(rows) -> tuple[str, list[list]]:
    """(summary, table rows) of a what-if result."""
    flips = sum(r.flipped for r in rows)
    summary = f"{flips} of {len(rows)} re-judged labels would flip under the draft"
    data = [[short(r.prompt, 60), r.principle_id, r.base_run, r.stored or "", r.old or "", fmt_p(r.old_p_a),
             r.new or "", fmt_p(r.new_p_a), "FLIP" if r.flipped else ""] for r in rows]
    return summary, data


def _editing(services):
    """The handlers that read and write versions."""
    def versions_update(name):
        vers = services.constitution_versions(name)
        choices = [v["version"] for v in vers]
        return vers, choices

    def load(name):
        try:
            text = services.constitution_source(name)
            vers, choices = versions_update(name)
        except Exception as e:
            raise fail(e)
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
            vers, choices = versions_update(name)
        except Exception as e:
            raise fail(e)
        return (f"✓ saved {c.name} as version {c.version} (older versions are kept; `cai sl --constitution {c.name}` "
                "uses it)", table(vers, ["version", "title", "created_at"]),
                gr.update(choices=choices, value=choices[-1] if len(choices) > 1 else choices[0]),
                gr.update(choices=choices, value=c.version))

    def diff(old, new):
        if not old or not new:
            raise gr.Error("choose two versions")
        try:
            return services.diff_versions(old, new)
        except Exception as e:
            raise fail(e)

    return load, validate, save, diff


def import_paper(services):
    """The handler of the paper import: (files, name) -> (status, the constitution dropdown)."""
    def do_import(files, name):
        paths = [f if isinstance(f, str) else f.name for f in (files or [])]
        if not paths:
            raise gr.Error("choose the paper's JSON files first (critique/revision, preference, optionally few-shot)")
        if not (name or "").strip():
            raise gr.Error("name the constitution")
        try:
            res = services.import_paper_constitution(paths, name.strip())
        except Exception as e:
            raise fail(e)
        c = res.constitution
        status = "\n".join([f"✓ imported {c.name} as version {c.version}: {len(c.principles)} principles, "
                             f"{len(c.examples)} examples (`cai sl --constitution {c.name}` uses it)",
                             *(f"note: {n}" for n in res.notes)])
        return status, gr.update(choices=sorted(services.constitutions()), value=c.name)

    return do_import


def _what_if(services):
    def start(name, text, principle_ids, sample):
        ids = [p.strip() for p in (principle_ids or "").split(",") if p.strip()] or None
        try:
            job = services.submit_what_if(name, text, principle_ids=ids, sample=int(sample))
        except ValueError as e:
            if "nothing to re-judge" in str(e):
                return "", job_panel_html(None), str(e), []
            raise fail(e)
        except Exception as e:
            raise fail(e)
        return job, job_panel_html(services.job_view(job)), "re-judging in the background…", []

    def poll(job_id):
        view = services.job_view(job_id) if job_id else None
        if not view or view["status"] != "finished":
            return job_panel_html(view), gr.update(), gr.update()
        summary, data = what_if_table(services.job_result(job_id) or [])
        return job_panel_html(view), summary, data

    return start, poll


def build(services) -> None:
    names = sorted(services.constitutions())
    load, validate, save, diff = _editing(services)
    start_what_if, poll_what_if = _what_if(services)

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
        with gr.Accordion("Import the Constitutional AI paper's prompt files", open=False):
            gr.Markdown("The paper's JSON files, shapes read from their content: critique/revision instructions "
                        "and RL-phase preference questions (paired in order; the counts must match), optionally "
                        "few-shot examples. Saved as a new version of the name.")
            with gr.Row():
                paper_files = gr.File(label="Paper prompt files", file_count="multiple", file_types=[".json"])
                with gr.Column():
                    paper_name = gr.Textbox(label="Constitution name", value="paper")
                    import_btn = gr.Button("Import", variant="primary")
            import_status = gr.Textbox(label="Import result", interactive=False, lines=2)
        with gr.Accordion("What-if: re-judge stored comparisons with this draft (nothing is saved)", open=False):
            gr.Markdown("Each changed principle is re-judged twice by the judge run that last used it (same judge, "
                        "mode, orders): with its old text and with the draft's. A flip is a label that differs.")
            with gr.Row():
                pids = gr.Textbox(label="Principle ids (comma-separated; empty = the ones whose preference question changed)")
                sample = gr.Slider(1, 32, value=8, step=1, label="Comparisons per principle")
                whatif_btn = gr.Button("Re-judge", scale=0)
            whatif_job = gr.Textbox(label="What-if job", interactive=False)
            whatif_panel = gr.HTML(job_panel_html(None), label="What-if progress")
            whatif_summary = gr.Textbox(label="What-if result", interactive=False)
            whatif_rows = gr.Dataframe(headers=WHAT_IF_COLUMNS, label="Labels under the draft", interactive=False)
        timer = gr.Timer(1.0)

        load_btn.click(load, [name], [source, status, versions, old_v, new_v], api_name="constitution_load")
        name.change(load, [name], [source, status, versions, old_v, new_v], api_name="constitution_select")
        validate_btn.click(validate, [name, source], [status], api_name="constitution_validate")
        save_btn.click(save, [name, source], [status, versions, old_v, new_v], api_name="constitution_save")
        diff_btn.click(diff, [old_v, new_v], [diff_out], api_name="constitution_diff")
        # the dropdown's change event then loads the imported constitution into the editor
        import_btn.click(import_paper(services), [paper_files, paper_name], [import_status, name],
                         api_name="constitution_import")
        whatif_btn.click(start_what_if, [name, source, pids, sample],
                         [whatif_job, whatif_panel, whatif_summary, whatif_rows], api_name="constitution_what_if")
        timer.tick(poll_what_if, [whatif_job], [whatif_panel, whatif_summary, whatif_rows],
                   api_name="constitution_what_if_poll", show_progress="hidden")
    default = name.value
    return (lambda: load(default) if default else ("", "", [], gr.update(), gr.update())), [source, status, versions, old_v, new_v]
