"""The app's read queries against straightforward reference computations: the Preferences
tab's comparisons page (every filter, principle / judge / source, paging), the audit log's
replay (kept incrementally) and the caches' invalidation when rows are appended.

The references re-derive each answer from its definition (the label rule over every
verdict, a fresh replay of the whole audit log, the listing in plain SQL), so the cached,
sliced and incremental paths must agree with them row for row."""
from __future__ import annotations

import sys
import time

import pytest

from conftest import ROOT

from cai_core.labels import listing as browse
from cai_core.labels.audits import human_decisions, record_audit, standing_audits
from cai_core.labels.rule import ai_labels
from cai_core.store.verdicts import verdicts_of

sys.path.insert(0, str(ROOT))
from bench.synth import JUDGES, PRINCIPLES, SynthSizes, generate  # noqa: E402


# -- references ---------------------------------------------------------------------------------
def ref_standing(store, author=None):
    """The audit log replayed from scratch (undo pops the author's latest standing action)."""
    stacks: dict = {}
    for r in store.query("SELECT id, comparison_id, author, action, reason, label, p_a, judge_runs, created_at "
                         "FROM audits ORDER BY id"):
        stack = stacks.setdefault((r["comparison_id"], r["author"]), [])
        if r["action"] == "undo":
            if stack:
                stack.pop()
        else:
            stack.append(r)
    rows = sorted((r for s in stacks.values() for r in s), key=lambda r: r["id"])
    return [r for r in rows if author is None or r["author"] == author]


def ref_decisions(store):
    latest = {}
    for r in ref_standing(store):
        if r["action"] in ("accept", "A", "B", "tie"):
            latest[r["comparison_id"]] = r
    return {cid: (r["action"], r["author"], r["id"]) for cid, r in latest.items()}


def ref_scope(store):
    """The verdicts in the default scope, by its definition: each comparison's verdicts of the
    run that gave its newest verdict."""
    rows = store.query("SELECT id, comparison_id, coalesce(run_id, '') AS run, created_at FROM verdicts")
    newest: dict = {}
    for r in rows:
        if r["comparison_id"] not in newest or r["created_at"] > newest[r["comparison_id"]][0]:
            newest[r["comparison_id"]] = (r["created_at"], r["run"])
    keep = {r["id"] for r in rows if newest[r["comparison_id"]][1] == r["run"]}
    return [v for v in verdicts_of(store) if v.id in keep]


def ref_page(store, *, filter="all", principle=None, judge=None, source=None, low=0.2, limit=100, offset=0):
    scope = ref_scope(store)
    labels = ai_labels(scope)
    humans = ref_decisions(store)
    listed = store.query("SELECT c.id, c.source, c.answer_a, c.answer_b, p.text AS prompt FROM comparisons c "
                         "JOIN prompts p ON p.id = c.prompt_id ORDER BY c.created_at, c.id")
    judged: dict = {}
    for v in scope:
        judged.setdefault(v.comparison_id, {"ps": set(), "js": set(), "pj": set()})
        judged[v.comparison_id]["ps"].add(v.principle_id)
        judged[v.comparison_id]["js"].add(v.judge)
    out = []
    for c in listed:
        cid, lab, h = c["id"], labels.get(c["id"]), humans.get(c["id"])
        if cid not in judged:
            continue
        if principle and principle not in judged[cid]["ps"]:
            continue
        if judge and judge not in judged[cid]["js"]:
            continue
        if source and c["source"] != source:
            continue
        keep = {
            "all": True,
            "disagreement": lab is not None and (lab.flips > 0 or lab.judges_disagree),
            "low confidence": lab is not None and lab.confidence is not None and lab.confidence < low,
            "unparsed": lab is not None and lab.n_unparsed > 0,
            "audited": h is not None,
            "not audited": h is None,
        }[filter]
        if not keep:
            continue
        vote = lab.choice if lab else None
        label, label_source = (h[0], "human") if h and h[0] != "accept" else (vote, "human" if h else "ai")
        out.append({"id": cid, "source": c["source"], "answer_a": c["answer_a"], "answer_b": c["answer_b"],
                    "prompt": c["prompt"], "ai_choice": vote, "ai_p_a": lab.p_a, "confidence": lab.confidence,
                    "flips": lab.flips, "unparsed": lab.n_unparsed, "judges_disagree": lab.judges_disagree,
                    "n_verdicts": lab.n, "label": label, "label_source": label_source})
    return out[offset:offset + limit]


def same_rows(got, want):
    assert [r["id"] for r in got] == [r["id"] for r in want]
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for k in g:
            if isinstance(w[k], float):
                assert g[k] == pytest.approx(w[k]), (g["id"], k)
            else:
                assert g[k] == w[k], (g["id"], k)


# -- a small synthetic store, with the edge cases the listing rules are about -------------------
@pytest.fixture
def synth(store):
    generate(store, SynthSizes(verdicts=3000, prompts=40, audit_share=0.15))
    # not listed: no verdicts; a verdict but no prompt row; a verdict whose comparison is gone
    store.insert("comparisons", [
        {"id": "zz-unjudged", "prompt_id": "p0000000", "source": "sl", "answer_a": "a", "answer_b": "b"},
        {"id": "zz-no-prompt", "prompt_id": "nope", "source": "sl", "answer_a": "a", "answer_b": "b"},
    ])
    store.execute("INSERT INTO verdicts (id, run_id, comparison_id, principle_id, constitution_version, judge, mode, "
                  "ab_order, raw, choice, p_first, p_a) VALUES "
                  "('zz1', 'r', 'zz-no-prompt', 'legality', 'v', 'j', 'cot', 'AB', 'x', 'A', 0.6, 0.6), "
                  "('zz2', 'r', 'zz-orphan', 'legality', 'v', 'j', 'cot', 'AB', 'x', 'A', 0.6, 0.6)")
    cids = [r["id"] for r in store.query("SELECT id FROM comparisons WHERE id LIKE 'c%' ORDER BY id")]
    # decisions, an accept, a second author, undos (also a second undo) and skips
    for i, cid in enumerate(cids[:40]):
        record_audit(store, cid, author=("ann", "bob")[i % 2], action=("A", "B", "tie", "accept")[i % 4])
        if i % 5 == 0:
            record_audit(store, cid, author=("ann", "bob")[i % 2], action="undo")
        if i % 7 == 0:
            record_audit(store, cid, author="cy", action="skip")
        if i % 9 == 0:
            record_audit(store, cid, author="cy", action="B")
            record_audit(store, cid, author="cy", action="undo")
            record_audit(store, cid, author="cy", action="undo")
    return store


FILTER_CASES = [
    {},
    {"principle": PRINCIPLES[3]},
    {"judge": JUDGES[1]},
    {"source": "sl"},
    {"principle": PRINCIPLES[5], "judge": JUDGES[0], "source": "samples"},
]


@pytest.mark.parametrize("filter", browse.COMPARISON_FILTERS)
def test_comparisons_page_matches_the_reference_for_every_filter_and_page(synth, filter):
    for extra in FILTER_CASES:
        whole = ref_page(synth, filter=filter, limit=10_000, **extra)
        assert whole or extra, (filter, extra)  # every filter finds something unnarrowed
        same_rows(browse.comparisons_page(synth, filter=filter, limit=10_000, **extra), whole)
        for offset, limit in ((0, 1), (0, 7), (3, 5), (11, 13), (len(whole) - 2, 10), (len(whole) + 5, 10)):
            got = browse.comparisons_page(synth, filter=filter, limit=limit, offset=max(offset, 0), **extra)
            same_rows(got, whole[max(offset, 0):max(offset, 0) + limit])
    # the listing never shows comparisons without verdicts, without a prompt row, or orphans
    ids = {r["id"] for r in browse.comparisons_page(synth, filter=filter, limit=10_000)}
    assert not ids & {"zz-unjudged", "zz-no-prompt", "zz-orphan"}


def test_low_confidence_threshold_and_bad_arguments(synth):
    for low in (0.05, 0.5, 0.9):
        same_rows(browse.comparisons_page(synth, filter="low confidence", low=low, limit=10_000),
                  ref_page(synth, filter="low confidence", low=low, limit=10_000))
    assert browse.comparisons_page(synth, limit=0) == []
    with pytest.raises(ValueError):
        browse.comparisons_page(synth, filter="hardest")


def test_pages_follow_appended_verdicts_and_audits(synth):
    before = browse.comparisons_page(synth, filter="audited", limit=10_000)
    cid = browse.comparisons_page(synth, filter="not audited", limit=1)[0]["id"]
    record_audit(synth, cid, author="dee", action="B")
    after = browse.comparisons_page(synth, filter="audited", limit=10_000)
    assert cid in {r["id"] for r in after} and len(after) == len(before) + 1
    same_rows(after, ref_page(synth, filter="audited", limit=10_000))
    record_audit(synth, cid, author="dee", action="undo")
    same_rows(browse.comparisons_page(synth, filter="audited", limit=10_000), before)
    # a new verdict that makes a comparison unparsed shows at once
    clean = [r for r in browse.comparisons_page(synth, limit=10_000) if not r["unparsed"]][0]["id"]
    synth.execute("INSERT INTO verdicts (id, run_id, comparison_id, principle_id, constitution_version, judge, mode, "
                  "ab_order, raw, choice) VALUES ('zz3', 'r', ?, 'legality', 'v', 'j', 'cot', 'AB', 'x', NULL)", [clean])
    assert clean in {r["id"] for r in browse.comparisons_page(synth, filter="unparsed", limit=10_000)}
    same_rows(browse.comparisons_page(synth, filter="unparsed", limit=10_000),
              ref_page(synth, filter="unparsed", limit=10_000))


# -- the audit log's replay -----------------------------------------------------------------------
def check_replay(store):
    ref = ref_standing(store)
    assert standing_audits(store) == ref
    for author in ("ann", "bob", "cy", "dee"):
        assert standing_audits(store, author=author) == [r for r in ref if r["author"] == author]
    some = sorted({r["comparison_id"] for r in ref})[::3]
    assert standing_audits(store, comparison_ids=some) == [r for r in ref if r["comparison_id"] in some]
    want = ref_decisions(store)
    got = human_decisions(store)
    assert list(got) == list(want)  # the same order as well
    assert {cid: (d.action, d.author, d.audit_id) for cid, d in got.items()} == want
    assert {c: (d.action, d.author, d.audit_id) for c, d in human_decisions(store, some).items()} == {
        c: want[c] for c in want if c in some}


def test_incremental_replay_equals_a_full_replay_after_every_action(synth):
    cids = [r["id"] for r in browse.comparisons_page(synth, limit=12)]
    check_replay(synth)
    script = [("ann", "A"), ("ann", "undo"), ("ann", "undo"), ("dee", "B"), ("ann", "skip"), ("dee", "accept"),
              ("dee", "undo"), ("bob", "tie"), ("cy", "A"), ("dee", "undo"), ("dee", "undo"), ("ann", "B")]
    for i, (author, action) in enumerate(script):
        record_audit(synth, cids[i % 3], author=author, action=action)
        check_replay(synth)


def test_replay_falls_back_to_a_full_replay_when_an_older_id_appears(synth):
    check_replay(synth)
    cid = browse.comparisons_page(synth, filter="audited", limit=1)[0]["id"]
    author = human_decisions(synth)[cid].author
    # an id below every time-ordered one (a clock set back): replayed in its place, not last
    synth.insert("audits", [{"id": "00000000000000000001-early", "comparison_id": cid, "author": author,
                             "action": "undo"}])
    check_replay(synth)
    # callers get copies: changing a returned row does not change the next answer
    standing_audits(synth)[0]["action"] = "changed"
    check_replay(synth)
    time.sleep(0.001)
