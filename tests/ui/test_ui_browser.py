"""What a person clicks, in headless Chromium (Playwright, sync API) against the real app
(scripted backend, temp store, one server and one page for the module): edit and save a
constitution, run SL, read a critique chain, audit with the keyboard, train a tiny model,
compare models; model text always renders as text; a screenshot of every tab lands in
docs/screenshots/; and the page logs no errors."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"browser tests need Debian's chromium at {CHROMIUM} (the setup installs it; "
                              "Playwright's own browser download does not work here)"),
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:.*future.no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright (Python) is not installed")
expect = sync_api.expect

from ui_server import XSS_TEXT, save_tiny_model, start_server  # noqa: E402

TAB_NAMES = {
    "constitutions": "Constitutions", "prompts": "Prompts", "generate": "Generate (SL)",
    "critique": "Critique → Revision", "preferences": "Preferences", "audit": "Audit", "train": "Train",
    "compare": "Compare",
}
BENIGN_CONSOLE = [
    # Chromium logs this when the page (or the test) drops Gradio's event stream on close/navigation.
    re.compile(r"queue/data.*ERR_ABORTED"),
]
"""Console errors that are not the app's fault. None has been seen so far; listed when they are."""

ERRORS: list[str] = []
IGNORED: list[str] = []


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("ui-browser"))
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def tiny_dir(tiny_lm, server):
    return save_tiny_model(tiny_lm, server.root / "tiny-model")


@pytest.fixture(scope="module")
def page(server):
    pw = sync_api.sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM,
                                 args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"])
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(20_000)
    expect.set_options(timeout=20_000)  # a shared 2-core machine: generous, but bounded
    pg = ctx.new_page()

    def on_console(msg):
        if msg.type != "error":
            return
        text = f"console.error: {msg.text} @ {msg.location.get('url', '')}"
        (IGNORED if any(p.search(text) for p in BENIGN_CONSOLE) else ERRORS).append(text)

    pg.on("pageerror", lambda exc: ERRORS.append(f"pageerror: {exc}"))
    pg.on("console", on_console)
    pg.goto(server.url)
    expect(pg.get_by_role("tab", name="Constitutions")).to_be_visible()
    yield pg
    ctx.close()
    browser.close()
    pw.stop()


# ---------------------------------------------------------------------------------------------
# helpers: the visible tab, labelled fields, dropdowns, tables, job panels
# ---------------------------------------------------------------------------------------------

def open_tab(page, key: str):
    """Click a tab; return its (visible) panel: Gradio renders a tab on first visit and keeps
    visited tabs in the DOM, hidden, so every lookup is scoped to the visible one."""
    page.get_by_role("tab", name=TAB_NAMES.get(key, key), exact=True).click()
    panel = page.locator("[role=tabpanel]").filter(visible=True)
    expect(panel).to_have_count(1)
    return panel


def field(panel, label: str):
    return panel.get_by_label(label, exact=True)


def choose(page, panel, label: str, option: str | re.Pattern):
    """Pick an option of a Gradio dropdown as a person does: open it, click the option."""
    box = field(panel, label)
    box.click()
    page.locator("[role=option]").filter(visible=True).filter(has_text=option).first.click()
    return box


def table(panel, label: str):
    """The block of a Dataframe, by its label."""
    page = panel.page
    return panel.locator(".block").filter(has=page.locator(".table-wrap")).filter(
        has=page.get_by_text(label, exact=True)).last


def data_rows(block):
    return block.locator(".virtual-row[role=row]")


def job_panel(panel):
    return panel.locator(".cai-job")


def wait_finished(panel, timeout: float = 60_000):
    job = job_panel(panel)
    expect(job).to_have_attribute("data-status", re.compile("finished|failed|cancelled"), timeout=timeout)
    assert job.get_attribute("data-status") == "finished", job.inner_text()


def assert_escaped(page, region, where: str):
    """The XSS text is on screen as text; nothing of it became markup or ran."""
    expect(region.get_by_text("<script>window.__xss=2</script>", exact=False).filter(visible=True).first).to_be_visible()
    assert page.evaluate("typeof window.__xss") == "undefined", f"{where}: injected script ran"
    assert region.locator("img[src='x']").count() == 0, f"{where}: an <img> from model text was rendered"
    assert page.locator("img[src='x']").count() == 0, where
    assert page.locator("a[href^='javascript:']").count() == 0, f"{where}: a javascript: link was rendered"
    assert not page.evaluate("[...document.scripts].some(s => s.textContent.includes('__xss'))"), where


# ---------------------------------------------------------------------------------------------
# (a) Constitutions: edit in the code editor, validate, save as a new version
# ---------------------------------------------------------------------------------------------

def test_edit_validate_and_save_a_constitution(page, server):
    panel = open_tab(page, "constitutions")
    editor = panel.locator(".cm-content")
    expect(editor).to_contain_text("[[principles]]")
    versions = table(panel, "Versions")
    expect(data_rows(versions)).to_have_count(1)
    original = server.services.constitution_source("harmless")
    draft = original.replace('title = "Harmlessness principles"', 'title = "Harmlessness principles (browser edit)"', 1)
    # CodeMirror: click in, select all, insert the new text (one input event), then type a line
    editor.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(draft.rstrip("\n"))
    page.keyboard.press("ControlOrMeta+End")
    page.keyboard.type("\n# edited in the browser")
    expect(editor).to_contain_text("# edited in the browser")  # (CodeMirror renders only the lines in view)
    panel.get_by_role("button", name="Validate", exact=True).click()
    expect(field(panel, "Status")).to_have_value(re.compile(r"^✓ valid: 16 principles"))
    panel.get_by_role("button", name="Save as new version").click()
    expect(field(panel, "Status")).to_have_value(re.compile(r"^✓ saved harmless as version [0-9a-f]+"))
    expect(data_rows(versions)).to_have_count(2)
    expect(versions).to_contain_text("Harmlessness principles (browser edit)")
    saved = (server.root / "constitutions.d" / "harmless.toml").read_text(encoding="utf-8")
    assert saved.rstrip("\n") == draft.rstrip("\n") + "\n# edited in the browser"
    assert server.services.store.count("constitutions", "WHERE name = 'harmless'") == 2
    # a broken edit is reported with its line, and not saved
    editor.click()
    page.keyboard.press("ControlOrMeta+End")
    page.keyboard.type("\nid = \n# (a value is missing above)")
    panel.get_by_role("button", name="Validate", exact=True).click()
    line = len(saved.rstrip("\n").splitlines()) + 1
    expect(field(panel, "Status")).to_have_value(re.compile(rf"^✗ harmless\.toml:{line}: TOML syntax error"))
    editor.click()  # leave the editor valid for the screenshot
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(saved.rstrip("\n"))
    panel.get_by_role("button", name="Validate", exact=True).click()
    expect(field(panel, "Status")).to_have_value(re.compile(r"^✓ valid"))


# ---------------------------------------------------------------------------------------------
# (b) Generate: a small SL run, watched to "finished"
# ---------------------------------------------------------------------------------------------

def test_generate_a_small_sl_run(page, server):
    store = server.services.store
    panel = open_tab(page, "generate")
    runs = table(panel, "SL runs")
    expect(data_rows(runs)).to_have_count(1)
    rounds = panel.get_by_label("number input for Rounds")
    rounds.fill("1")
    rounds.press("Enter")
    limit = field(panel, "Limit (prompts; 0 = all)")
    limit.fill("2")
    limit.press("Tab")
    expect(job_panel(panel)).to_have_text("No job started yet.")
    panel.get_by_role("button", name="Start (or resume) SL run").click()
    expect(field(panel, "Job")).to_have_value(re.compile(r"^job-\d+$"))
    wait_finished(panel)
    expect(job_panel(panel)).to_contain_text("2 answers, 2 critiques, 2 revisions")
    expect(data_rows(runs)).to_have_count(2)
    run_id = re.search(r"run (sl-[0-9a-f]+)", job_panel(panel).inner_text()).group(1)
    assert store.count("generations", "WHERE run_id = ?", [run_id]) == 2
    assert store.scalar("SELECT max(round) FROM revisions WHERE run_id = ?", [run_id]) == 1
    assert store.scalar("SELECT constitution_version FROM runs WHERE id = ?", [run_id]) == \
        server.services.constitution("harmless").version  # the version saved in (a)


# ---------------------------------------------------------------------------------------------
# (c) Critique -> Revision: refresh, pick a prompt, read the chain and its diff
# ---------------------------------------------------------------------------------------------

def test_critique_chain_with_word_diff(page, server):
    panel = open_tab(page, "critique")
    panel.get_by_role("button", name="Refresh runs").click()
    newest = server.services.runs_table("sl")[0]["id"]
    expect(field(panel, "SL run")).to_have_value(newest)
    expect(data_rows(table(panel, "Prompts in the run"))).to_have_count(2)
    choose(page, panel, "Prompt", "#1 ")
    expect(field(panel, "Prompt")).to_have_value(re.compile(r"^#1 "))
    second = server.services.sl_prompts(newest)[1]["text"]
    chain = panel.locator(".cai-round").first.locator("xpath=..")
    expect(chain.locator(".cai-block").first).to_contain_text(second[:40])
    diff = panel.locator(".cai-diff")
    expect(diff).to_have_count(1)
    expect(diff.locator("del.cai-del").first).to_be_visible()
    expect(diff.locator("ins.cai-ins").first).to_be_visible()
    expect(panel.locator(".cai-round")).to_have_text(re.compile(r"Round 1 — principle \S+"))


# ---------------------------------------------------------------------------------------------
# (d) Audit with the keyboard
# ---------------------------------------------------------------------------------------------

def test_audit_with_keyboard_shortcuts(page, server):
    store = server.services.store
    panel = open_tab(page, "audit")
    summary = field(panel, "Agreement")
    expect(summary).to_have_value(re.compile(r"^audited comparisons: 0 "))
    field(panel, "Your name").fill("Dana")
    panel.get_by_role("button", name="Next (n)").click()
    cid = field(panel, "Comparison id")
    expect(cid).to_have_value(server.populated.xss_comparison_id)
    assert_escaped(page, panel, "audit item")
    keys_help = panel.get_by_text("Keys (outside text fields):")
    seen = []
    for key, action, reason in (("a", "A", None), ("b", "B", "B declines and says why"), ("t", "tie", None)):
        current = cid.input_value()
        if reason:
            field(panel, "Reason (optional)").fill(reason)
        keys_help.click()  # focus outside the text fields, as the shortcuts require
        page.keyboard.press(key)
        expect(field(panel, "Last action")).to_have_value(f"recorded {action} on {current}")
        expect(cid).not_to_have_value(current)
        expect(field(panel, "Reason (optional)")).to_have_value("")
        seen.append((current, action, reason))
    n = server.services.agreement().n
    assert n == 3
    # each action's follow-up event refreshes the agreement summary and plots
    expect(summary).to_have_value(re.compile(rf"^audited comparisons: {n} · agreement \d+ %"))
    rows = store.query("SELECT comparison_id, action, reason FROM audits WHERE author = 'Dana' ORDER BY id")
    assert [(r["comparison_id"], r["action"], r["reason"]) for r in rows] == seen
    # plots came back with the summary (plotly rendered)
    expect(panel.locator(".js-plotly-plot").first).to_be_visible()


# ---------------------------------------------------------------------------------------------
# (e) Train a tiny model: curves and a checkpoint appear
# ---------------------------------------------------------------------------------------------

def test_train_a_tiny_model(page, server, tiny_dir):
    panel = open_tab(page, "train")
    ckpts = table(panel, "Checkpoints (lineage: run, snapshot, human overrides in it)")
    expect(ckpts).to_be_visible()
    assert data_rows(ckpts).filter(has_text="sft").count() == 0
    field(panel, "Max steps (PPO: iterations)").fill("2")
    field(panel, "Batch size per device").fill("2")
    field(panel, "Start from (empty = default: base for sft/reward, latest SFT for RL)").fill(str(tiny_dir))
    panel.get_by_role("button", name="Launch (or resume)").click()
    expect(field(panel, "Job")).to_have_value(re.compile(r"^job-\d+$"))
    wait_finished(panel, timeout=150_000)
    expect(job_panel(panel)).to_contain_text("2/2")
    curves = panel.locator(".block").filter(has=page.locator(".js-plotly-plot")).filter(
        has=page.get_by_text("Training curves", exact=True)).last
    plot = curves.locator(".js-plotly-plot")
    expect(plot).to_be_visible(timeout=20_000)
    expect(plot.locator(".scatterlayer .trace path.js-line").first).to_be_attached(timeout=20_000)
    expect(plot).to_contain_text("loss")
    expect(data_rows(ckpts).filter(has_text="sft")).to_have_count(1, timeout=20_000)
    expect(ckpts).to_contain_text(str(tiny_dir))
    expect(field(panel, "Log (tail)")).not_to_have_value("")


# ---------------------------------------------------------------------------------------------
# (f) Compare: two models side by side
# ---------------------------------------------------------------------------------------------

def test_compare_two_models_side_by_side(page):
    panel = open_tab(page, "compare")
    field(panel, "Models (comma-separated)").fill("base,other")
    field(panel, "Prompt").fill("Name three uses for a paperclip.")
    panel.get_by_role("button", name="Send to every model").click()
    cols = panel.locator(".cai-cols .cai-col")
    expect(cols).to_have_count(2)
    expect(cols.locator(".cai-label")).to_have_text(["base", "other"])
    for i in range(2):
        expect(cols.nth(i).locator(".cai-text")).to_contain_text("to: Name three uses for a paperclip.")
    panel.get_by_role("button", name="Show latest report").click()
    expect(field(panel, "Report")).to_have_value("No evaluation yet.")


# ---------------------------------------------------------------------------------------------
# Model and prompt text renders as text everywhere it is shown
# ---------------------------------------------------------------------------------------------

def test_model_text_renders_escaped(page, server, tmp_path):
    pop = server.populated
    # Prompts: import a file holding the XSS prompt, then browse it
    panel = open_tab(page, "prompts")
    panel.get_by_text("Import a file (JSONL, CSV/TSV, TXT one per line)").click()
    src = tmp_path / "xss.txt"
    src.write_text(XSS_TEXT + "\nA harmless second prompt.\n", encoding="utf-8")
    panel.locator("input[type=file][accept*='.jsonl']").set_input_files(str(src))  # the File component's input
    field(panel, "Set name (default: the file name)").fill("xss-import")
    panel.get_by_role("button", name="Import", exact=True).click()
    expect(field(panel, "Import result")).to_have_value("✓ xss-import: 2 added, 0 already present or duplicated")
    expect(field(panel, "Prompt set")).to_have_value("xss-import")
    panel.get_by_role("button", name="Show", exact=True).click()
    prompts = table(panel, "Prompts")
    expect(data_rows(prompts)).to_have_count(2)
    assert_escaped(page, prompts, "prompts table")

    # Critique: the lab SL run's XSS prompt, answered/critiqued/revised by the echoing backend
    panel = open_tab(page, "critique")
    choose(page, panel, "SL run", pop.sl_run_id)
    expect(data_rows(table(panel, "Prompts in the run"))).to_have_count(4)
    choose(page, panel, "Prompt", "#1 ")
    expect(panel.locator(".cai-diff")).to_have_count(2)
    first = panel.locator(".cai-block").filter(has_text="First answer")
    expect(first).to_contain_text('to: <img src=x onerror="window.__xss=1"><script>')
    assert_escaped(page, panel, "critique chain")

    # Preferences: the comparison with the unparsed verdict
    panel = open_tab(page, "preferences")
    choose(page, panel, "Show", "unparsed")
    panel.get_by_role("button", name="List", exact=True).click()
    expect(field(panel, "Found")).to_have_value("1 comparisons")
    expect(field(panel, "Comparison")).to_have_value(pop.xss_comparison_id)
    detail = panel.locator(".cai-cols").first.locator("xpath=..")
    expect(detail.locator(".cai-col")).to_have_count(2)
    assert_escaped(page, detail, "preferences detail")
    verdicts = table(panel, "Verdicts (raw text kept for every one)")
    expect(verdicts).to_contain_text("unparsed")
    assert_escaped(page, verdicts, "verdicts table (raw text)")

    # Audit: a new auditor gets the same comparison first
    panel = open_tab(page, "audit")
    field(panel, "Your name").fill("Eve")
    panel.get_by_role("button", name="Next (n)").click()
    expect(field(panel, "Comparison id")).to_have_value(pop.xss_comparison_id)
    item = panel.locator(".cai-ai").locator("xpath=..")
    assert_escaped(page, item, "audit item")

    # Compare: the prompt sent to two models
    panel = open_tab(page, "compare")
    field(panel, "Models (comma-separated)").fill("base,other")
    field(panel, "Prompt").fill(XSS_TEXT)
    panel.get_by_role("button", name="Send to every model").click()
    expect(panel.locator(".cai-cols .cai-col")).to_have_count(2)
    assert_escaped(page, panel.locator(".cai-cols"), "compare answers")
    assert page.evaluate("typeof window.__xss") == "undefined"


# ---------------------------------------------------------------------------------------------
# Screenshots of every tab (after the flows above), and no errors in the page
# ---------------------------------------------------------------------------------------------

def test_screenshot_every_tab(page):
    SHOTS.mkdir(parents=True, exist_ok=True)
    for key in TAB_NAMES:
        panel = open_tab(page, key)
        if key == "constitutions":  # the editor from its first line
            panel.locator(".cm-content").click()
            page.keyboard.press("ControlOrMeta+Home")
        if key == "preferences":  # the full list, with the first comparison's detail
            choose(page, panel, "Show", "all")
            panel.get_by_role("button", name="List", exact=True).click()
            expect(field(panel, "Found")).to_have_value(re.compile(r"^(\d\d+) comparisons$"))
        if key == "compare":  # a normal prompt rather than the XSS one
            field(panel, "Prompt").fill("Name three uses for a paperclip.")
            panel.get_by_role("button", name="Send to every model").click()
            expect(panel.locator(".cai-cols .cai-col").first).to_contain_text("paperclip")
        page.mouse.move(0, 0)
        page.wait_for_timeout(300)  # let plots settle
        out = SHOTS / f"{key}.png"
        page.screenshot(path=str(out), full_page=True)
        assert out.stat().st_size > 10_000
    assert {p.stem for p in SHOTS.glob("*.png")} >= set(TAB_NAMES)


def test_no_page_or_console_errors(page):
    # the listeners do see errors: a deliberate one is caught (and then set aside)
    page.evaluate("setTimeout(() => { throw new Error('listener probe') }, 0)")
    page.wait_for_timeout(500)
    assert any("listener probe" in e for e in ERRORS), ERRORS
    if IGNORED:
        print("\nignored benign console errors:", *IGNORED, sep="\n  ")
    errors = [e for e in ERRORS if "listener probe" not in e]
    assert errors == [], "\n".join(errors)
