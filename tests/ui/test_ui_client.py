"""The app's HTTP API, driven with gradio_client against the real app (scripted backend, temp
store, one server for the module): every event is named and listed, and every named event,
called with realistic inputs, has the effect it promises in the store. Ends with four
auditors clicking at once: no action lost, labels follow the last action."""
from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from ui_server import XSS_TEXT, save_tiny_model, start_server, wait_for  # noqa: E402
from cai_core.types import DEFAULT_JUDGE_MODE  # noqa: E402

pytestmark = [
    pytest.mark.timeout(300),
    # gradio's own Dataframe code on pandas 3 (not ours)
    pytest.mark.filterwarnings("ignore:.*future.no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

TABS = ("constitution", "prompts", "sl", "critique", "pairs", "judge", "preferences", "audit", "train", "compare",
        "overview", "load")
NAME_RE = re.compile(rf"^({'|'.join(TABS)})_[a-z]+(_[a-z]+)*$")

CALLED: set[str] = set()
"""Every api_name this module called (the last test checks none was left out)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("ui-client"))
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def tiny_dir(tiny_lm, server):
    return save_tiny_model(tiny_lm, server.root / "tiny-model")


def call(client: Client, api: str, *args):
    CALLED.add(api)
    return client.predict(*args, api_name=f"/{api}")


def status_of(panel_html: str) -> str:
    m = re.search(r"data-status='([a-z]+)'", panel_html)
    return m.group(1) if m else ""


def poll_job(client: Client, api: str, *args, timeout: float = 60.0):
    """Call a job's poll event until its panel says the job ended; return the last output."""
    out: list = []

    def ended():
        r = call(client, api, *args)
        out[:] = [r]
        panel = r[0] if isinstance(r, tuple) else r
        return status_of(panel) in ("finished", "failed", "cancelled")

    wait_for(ended, timeout=timeout, interval=0.5, what=f"{api} to report the job ended")
    r = out[0]
    panel = r[0] if isinstance(r, tuple) else r
    assert status_of(panel) == "finished", panel
    return r


def rows(df: dict) -> list[list]:
    assert set(df) >= {"headers", "data"}, df
    return df["data"]


def figure(plot: dict) -> dict:
    assert plot["type"] == "plotly", plot
    return json.loads(plot["plot"])


def last_audit(store) -> dict:
    return store.query("SELECT * FROM audits ORDER BY id DESC LIMIT 1")[0]


# ---------------------------------------------------------------------------------------------
# The API surface
# ---------------------------------------------------------------------------------------------

def test_every_event_has_an_api_name_and_is_listed(server, client):
    deps = server.demo.get_config_file()["dependencies"]
    names = [d.get("api_name") for d in deps]
    # No event is left to Gradio's automatic naming (fn.__name__: "lambda", "handler", "poll"...).
    unnamed = [n for n in names if not isinstance(n, str) or not NAME_RE.match(n) or re.search(r"_\d+$", n)]
    assert not unnamed, f"events without an explicit, prefixed api_name: {unnamed}"
    assert len(names) == len(set(names)) == len(server.demo.fns)
    assert {fn.api_name for fn in server.demo.fns.values()} == set(names)
    assert all(d.get("api_visibility", "public") == "public" for d in deps)
    info = client.view_api(return_format="dict", print_info=False)
    listed = set(info["named_endpoints"])
    expected = {f"/{n}" for n in names}
    assert expected <= listed, f"not listed by the client: {sorted(expected - listed)}"
    # The app adds no endpoint of its own beyond its events (Gradio adds none here either).
    assert listed == expected, f"unexpected endpoints: {sorted(listed - expected)}"
    assert not info["unnamed_endpoints"], info["unnamed_endpoints"]
    assert not any(n.startswith("/lambda") for n in listed)
    # A few names the views promise, spelled out so a rename is noticed.
    for n in ("constitution_save", "prompts_import", "sl_start", "sl_poll", "critique_chain", "preferences_detail",
              "audit_undo", "audit_stats", "train_launch", "train_poll", "compare_chat", "compare_report",
              "overview_refresh", "load_train"):
        assert f"/{n}" in listed
    # Parameters are described (the client needs them to build a call).
    assert [p["label"] for p in info["named_endpoints"]["/audit_a"]["parameters"]] == [
        "Your name", "Comparison id", "Reason (optional)", "Queue", "Only this principle (id)"]


def test_page_load_events(server, client):
    pop = server.populated
    text, status, versions, old_v, new_v = call(client, "load_constitutions")
    assert "[[principles]]" in text and status == ""
    assert len(rows(versions)) >= 1 and old_v["__type__"] == "update" and new_v["value"]
    sets = call(client, "load_prompts")
    assert {r[0] for r in rows(sets)} == {"lab", "red-team"}
    runs = call(client, "load_generate")
    assert [r[0] for r in rows(runs)] == [pop.sl_run_id] and rows(runs)[0][1] == "finished"
    run, prompts, prompt = call(client, "load_critique")
    assert run["value"] == pop.sl_run_id and len(rows(prompts)) == 4 and prompt["value"]
    principle, judge, listed, cid, count = call(client, "load_preferences")  # the table lists on opening
    assert ["scripted:base", "scripted:base"] in judge["choices"] and len(principle["choices"]) > 1
    assert count == f"{pop.comparisons} comparisons" and len(rows(listed)) == pop.comparisons and cid["value"]
    summary, *plots = call(client, "load_audit")
    assert summary.startswith("audited comparisons: 0") and "unparsed verdicts 1" in summary
    assert len(plots) == 4 and all(figure(p) for p in plots)
    train_runs, ckpts, past = call(client, "load_train")
    assert rows(train_runs) == [] and rows(ckpts) == [] and past["choices"] == []
    report, lineage, wins_df, rates_df, wins, rates, human = call(client, "load_compare")
    assert report == "No evaluation yet." and rows(lineage) == [] and figure(wins) and figure(rates)
    stats, sets, cons, runs = call(client, "load_overview")
    assert stats["comparisons"] == pop.comparisons and stats["verdicts"] == pop.verdicts
    assert {c[0] for c in rows(cons)} >= {"harmless", "seed"}


# ---------------------------------------------------------------------------------------------
# Constitutions
# ---------------------------------------------------------------------------------------------

def test_constitution_load_select_and_validate(client):
    text, status, versions, old_v, new_v = call(client, "constitution_load", "harmless")
    assert text.startswith("title = ") and text.count("[[principles]]") == 16
    assert rows(versions)[0][1] == "Harmlessness principles"
    seed_text, *_ = call(client, "constitution_select", "seed")
    assert "[[principles]]" in seed_text and seed_text != text
    ok = call(client, "constitution_validate", "harmless", text)
    assert ok.startswith("✓ valid: 16 principles")
    broken = text.replace('id = "harmful-advice"', 'id = "harmful-advice', 1)
    bad_line = broken.splitlines().index('id = "harmful-advice') + 1
    msg = call(client, "constitution_validate", "harmless", broken)
    assert msg.startswith("✗") and f"harmless.toml:{bad_line}:" in msg, msg
    assert re.search(r"line \d+", msg), msg


def test_constitution_validate_names_the_line_of_an_error_at_the_end(client):
    text, *_ = call(client, "constitution_load", "harmless")
    broken = text.rstrip("\n") + "\nid = "
    msg = call(client, "constitution_validate", "harmless", broken)
    assert msg.startswith(f"✗ harmless.toml:{len(broken.splitlines())}: TOML syntax error"), msg


def test_constitution_save_new_version_keeps_the_old_one(server, client):
    store, pop = server.services.store, server.populated
    text, _, versions, _, _ = call(client, "constitution_load", "harmless")
    before = [r[0] for r in rows(versions)]
    assert pop.sl_constitution_version in before
    edited = text.replace('title = "Harmlessness principles"', 'title = "Harmlessness principles (lab edit)"', 1)
    assert edited != text
    with pytest.raises(AppError, match="TOML"):
        call(client, "constitution_save", "harmless", edited + "\n[[principles]\n")
    status, versions, old_v, new_v = call(client, "constitution_save", "harmless", edited)
    m = re.match(r"✓ saved harmless as version ([0-9a-f]+) \(older versions are kept; `cai sl --constitution harmless` uses it\)", status)
    assert m, status
    new_version = m.group(1)
    after = [r[0] for r in rows(versions)]
    assert len(after) == len(before) + 1 and set(before) < set(after) and new_version in after
    assert new_v["value"] == new_version and old_v["value"] == pop.sl_constitution_version
    # the store keeps every version, and the run recorded earlier still names the old one
    assert store.count("constitutions", "WHERE name = 'harmless'") == len(after)
    assert store.scalar("SELECT constitution_version FROM runs WHERE id = ?", [pop.sl_run_id]) == pop.sl_constitution_version
    old_source = store.scalar("SELECT source FROM constitutions WHERE version = ?", [pop.sl_constitution_version])
    assert old_source.rstrip("\n") == text.rstrip("\n")  # gr.Code drops the final newline
    assert (server.root / "constitutions.d" / "harmless.toml").read_text() == edited
    reloaded, *_ = call(client, "constitution_load", "harmless")
    assert reloaded == edited
    diff = call(client, "constitution_diff", pop.sl_constitution_version, new_version)
    assert '-title = "Harmlessness principles"' in diff.splitlines()
    assert '+title = "Harmlessness principles (lab edit)"' in diff.splitlines()
    assert call(client, "constitution_diff", new_version, new_version) == "(no differences)"


def test_constitution_import_of_the_paper_files(server, client):
    paper = Path(__file__).parent.parent / "fixtures" / "paper"
    files = [handle_file(str(paper / f)) for f in ("critique_revision.json", "preferences.json", "few_shot.json")]
    status, dropdown = call(client, "constitution_import", files, "paper-ui")
    assert status.startswith("✓ imported paper-ui as version ") and "4 principles, 2 examples" in status
    assert dropdown["value"] == "paper-ui" and ["paper-ui", "paper-ui"] in dropdown["choices"]
    assert "paper-ui" in server.services.constitutions()
    with pytest.raises(Exception, match="choose the paper's JSON files first"):
        call(client, "constitution_import", [], "paper-ui")


def test_constitution_what_if(server, client):
    services = server.services
    text, *_ = call(client, "constitution_load", "harmless")
    pid = services.principle_ids()[0]
    # change that principle's preference question in the draft
    lines = text.splitlines()
    at = lines.index(f'id = "{pid}"')
    k = next(i for i in range(at, len(lines)) if lines[i].startswith("preference = "))
    lines[k] = 'preference = "Which response would a careful, kind expert rather have written?"'
    draft = "\n".join(lines) + "\n"
    job, panel, summary, table = call(client, "constitution_what_if", "harmless", draft, "", 4)
    assert job and summary.startswith("re-judging")
    panel, summary, table = poll_job(client, "constitution_what_if_poll", job)
    judged = services.store.scalar(
        "SELECT count(DISTINCT comparison_id) FROM verdicts WHERE principle_id = ?", [pid])
    n = min(4, judged)
    assert re.fullmatch(rf"\d+ of {n} re-judged labels would flip under the draft", summary), summary
    assert len(rows(table)) == n and {r[1] for r in rows(table)} == {pid}
    flips = int(summary.split()[0])
    assert sum(r[8] == "FLIP" for r in rows(table)) == flips
    # the re-judgements are kept apart from the verdicts: auditable, never labels
    assert services.store.count("what_if_verdicts") == n * 2 * 2  # old and draft text, both orders
    # nothing changed: nothing to re-judge; and the draft is never saved
    job, panel, summary, table = call(client, "constitution_what_if", "harmless", text, "", 4)
    assert job == "" and summary.startswith("nothing to re-judge") and rows(table) == []
    assert draft.strip() not in {r["source"].strip() for r in services.store.query("SELECT source FROM constitutions")}


# ---------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------

def test_prompts_import_browse_search_add(server, client, tmp_path):
    store = server.services.store
    csv_file = tmp_path / "kitchen.csv"
    csv_file.write_text("prompt,category\nHow do I descale a kettle?,home\n"
                        "Is it safe to microwave a metal spoon?,safety\nHow do I descale a kettle?,home\n"
                        '"Best way to sharpen a knife, safely?",safety\n', encoding="utf-8")
    status, sets, set_name = call(client, "prompts_import", handle_file(str(csv_file)), "kitchen", "")
    assert status == "✓ kitchen: 3 added, 0 already present or duplicated", status  # in-file repeats dropped on read
    assert ["kitchen", 3] == rows(sets)[[r[0] for r in rows(sets)].index("kitchen")][:2]
    assert set_name["value"] == "kitchen" and ["kitchen", "kitchen"] in set_name["choices"]
    assert store.count("prompts", "WHERE set_id = (SELECT id FROM prompt_sets WHERE name = 'kitchen')") == 3
    status, _, _ = call(client, "prompts_import", handle_file(str(csv_file)), "kitchen", "")
    assert status == "✓ kitchen: 0 added, 3 already present or duplicated", status
    listed = rows(call(client, "prompts_browse", "kitchen", ""))
    assert [r[0] for r in listed] == [0, 1, 2] and listed[0][1] == "home" and listed[0][3] == "How do I descale a kettle?"
    assert {r[2] for r in listed} <= {"train", "held-out"}  # every prompt shows its recorded split
    found = rows(call(client, "prompts_search", "kitchen", "KNIFE"))
    assert [r[3] for r in found] == ["Best way to sharpen a knife, safely?"]
    assert rows(call(client, "prompts_browse", "kitchen", "nothing like this")) == []
    # a shipped set is imported on first look
    assert len(rows(call(client, "prompts_browse", "benign", ""))) > 10
    status, box, listed, sets = call(client, "prompts_add", "kitchen", "  How long do eggs keep in the fridge?  ")
    assert (status, box) == ("✓ added", "")
    assert listed["data"][-1][3] == "How long do eggs keep in the fridge?"
    assert dict((r[0], r[1]) for r in rows(sets))["kitchen"] == 4
    status, *_ = call(client, "prompts_add", "kitchen", "how long do EGGS keep in the fridge?")
    assert status == "already in the set"
    with pytest.raises(AppError, match="empty"):
        call(client, "prompts_add", "kitchen", "   ")
    # a new split of the set, recorded and shown
    status, listed, sets = call(client, "prompts_split", "kitchen", 0.5, 3)
    n_held = sum(r[2] == "held-out" for r in rows(listed))
    assert status == f"✓ kitchen: train {4 - n_held}, held-out {n_held}"
    assert rows(sets)[[r[0] for r in rows(sets)].index("kitchen")][1:4] == [4, 4 - n_held, n_held]
    with pytest.raises(AppError, match="greater than maximum"):  # the slider's own bounds
        call(client, "prompts_split", "kitchen", 1.0, 0)


# ---------------------------------------------------------------------------------------------
# Generate (SL) and Critique -> Revision
# ---------------------------------------------------------------------------------------------

def test_sl_start_poll_and_cancel(server, client):
    store = server.services.store
    job, panel = call(client, "sl_start", "red-team", "harmless", "base", 1, 3, False, 1, 0, 64, False, 1)
    assert re.fullmatch(r"job-\d+", job) and status_of(panel) in ("queued", "running", "finished")
    panel, runs = poll_job(client, "sl_poll", job)
    run_id = re.search(r"run <code>(sl-[0-9a-f]+)</code>", panel).group(1)
    assert "9/9" in panel and "3 answers, 3 critiques, 3 revisions" in panel  # answers + critiques + revisions
    counts = {t: store.count(t, "WHERE run_id = ?", [run_id]) for t in ("generations", "critiques", "revisions")}
    assert counts == {"generations": 3, "critiques": 3, "revisions": 3}
    row = next(r for r in rows(runs) if r[0] == run_id)
    assert row[1:6] == ["finished", "scripted:base", 3, 3, 3]
    # the same settings again resume (here: find) the same run; nothing is written twice
    job2, _ = call(client, "sl_start", "red-team", "harmless", "base", 1, 3, False, 1, 0, 64, False, 1)
    panel2, _ = poll_job(client, "sl_poll", job2)
    assert f"run <code>{run_id}</code>" in panel2 and store.count("generations", "WHERE run_id = ?", [run_id]) == 3
    # keeping revisions' first sentence is a setting of the run (a new run, recorded in its config)
    job3, _ = call(client, "sl_start", "red-team", "harmless", "base", 1, 3, False, 1, 0, 64, False, 1, 1)
    panel3, _ = poll_job(client, "sl_poll", job3)
    run3 = re.search(r"run <code>(sl-[0-9a-f]+)</code>", panel3).group(1)
    assert run3 != run_id and '"revision_sentences": 1' in store.query(
        "SELECT config FROM runs WHERE id = ?", [run3])[0]["config"]
    # cancel: nothing to cancel for an unknown or a finished job
    with pytest.raises(AppError, match="no running job to cancel"):
        call(client, "sl_cancel", "job-999")
    with pytest.raises(AppError, match="no running job to cancel"):
        call(client, "sl_cancel", job)
    with pytest.raises(AppError, match="not in the list of choices"):  # the Constitution dropdown refuses it
        call(client, "sl_start", "red-team", "no-such-constitution", "base", 1, 3, False, 1, 0, 64, False, 1)
    with pytest.raises(AppError, match="no prompt set named 'no-such-set'"):
        call(client, "sl_start", "no-such-set", "harmless", "base", 1, 3, False, 1, 0, 64, False, 1)


def test_critique_chain_shows_each_round_with_a_word_diff(server, client):
    pop = server.populated
    run, table, prompt = call(client, "critique_runs")
    assert run["value"] == rows(call(client, "load_generate"))[0][0]  # the newest SL run first
    assert pop.sl_run_id in [c[1] for c in run["choices"]]
    table, prompt = call(client, "critique_run_select", pop.sl_run_id, "", False)
    assert len(rows(table)) == 4 and all(r[2] == 2 for r in rows(table))
    ids = [c[1] for c in prompt["choices"]]
    assert prompt["value"] == ids[0] and pop.xss_prompt_id in ids
    html = call(client, "critique_chain", pop.sl_run_id, ids[0])
    assert html.count("class='cai-round'") == 2 and "Round 1" in html and "Round 2" in html
    assert html.count("class='cai-diff'") == 2
    assert re.search(r"<del class=\"cai-del\"[^>]*>", html) and re.search(r"<ins class=\"cai-ins\"[^>]*>", html)
    assert "First answer" in html and "Critique request" in html and "Revision" in html
    # model text is escaped: the XSS prompt comes back as text, never as markup
    xss = call(client, "critique_chain", pop.sl_run_id, pop.xss_prompt_id)
    assert "<script>" not in xss and "<img" not in xss and "&lt;script&gt;window.__xss=2&lt;/script&gt;" in xss
    # filters (they also narrow the prompt dropdown's choices)
    principle = rows(table)[0][3].split(", ")[0]
    only, _ = call(client, "critique_prompts", pop.sl_run_id, principle, False)
    assert 1 <= len(rows(only)) <= 4 and all(principle in r[3] for r in rows(only))
    flagged, _ = call(client, "critique_prompts", pop.sl_run_id, "", True)
    assert rows(flagged) == []


# ---------------------------------------------------------------------------------------------
# Preferences
# ---------------------------------------------------------------------------------------------

def test_preferences_list_filters_and_detail(server, client):
    services, pop = server.services, server.populated
    store = services.store
    audited_cid = store.query("SELECT id FROM comparisons WHERE id != ? ORDER BY id LIMIT 1", [pop.xss_comparison_id])[0]["id"]
    services.record_audit(audited_cid, author="pat", action="B", reason="set up for the filter")
    found = {}
    for f in ("all", "disagreement", "low confidence", "unparsed", "audited", "not audited"):
        table, cid, count = call(client, "preferences_list", f, "", "", "")
        found[f] = rows(table)
        assert count == f"{len(found[f])} comparisons"
        assert cid["value"] == (found[f][0][0] if found[f] else None)
        assert [c[1] for c in cid["choices"]] == [r[0] for r in found[f]]
    everything = found["all"]
    assert len(everything) == store.count("comparisons")
    ids = lambda rs: [r[0] for r in rs]  # noqa: E731
    # columns: id, prompt, AI label, P(A), confidence, flips, unparsed, label, label by
    assert ids(found["unparsed"]) == [pop.xss_comparison_id] and found["unparsed"][0][6] == 1
    assert ids(found["disagreement"]) == [r[0] for r in everything if r[5] > 0] != []
    raw = services.comparisons_page(limit=500)  # unrounded confidences; the tab's threshold is 0.2
    assert ids(found["low confidence"]) == [i["id"] for i in raw if (i["confidence"] or 1) < 0.2] != []
    assert all(float(r[4]) <= 0.2 for r in found["low confidence"])
    assert [(r[0], r[7], r[8]) for r in found["audited"]] == [(audited_cid, "B", "human")]
    assert ids(found["not audited"]) == [r[0] for r in everything if r[0] != audited_cid]
    # filters by principle, judge and source
    pid = server.services.principle_ids()[0]
    by_p, _, _ = call(client, "preferences_list", "all", pid, "", "")
    n_p = store.scalar("SELECT count(DISTINCT comparison_id) FROM verdicts WHERE principle_id = ?", [pid])
    assert len(rows(by_p)) == n_p
    by_j, _, _ = call(client, "preferences_list", "all", "", "scripted:base", "samples")
    assert len(rows(by_j)) == store.count("comparisons", "WHERE source = 'samples'")
    none, cid, count = call(client, "preferences_list", "all", "", "", "compare")  # no evaluation run yet
    assert (rows(none), cid["value"], count) == ([], None, "0 comparisons")
    # detail of one comparison: both answers, every verdict with its raw text, the label
    call(client, "preferences_list", "all", "", "", "")
    cid = audited_cid
    html, verdicts = call(client, "preferences_detail", cid)
    c = store.query("SELECT * FROM comparisons WHERE id = ?", [cid])[0]
    assert "A (scripted:base)" in html and "B (scripted:base)" in html
    assert "human decision <b>B</b> by pat" in html and "(from human)" in html
    assert c["answer_a"].split()[1] in html and c["answer_b"].split()[1] in html
    assert len(rows(verdicts)) == store.count("verdicts", "WHERE comparison_id = ?", [cid])
    assert {r[3] for r in rows(verdicts)} == {DEFAULT_JUDGE_MODE} and {r[4] for r in rows(verdicts)} == {"AB", "BA"}
    assert {r[0] for r in rows(verdicts)} == {pop.judge_run_id}  # each verdict names its judge run
    html, verdicts = call(client, "preferences_detail", pop.xss_comparison_id)
    assert "unparsed" in [r[5] for r in rows(verdicts)]
    assert "<script>" not in html and "&lt;script&gt;" in html
    html, verdicts = call(client, "preferences_detail", None)
    assert html == "<div>Choose a comparison.</div>" and not any(any(c not in ("", None) for c in r) for r in rows(verdicts))


def test_pairs_and_judge_jobs(server, client):
    store = server.services.store
    comparisons, verdicts = store.count("comparisons"), store.count("verdicts")
    job, panel = call(client, "pairs_start", "benign", "base", 3)
    assert status_of(panel) in ("queued", "running", "finished")
    panel = poll_job(client, "preferences_poll", job)
    pairs_run = re.search(r"run <code>(pairs-[0-9a-f]+)</code>", panel).group(1)
    assert "3 comparisons" in panel
    assert store.count("comparisons", "WHERE run_id = ?", [pairs_run]) == 3
    assert store.count("comparisons") == comparisons + 3
    job, panel = call(client, "judge_start", "harmless", "logprob", 1, "base")
    panel = poll_job(client, "preferences_poll", job)
    judge_run = re.search(r"run <code>(judge-[0-9a-f]+)</code>", panel).group(1)
    # a judging run over the latest pairs only (never "everything in the store"), both orders
    n = int(re.search(r"(\d+) verdicts, 0 unparsed", panel).group(1))
    assert n == store.count("verdicts", "WHERE run_id = ?", [judge_run]) == 2 * 3
    assert store.count("verdicts") == verdicts + n
    assert store.scalar("SELECT DISTINCT constitution_version FROM verdicts WHERE run_id = ?", [judge_run]) == \
        server.services.constitution("harmless").version != server.populated.sl_constitution_version
    assert store.count("verdicts", "WHERE run_id = ? AND comparison_id IN "
                                   "(SELECT id FROM comparisons WHERE run_id = ?)", [judge_run, pairs_run]) == 6
    with pytest.raises(AppError, match="not in the list of choices"):
        call(client, "judge_start", "no-such-constitution", "logprob", 1, "base")


# ---------------------------------------------------------------------------------------------
# Audit
# ---------------------------------------------------------------------------------------------

def test_audit_actions_append_rows_and_undo_cancels(server, client):
    services = server.services
    store, pop = services.store, server.populated
    with pytest.raises(AppError, match="type your name"):
        call(client, "audit_next", "  ", "disagreement", "")
    item, cid = call(client, "audit_next", "ann", "disagreement", "")
    assert cid == pop.xss_comparison_id  # the unparsed verdict puts it first
    assert "AI says" in item and "unparsed 1/" in item and "<script>" not in item
    with pytest.raises(AppError, match="press Next"):
        call(client, "audit_a", "ann", "", "", "disagreement", "")
    before = store.count("audits")
    seen = []
    for api, action, reason in (("audit_a", "A", ""), ("audit_b", "B", "B refuses and explains why"),
                                ("audit_tie", "tie", ""), ("audit_accept", "accept", ""), ("audit_skip", "skip", "")):
        item, next_cid, reason_box, status = call(client, api, "ann", cid, reason, "disagreement", "")
        assert status == f"recorded {action} on {cid}" and reason_box == ""
        row = last_audit(store)
        assert (row["comparison_id"], row["author"], row["action"], row["reason"]) == (cid, "ann", action, reason or None)
        seen.append((cid, action))
        assert next_cid and next_cid != cid and next_cid not in [c for c, _ in seen]
        cid = next_cid
    assert store.count("audits") == before + 5
    labels = services.effective_labels()
    for c, action in seen:
        if action in ("A", "B", "tie"):
            assert (labels[c].source, labels[c].choice) == ("human", action)
    accepted = seen[3][0]
    assert labels[accepted].source == "human" and labels[accepted].choice == labels[accepted].ai_choice
    assert labels[seen[4][0]].human is None  # a skip decides nothing
    # undo cancels ann's latest action (the skip: the item comes back to her queue)
    _, _, _, status = call(client, "audit_undo", "ann", "", "", "disagreement", "")
    assert status == f"undid your last action on {seen[4][0]}"
    row = last_audit(store)
    assert (row["comparison_id"], row["author"], row["action"]) == (seen[4][0], "ann", "undo")
    assert seen[4][0] in [q.comparison_id for q in services.audit_queue(author="ann", limit=None)]
    assert store.count("audits") == before + 6
    # an undo by someone who never audited
    with pytest.raises(AppError, match="nothing to undo"):
        call(client, "audit_undo", "nobody-yet", "", "", "disagreement", "")
    # an undo of a decisive action gives back the label from before it
    item, cid = call(client, "audit_next", "bob", "random", "")
    label_before = services.effective_labels().get(cid)
    call(client, "audit_b", "bob", cid, "", "random", "")
    assert services.effective_labels()[cid].human.author == "bob"
    _, _, _, status = call(client, "audit_undo", "bob", cid, "", "random", "")
    assert status == f"undid your last action on {cid}"
    assert services.effective_labels().get(cid) == label_before


def test_a_second_undo_cancels_the_action_before(server, client):
    services = server.services
    _, first = call(client, "audit_next", "cy", "random", "")
    _, second, _, _ = call(client, "audit_a", "cy", first, "", "random", "")
    call(client, "audit_b", "cy", second, "", "random", "")
    assert {c for c, lab in services.effective_labels().items() if lab.human and lab.human.author == "cy"} == {
        first, second}
    _, _, _, status = call(client, "audit_undo", "cy", "", "", "random", "")
    assert status == f"undid your last action on {second}"
    _, _, _, status = call(client, "audit_undo", "cy", "", "", "random", "")
    standing = {c for c, lab in services.effective_labels().items() if lab.human and lab.human.author == "cy"}
    assert status == f"undid your last action on {first}" and standing == set()


def test_audit_stats_and_the_plot_refresh_after_each_action(server, client):
    store = server.services.store
    rep = server.services.agreement()
    summary, p1, p2, p3, p4 = call(client, "audit_stats")
    m = re.match(r"audited comparisons: (\d+) · agreement (\d+ %|—) · Cohen's κ (-?[\d.]+|—) · position flips \d+ % · "
                 r"unparsed verdicts 1$", summary)
    assert m, summary
    assert int(m.group(1)) == rep.n >= 2
    figs = [figure(p) for p in (p1, p2, p3, p4)]
    assert figs[0]["data"], "agreement by principle has bars once comparisons are audited"
    assert figs[3]["data"] and any("human" in (t.get("name") or "") for t in figs[3]["data"]), figs[3]["data"]
    for action in ("accept", "a", "b", "tie", "skip", "undo"):
        out = call(client, f"audit_{action}_refresh_plots")
        assert out[0] == summary and len(out) == 5
    assert store.count("audits") >= 10


def test_concurrent_auditors_lose_nothing(server):
    """4 clients, 10 actions each, all submitted at once: 40 rows, right authors, and each
    comparison's effective label is its last action."""
    services = server.services
    store = services.store
    before = store.query("SELECT max(id) AS m, count(*) AS n FROM audits")[0]
    authors = [f"auditor-{i}" for i in range(4)]
    clients = [Client(server.url, verbose=False) for _ in authors]
    plans: dict[str, list[tuple[str, str]]] = {}
    for i, (author, c) in enumerate(zip(authors, clients)):
        _, first = call(c, "audit_next", author, "disagreement", "")
        queue = [q.comparison_id for q in services.audit_queue(strategy="disagreement", author=author, limit=10)]
        assert first == queue[0] and len(queue) == 10
        plans[author] = [(cid, "A" if (k + i) % 2 == 0 else "B") for k, cid in enumerate(queue)]
    barrier = threading.Barrier(len(authors))
    results: dict[str, list] = {}
    errors: list[BaseException] = []

    def work(author: str, c: Client) -> None:
        try:
            barrier.wait(timeout=30)
            jobs = [c.submit(author, cid, f"{author} #{k}", "disagreement", "", api_name=f"/audit_{action.lower()}")
                    for k, (cid, action) in enumerate(plans[author])]
            results[author] = [j.result(timeout=60) for j in jobs]
        except BaseException as e:  # reported below
            errors.append(e)

    CALLED.update({"audit_a", "audit_b"})
    threads = [threading.Thread(target=work, args=(a, c)) for a, c in zip(authors, clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    elapsed = time.time() - t0
    assert not errors, errors
    for author in authors:
        statuses = [r[3] for r in results[author]]
        assert statuses == [f"recorded {a} on {cid}" for cid, a in plans[author]]
    new = store.query("SELECT * FROM audits WHERE id > ? ORDER BY id", [before["m"]])
    stored = sum(1 for r in new if r["author"] in authors)
    print(f"\nactions stored under concurrency: {stored}/40 ({elapsed:.1f} s for 40 concurrent requests)")
    assert len(new) == stored == 40 and store.count("audits") == before["n"] + 40
    assert Counter((r["author"], r["comparison_id"], r["action"]) for r in new) == Counter(
        (a, cid, act) for a, plan in plans.items() for cid, act in plan)
    assert all(r["reason"].startswith(r["author"] + " #") for r in new)
    assert len({r["id"] for r in new}) == 40
    last: dict[str, str] = {}
    for r in new:  # ids are time-ordered: the last row per comparison is its last action
        last[r["comparison_id"]] = r["action"]
    labels = services.effective_labels(comparison_ids=list(last))
    assert {cid: (labels[cid].source, labels[cid].choice) for cid in last} == {
        cid: ("human", action) for cid, action in last.items()}
    assert len(last) == 10  # everyone worked the same "disagreement" queue: real contention


# ---------------------------------------------------------------------------------------------
# Compare
# ---------------------------------------------------------------------------------------------

def test_compare_chat_side_by_side(client):
    html = call(client, "compare_chat", "base, other", "Name three uses for a paperclip.", 64)
    cols = re.findall(r'<div class="cai-col".*?<strong class="cai-label"[^>]*>([^<]+)</strong>.*?'
                      r'<div class="cai-text"[^>]*>([^<]*)</div>', html, flags=re.S)
    assert [c[0] for c in cols] == ["base", "other"]
    assert all("to: Name three uses for a paperclip." in c[1] for c in cols), cols
    html = call(client, "compare_chat_submit", "base", XSS_TEXT, 64)
    assert "<script>" not in html and "&lt;script&gt;window.__xss=2&lt;/script&gt;" in html
    with pytest.raises(AppError, match="at least one model"):
        call(client, "compare_chat", " , ", "hi", 64)
    with pytest.raises(AppError, match="type a prompt"):
        call(client, "compare_chat", "base", "   ", 64)


def test_compare_run_poll_and_report(server, client):
    store = server.services.store
    assert call(client, "compare_report")[0] == "No evaluation yet."
    with pytest.raises(AppError, match="at least two models"):
        call(client, "compare_run", "base", "red-team", "held-out", 4, 64, False)
    job, panel = call(client, "compare_run", "base,sft", "red-team", "held-out", 4, 64, False)
    panel = poll_job(client, "compare_poll", job)
    run_id = re.search(r"run <code>([^<]+)</code>", panel).group(1)
    stamp, lineage, wins_df, rates_df, wins, rates, human = call(client, "compare_report")
    assert "No answer of this run has a human label yet" in human
    # People label the answers in the Audit tab; the report then shows their rates.
    html_, answer_id, shown_run, _ = call(client, "audit_label_next", "")
    assert shown_run == run_id and answer_id and "Prompt" in html_
    with pytest.raises(AppError, match="type your name first"):
        call(client, "audit_label_objection", "", answer_id, "", "")
    out = call(client, "audit_label_objection", "ann", answer_id, "explains why", run_id)
    assert out[1] != answer_id and out[4].startswith(f"{answer_id}: objection")
    assert "| 1 |" in call(client, "compare_report")[-1]
    for kind in ("comply", "evasive", "incoherent"):  # each button records its own label
        nxt = out[1]
        out = call(client, f"audit_label_{kind}", "ann", nxt, "", run_id)
        assert out[4].startswith(f"{nxt}: {kind}")
    assert stamp.startswith("Held out: 4 prompts of red-team (held-out)") and run_id in stamp
    assert [r[0] for r in rows(lineage)] == ["base", "sft"] and {r[3] for r in rows(lineage)} == {0}
    assert {(r[0], r[1]) for r in rows(wins_df)} == {("base", "sft"), ("sft", "base")}
    assert [r[0] for r in rows(rates_df)] == ["base", "sft"]
    assert figure(wins)["data"] and figure(rates)["data"]
    assert store.count("eval_reports", "WHERE run_id = ?", [run_id]) == 1


# ---------------------------------------------------------------------------------------------
# Train (a tiny random model: seconds)
# ---------------------------------------------------------------------------------------------

def test_train_launch_poll_curves_and_checkpoint(server, client, tiny_dir):
    store = server.services.store
    with pytest.raises(AppError, match="no running training job to cancel"):
        call(client, "train_cancel", "")
    with pytest.raises(AppError, match="no running training job to cancel"):
        call(client, "train_cancel", "job-999")
    with pytest.raises(AppError, match="not 'embedded' and not a local folder"):
        call(client, "train_launch", "sft", 2, 2e-5, 2, True, False, 1, str(server.root / "missing"), False, "")
    # each kind brings its own default learning rate (PPO's is ~7x smaller than SFT's)
    lr, batch, selection = call(client, "train_kind", "ppo")
    assert lr["value"] == 3e-6 and "prompt set" in selection["label"]
    lr, batch, selection = call(client, "train_kind", "sft")
    # reward labels from a judge never validated on gold pairs are flagged before training
    trust = call(client, "train_label_trust", "reward", "")
    assert "⚠" in trust and ("not validated" in trust or "no finished judge run" in trust), trust
    assert call(client, "train_label_trust", "sft", "") == ""
    assert lr["value"] == 2e-5 and "SL run ids" in selection["label"]
    job, run_from_launch, panel = call(client, "train_launch", "sft", 2, 2e-5, 2, True, False, 0.5, str(tiny_dir),
                                       False, server.populated.sl_run_id)
    assert status_of(panel) in ("queued", "running")
    # poll with what the UI holds (the run box may still be empty: the job names its run when it starts)
    panel, curves, log, runs, ckpts = poll_job(client, "train_poll", job, run_from_launch or "", timeout=150)
    run_id = re.search(r"run <code>(train-sft-[0-9a-f]+)</code>", panel).group(1)
    assert "2/2" in panel
    fig = figure(curves)
    assert fig["data"] and fig["data"][0]["name"] == "loss" and list(fig["data"][0]["x"]) == [1, 2], fig["data"]
    assert log.strip(), "the log tail shows the trainer's output"
    assert [r[:3] for r in rows(runs)] == [[run_id, "train-sft", "finished"]]
    ck = rows(ckpts)
    assert len(ck) == 1 and ck[0][1:3] == ["sft", run_id] and ck[0][5] == str(tiny_dir)
    assert store.count("checkpoints", "WHERE run_id = ?", [run_id]) == 1
    # the length weight reached the job's config
    result = json.loads((Path(server.services.settings.runs_dir) / run_id / "result.json").read_text())
    assert result["config"]["length_power"] == 0.5
    with pytest.raises(AppError, match="no running training job to cancel"):
        call(client, "train_cancel", job)
    # the curves of any past run, not only of a job launched in this page
    curves, log = call(client, "train_show_run", run_id)
    assert list(figure(curves)["data"][0]["x"]) == [1, 2] and log.strip()


# ---------------------------------------------------------------------------------------------
# Overview, and the coverage check
# ---------------------------------------------------------------------------------------------

def test_judge_validation_panel_events(server, client):
    """The panel's events (tests/ui/test_validation_panel.py runs a whole validation)."""
    table, summary, _ = call(client, "judge_validate_refresh")
    assert "No validations yet" in summary or "Newest" in summary
    with pytest.raises(AppError, match="at least one judge mode"):
        call(client, "judge_validate", "hhh", "test", [], 2)
    panel, *_ = call(client, "judge_validate_poll", "")
    assert isinstance(panel, str)


def test_overview_refresh_matches_the_store(server, client):
    services = server.services
    stats, sets, cons, runs = call(client, "overview_refresh")
    assert stats == services.stats()
    assert {r[0] for r in rows(sets)} >= {"lab", "red-team", "kitchen"}
    assert {c[0]: c[3] for c in rows(cons)}["harmless"] == "Harmlessness principles (lab edit)"
    assert len(rows(runs)) == services.store.count("runs")


def test_every_named_event_was_called(server, request):
    mine = [i for i in request.session.items if i.module is request.module and i.name != request.node.name]
    if len(mine) < len([n for n in dir(request.module) if n.startswith("test_")]) - 1:
        pytest.skip("only part of the module ran")
    names = {d["api_name"] for d in server.demo.get_config_file()["dependencies"]}
    assert names - CALLED == set(), f"never called: {sorted(names - CALLED)}"
