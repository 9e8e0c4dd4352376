"""Audit analytics: Cohen's kappa, the AI-vs-human agreement report, label counts over time,
the audit queue's strategies and exclusions, and the plotly figure builders."""
from __future__ import annotations

import json
import re
import time
from datetime import datetime

import plotly.graph_objects as go
import pytest

from cai_core.labels.agreement import agreement, cohen_kappa, label_counts_over_time
from cai_core.labels.audits import record_audit
from cai_core.labels.rule import ai_labels, position_bias
from cai_core.store.verdicts import verdicts_of
from cai_core.labels.audits import standing_audits
from cai_core.labels.queue import audit_queue
from cai_core.backends.scripted import ScriptedBackend
from cai_core.constitutions import find_constitution
from views.plots import (
    agreement_figure,
    calibration_figure,
    judge_agreement_figure,
    label_counts_figure,
    response_rates_figure,
    training_curves_figure,
    win_rate_figure,
)
from cai_core.prompt_sets import get_prompt_set
from cai_core.runners.judge import JudgeConfig, run_judge, start_judge_run
from cai_core.runners.pairs import PairsConfig, run_pairs, start_pairs_run
from cai_core.stages.compare import build_report
from cai_core.stages.judge import verdict_id


# -- building stores by hand ------------------------------------------------------------------------
def add_comparisons(store, *ids, prompt="How do I pick a lock?"):
    store.insert("prompts", [{"id": "p0", "set_id": "s", "position": 0, "text": prompt}])
    store.insert("comparisons", [{"id": c, "prompt_id": "p0", "source": "test", "answer_a": f"{c} answer a",
                                  "answer_b": f"{c} answer b"} for c in ids])


def add_verdict(store, cid, choice, p_a, *, principle="p1", judge="j1", order="AB", mode="cot", run="r1",
                created_at=None):
    p_first = None if p_a is None else (p_a if order == "AB" else 1 - p_a)
    row = {"id": verdict_id(run, cid, principle, judge, mode, order), "run_id": run, "comparison_id": cid,
           "principle_id": principle, "constitution_version": "v", "judge": judge, "mode": mode, "ab_order": order,
           "raw": "...", "choice": choice, "p_first": p_first, "p_a": p_a}
    if created_at is not None:
        row["created_at"] = created_at
    store.insert("verdicts", [row], ignore_existing=False)


def add_audit(store, cid, author, action, created_at):
    # record_audit stamps the current time; a test of time buckets needs chosen times.
    store.insert("audits", [{"id": f"{time.time_ns():020d}-{author}", "comparison_id": cid, "verdict_id": None,
                             "author": author, "action": action, "reason": None, "created_at": created_at}])
    time.sleep(0.001)  # keeps the time-ordered ids strictly increasing


# -- Cohen's kappa ------------------------------------------------------------------------------------
def _pairs(table):
    return [pair for pair, count in table.items() for _ in range(count)]


def test_kappa_classic_two_by_two():
    # 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no: p_o = .7, p_e = .5*.6 + .5*.4 = .5 -> 0.4
    pairs = _pairs({("y", "y"): 20, ("y", "n"): 5, ("n", "y"): 10, ("n", "n"): 15})
    assert cohen_kappa(pairs) == pytest.approx(0.4)


def test_kappa_three_categories_by_hand():
    table = {("A", "A"): 10, ("A", "B"): 2, ("A", "tie"): 1,
             ("B", "A"): 3, ("B", "B"): 8, ("B", "tie"): 1,
             ("tie", "A"): 1, ("tie", "B"): 1, ("tie", "tie"): 3}
    # n = 30, p_o = 21/30, marginals AI 13/12/5, human 14/11/5: p_e = 339/900 -> (630-339)/(900-339)
    assert cohen_kappa(_pairs(table)) == pytest.approx(291 / 561)


def test_kappa_perfect_chance_negative_and_undefined():
    assert cohen_kappa([("A", "A"), ("B", "B"), ("tie", "tie"), ("A", "A")]) == pytest.approx(1.0)
    assert cohen_kappa([("A", "A"), ("A", "B"), ("B", "A"), ("B", "B")]) == pytest.approx(0.0)
    assert cohen_kappa([("A", "A"), ("A", "B")]) == pytest.approx(0.0)  # a constant rater agrees by chance only
    assert cohen_kappa([("A", "B"), ("B", "A")]) == pytest.approx(-1.0)
    assert cohen_kappa([]) is None
    assert cohen_kappa(iter([("A", "A")] * 5)) is None  # p_e == 1: nothing to agree on beyond chance


# -- the agreement report -----------------------------------------------------------------------------
@pytest.fixture
def audited(store):
    """Seven comparisons (one never judged) with verdicts and audits chosen so every number can be worked out by hand."""
    add_comparisons(store, "c1", "c2", "c3", "c4", "c5", "c6", "c7")
    add_verdict(store, "c1", "A", 0.8, order="AB")
    add_verdict(store, "c1", "A", 0.7, order="BA")  # vote A, p_a .75
    add_verdict(store, "c2", "B", 0.3, order="AB")
    add_verdict(store, "c2", "B", 0.2, order="BA")  # vote B, p_a .25
    add_verdict(store, "c3", "A", 0.9, principle="p2", judge="j1")
    add_verdict(store, "c3", "A", 0.9, principle="p2", judge="j2")  # vote A, p_a .9
    add_verdict(store, "c4", "B", 0.4, principle="p2")
    add_verdict(store, "c4", None, None, principle="p2", judge="j2")  # vote B
    add_verdict(store, "c5", None, None)
    add_verdict(store, "c5", None, None, order="BA")  # nothing parsed: no AI vote
    add_verdict(store, "c6", "A", 0.6, judge="j2")  # vote A
    # c7 has no verdicts at all
    record_audit(store, "c1", author="ann", action="A")  # agrees
    record_audit(store, "c2", author="ann", action="A")  # disagrees
    record_audit(store, "c3", author="bob", action="accept")  # agrees by construction (A)
    record_audit(store, "c4", author="ann", action="tie")
    record_audit(store, "c4", author="ann", action="undo")  # c4 is not audited any more
    record_audit(store, "c5", author="ann", action="A")  # no AI vote to compare with
    record_audit(store, "c6", author="cy", action="tie")  # AI A vs human tie
    return store


def test_agreement_report_by_hand(audited):
    r = agreement(audited)
    assert (r.audited, r.n, r.no_ai_label, r.agree) == (5, 4, 1, 2)
    assert r.agreement == pytest.approx(0.5)
    # pairs (A,A) (B,A) (A,A) (A,tie): p_o = .5, p_e = 3*3/16 -> kappa = -1/7
    assert r.kappa == pytest.approx(-1 / 7)
    assert r.confusion == (("A", "A", 2), ("A", "tie", 1), ("B", "A", 1))
    rows = {row.key: row for row in r.by_principle}
    assert (rows["p1"].n, rows["p1"].agree) == (5, 2)  # c1 x2 agree, c2 x2 and c6 disagree
    assert (rows["p2"].n, rows["p2"].agree, rows["p2"].kappa) == (2, 2, None)  # all A vs A: kappa undefined
    judges = {row.key: row for row in r.by_judge}
    assert (judges["j1"].n, judges["j1"].agree) == (5, 3)
    assert (judges["j2"].n, judges["j2"].agree) == (2, 1)
    assert judges["j2"].agreement == pytest.approx(0.5)
    assert (r.verdicts, r.unparsed) == (11, 3)
    assert (r.flip_groups, r.flips, r.flip_rate) == (2, 0, 0.0)  # c1 and c2 judged both ways, consistently
    assert r.position_bias == pytest.approx(5 / 8)
    # calibration: human A/B decisions with an AI p_a (the tie on c6 is left out): c1 .75, c2 .25, c3 .9
    assert sum(b.n for b in r.calibration) == 3 and len(r.calibration) == 5
    by_bin = {(b.lo, b.hi): b for b in r.calibration if b.n}
    assert by_bin[(0.2, 0.4)].mean_predicted == pytest.approx(0.25) and by_bin[(0.2, 0.4)].observed == 1.0
    assert by_bin[(0.6, 0.8)].mean_predicted == pytest.approx(0.75)
    assert by_bin[(0.8, 1.0)].mean_predicted == pytest.approx(0.9)
    assert all(b.mean_predicted is None and b.observed is None for b in r.calibration if not b.n)
    d = r.to_dict()
    assert json.loads(json.dumps(d))["by_principle"][0]["key"] == "p1"


def test_accept_and_undo_change_the_report(audited):
    record_audit(audited, "c2", author="bob", action="accept")  # the latest decision wins: B, as the AI said
    r = agreement(audited)
    assert (r.n, r.agree) == (4, 3)
    record_audit(audited, "c3", author="bob", action="undo")  # bob's accept on c3 no longer stands
    r = agreement(audited)
    assert (r.audited, r.n, r.agree) == (4, 3, 2)
    assert {row.key: row.n for row in r.by_principle} == {"p1": 5}
    record_audit(audited, "c2", author="bob", action="undo")  # ann's A on c2 stands again
    assert agreement(audited).agree == 1


def test_judge_run_filter(audited):
    add_verdict(audited, "c1", "B", 0.1, run="r2")
    add_verdict(audited, "c1", "B", 0.1, run="r2", order="BA")
    only_r2 = agreement(audited, runs=["r2"])
    assert (only_r2.n, only_r2.agree, only_r2.no_ai_label, only_r2.verdicts) == (1, 0, 4, 2)
    only_r1 = agreement(audited, runs=["r1"])
    assert (only_r1.n, only_r1.agree, only_r1.verdicts) == (4, 2, 11)
    assert agreement(audited, runs=["nope"]).no_ai_label == 5


def test_empty_store_report(store):
    r = agreement(store)
    assert (r.n, r.agreement, r.kappa, r.flip_rate, r.position_bias) == (0, None, None, None, None)
    assert r.by_principle == () and sum(b.n for b in r.calibration) == 0
    with pytest.raises(ValueError):
        agreement(store, bins=0)


# -- flip rate with scripted judges --------------------------------------------------------------------
def make_pairs(store, n_prompts=4):
    b = ScriptedBackend("sampler")
    cfg = PairsConfig(limit=n_prompts, n=2)
    run, _ = start_pairs_run(store, b, get_prompt_set(store, "red-team"), cfg)
    run_pairs(store, b, run, cfg)


def judge_all(store, backend, **cfg):
    cons = find_constitution("harmless")
    config = JudgeConfig(mode="cot", **cfg)
    run, _ = start_judge_run(store, [backend], cons, config)
    return run_judge(store, [backend], cons, run, config)


def _shown(text, tag):
    m = re.search(rf"<response_{tag}>\n(.*?)\n</response_{tag}>", text, re.S)
    return m.group(1) if m else ""


def content_judge(request):
    """Prefers the answer whose text sorts first, wherever it is shown: no position bias."""
    text = request.messages[-1].content
    return "Therefore, the answer is (A)." if _shown(text, "A") < _shown(text, "B") else "Therefore, the answer is (B)."


def test_flip_rate_position_biased_vs_content_judge(store):
    make_pairs(store)
    judge_all(store, ScriptedBackend("first", reply=lambda r: "Therefore, the answer is (A)."), principles=2)
    judge_all(store, ScriptedBackend("content", reply=content_judge), principles=2)
    runs = {r["judge"]: r["run_id"] for r in store.query("SELECT DISTINCT judge, run_id FROM verdicts")}
    biased = agreement(store, runs=[runs["first"]])
    assert biased.flip_groups == 4 * 2 and biased.flip_rate == 1.0 and biased.position_bias == 1.0
    fair = agreement(store, runs=[runs["content"]])
    assert fair.flip_groups == 4 * 2 and fair.flip_rate == 0.0 and fair.position_bias == pytest.approx(0.5)
    both = agreement(store, runs=list(runs.values()))  # over both runs' verdicts, audited or not
    assert both.flip_rate == pytest.approx(0.5) and both.n == 0
    latest = agreement(store)  # by default each comparison's latest judge run: the content judge
    assert latest.flip_rate == 0.0 and latest.verdicts == fair.verdicts


# -- label counts over time ----------------------------------------------------------------------------
def test_label_counts_over_time(store):
    add_comparisons(store, "c1", "c2")
    t9, t10, t11 = datetime(2026, 1, 5, 9, 15), datetime(2026, 1, 5, 10, 5), datetime(2026, 1, 6, 11, 0)
    add_verdict(store, "c1", "A", 0.6, created_at=t9)
    add_verdict(store, "c1", "A", 0.6, order="BA", created_at=datetime(2026, 1, 5, 9, 45))
    add_verdict(store, "c2", None, None, created_at=t10)
    add_verdict(store, "c2", "B", 0.4, order="BA", created_at=t11)
    add_audit(store, "c1", "ann", "A", t10)
    add_audit(store, "c2", "ann", "tie", t10)
    add_audit(store, "c2", "ann", "undo", t11)  # cancels the tie: it is not counted
    add_audit(store, "c2", "bob", "accept", t11)
    add_audit(store, "c1", "bob", "skip", t11)  # a skip is not a label
    rows = label_counts_over_time(store, "hour")
    assert rows == [
        {"time": datetime(2026, 1, 5, 9), "source": "ai", "label": "A", "count": 2},
        {"time": datetime(2026, 1, 5, 10), "source": "ai", "label": "unparsed", "count": 1},
        {"time": datetime(2026, 1, 5, 10), "source": "human", "label": "A", "count": 1},
        {"time": datetime(2026, 1, 6, 11), "source": "ai", "label": "B", "count": 1},
        {"time": datetime(2026, 1, 6, 11), "source": "human", "label": "accept", "count": 1},
    ]
    days = label_counts_over_time(store, "day")
    assert {(r["time"].day, r["source"], r["label"]): r["count"] for r in days} == {
        (5, "ai", "A"): 2, (5, "ai", "unparsed"): 1, (5, "human", "A"): 1, (6, "ai", "B"): 1, (6, "human", "accept"): 1}
    assert label_counts_over_time(store, "day", runs=["nope"]) == [
        r for r in days if r["source"] == "human"]
    with pytest.raises(ValueError):
        label_counts_over_time(store, "year; DROP TABLE verdicts")
    assert [a["action"] for a in standing_audits(store)] == ["A", "accept", "skip"]


# -- the audit queue ------------------------------------------------------------------------------------
@pytest.fixture
def queued(store):
    add_comparisons(store, "q1", "q2", "q3", "q4", "q5", "q6")
    add_verdict(store, "q1", None, None)
    add_verdict(store, "q1", "A", 0.9, order="BA")  # an unparsed verdict: tier 1
    add_verdict(store, "q2", "A", 0.6, principle="p2")
    add_verdict(store, "q2", "B", 0.4, principle="p2", order="BA")  # position flip: tier 2
    add_verdict(store, "q3", "A", 0.7, judge="j1")
    add_verdict(store, "q3", "B", 0.4, judge="j2")  # judges disagree: tier 3
    add_verdict(store, "q4", "A", 0.6)  # confidence .2
    add_verdict(store, "q5", "B", 0.1, principle="p2", judge="j2")  # confidence .8
    # q6: never judged, never queued
    return store


def ids(items):
    return [i.comparison_id for i in items]


def test_disagreement_order_and_reasons(queued):
    items = audit_queue(queued, strategy="disagreement")
    assert ids(items) == ["q1", "q2", "q3", "q4", "q5"]
    reasons = {i.comparison_id: i.reason for i in items}
    assert reasons["q1"].startswith("unparsed 1/2")
    assert reasons["q2"].startswith("position flip") and "low confidence 0.00" in reasons["q2"]
    assert reasons["q3"].startswith("judges disagree")
    assert reasons["q4"] == "low confidence 0.20"
    assert reasons["q5"] == "confidence 0.80"
    q1 = items[0]
    assert (q1.prompt, q1.answer_a, q1.answer_b) == ("How do I pick a lock?", "q1 answer a", "q1 answer b")
    assert (q1.choice, q1.p_a, q1.n_verdicts, q1.n_unparsed, q1.principles) == ("A", 0.9, 2, 1, ("p1",))
    assert items[1].flips == 1 and items[1].choice == "tie" and items[2].judges_disagree
    assert ids(audit_queue(queued, strategy="disagreement", limit=2)) == ["q1", "q2"]
    assert audit_queue(queued, strategy="disagreement", limit=0) == []


def test_queue_fields_match_aggregate(store):
    make_pairs(store, n_prompts=5)
    judge_all(store, ScriptedBackend("first", reply=lambda r: "Therefore, the answer is (A)."), principles=2)
    judge_all(store, ScriptedBackend("content", reply=content_judge), principles=1)
    judge_all(store, ScriptedBackend("mute", reply=lambda r: "Hmm."), principles=1, orders=("AB",))
    runs = [r["id"] for r in store.query("SELECT id FROM runs WHERE kind = 'judge' ORDER BY created_at")]
    labels = ai_labels(verdicts_of(store))
    # an explicit ensemble of the three runs: the SQL summary and the Python rule agree
    items = audit_queue(store, strategy="disagreement", limit=None, runs=runs)
    assert len(items) == len(labels) == 5
    for i in items:
        lab = labels[i.comparison_id]
        assert (i.choice, i.flips, i.n_verdicts, i.n_unparsed, i.judges_disagree) == (
            lab.choice, lab.flips, lab.n, lab.n_unparsed, lab.judges_disagree)
        assert i.p_a == pytest.approx(lab.p_a) and i.confidence == pytest.approx(lab.confidence)
    # by default only each comparison's latest judge run counts: the mute judge, no label at all
    latest = audit_queue(store, strategy="disagreement", limit=None)
    assert {(i.choice, i.n_verdicts, i.judge_runs) for i in latest} == {(None, 1, (runs[-1],))}
    # the report's SQL statistics follow the same rules as the label rule / position_bias
    report = agreement(store, runs=runs)
    assert report.flips == sum(lab.flips for lab in labels.values()) > 0
    assert report.position_bias == pytest.approx(position_bias(verdicts_of(store)))
    assert report.unparsed == sum(lab.n_unparsed for lab in labels.values()) > 0


def test_author_exclusion_include_audited_and_undo(queued):
    record_audit(queued, "q1", author="ann", action="B")
    record_audit(queued, "q2", author="bob", action="accept")
    assert ids(audit_queue(queued, strategy="disagreement", author="ann")) == ["q2", "q3", "q4", "q5"]
    assert ids(audit_queue(queued, strategy="disagreement", author="bob")) == ["q1", "q3", "q4", "q5"]
    assert ids(audit_queue(queued, strategy="disagreement")) == ["q3", "q4", "q5"]  # nobody: any decision
    everything = audit_queue(queued, strategy="disagreement", author="ann", include_audited=True)
    assert ids(everything) == ["q1", "q2", "q3", "q4", "q5"]
    assert (everything[0].human_action, everything[0].human_author) == ("B", "ann")
    record_audit(queued, "q1", author="ann", action="undo")
    assert ids(audit_queue(queued, strategy="disagreement", author="ann"))[0] == "q1"
    record_audit(queued, "q1", author="ann", action="skip")  # skipped: not served straight back
    assert "q1" not in ids(audit_queue(queued, strategy="disagreement", author="ann"))
    assert ids(audit_queue(queued, strategy="disagreement", author="ann", include_skipped=True))[0] == "q1"
    assert "q1" in ids(audit_queue(queued, strategy="disagreement", author="bob"))


def test_principle_and_judge_filters(queued):
    assert ids(audit_queue(queued, strategy="disagreement", principle="p2")) == ["q2", "q5"]
    assert ids(audit_queue(queued, strategy="disagreement", judge="j2")) == ["q3", "q5"]
    assert ids(audit_queue(queued, strategy="random", principle="p2", judge="j2")) == ["q5"]
    assert ids(audit_queue(queued, strategy="random", principle="p2", judge="j1")) == ["q2"]
    add_verdict(queued, "q4", "A", 0.6, principle="p2", judge="j9")
    # q4 now has principle p1 (by j1) and judge j9 (on p2), but no p1 verdict by j9
    assert audit_queue(queued, strategy="random", principle="p1", judge="j9") == []
    assert ids(audit_queue(queued, strategy="random", principle="p2", judge="j9")) == ["q4"]

    q3 = audit_queue(queued, strategy="disagreement", judge="j2")[0]
    assert q3.n_verdicts == 2 and q3.judges_disagree  # the full AI label, not only j2's verdict
    assert audit_queue(queued, strategy="stratified", principle="nope") == []
    with pytest.raises(ValueError):
        audit_queue(queued, strategy="hardest")


@pytest.fixture
def many(store):
    cids = [f"m{i:02d}" for i in range(30)]
    add_comparisons(store, *cids)
    for i, c in enumerate(cids):
        add_verdict(store, c, "A", 0.6, principle="p1" if i < 24 else ("p2" if i < 28 else "p3"))
    return store


def test_random_is_seeded_and_complete(many):
    a = ids(audit_queue(many, strategy="random", seed=1, limit=None))
    assert a == ids(audit_queue(many, strategy="random", seed=1, limit=None))
    assert sorted(a) == [f"m{i:02d}" for i in range(30)]
    assert a != ids(audit_queue(many, strategy="random", seed=2, limit=None))
    assert a != sorted(a)
    assert ids(audit_queue(many, strategy="random", seed=1, limit=5)) == a[:5]
    assert {i.reason for i in audit_queue(many, strategy="random")} == {"random"}


def test_stratified_round_robin(many):
    items = audit_queue(many, strategy="stratified", seed=3, limit=None)
    assert len(items) == 30 and len(set(ids(items))) == 30
    first = [i.principles[0] for i in items[:3]]
    assert first == ["p1", "p2", "p3"]  # every principle within the first round
    assert [i.reason for i in items[:3]] == ["principle p1", "principle p2", "principle p3"]
    # p3 has 2 comparisons and p2 4: they run out, p1 (24) fills the rest
    assert [i.principles[0] for i in items] == ["p1", "p2", "p3"] * 2 + ["p1", "p2"] * 2 + ["p1"] * 20
    assert ids(items) == ids(audit_queue(many, strategy="stratified", seed=3, limit=None))
    assert ids(items) != ids(audit_queue(many, strategy="stratified", seed=4, limit=None))
    assert ids(audit_queue(many, strategy="stratified", seed=3, limit=4)) == ids(items)[:4]
    assert {i.principles[0] for i in audit_queue(many, strategy="stratified", principle="p2")} == {"p2"}


def test_stratified_serves_multi_principle_comparisons_once(store):
    add_comparisons(store, "x1", "x2")
    add_verdict(store, "x1", "A", 0.6, principle="p1")
    add_verdict(store, "x1", "A", 0.6, principle="p2")
    add_verdict(store, "x2", "B", 0.3, principle="p2")
    items = audit_queue(store, strategy="stratified")
    assert sorted(ids(items)) == ["x1", "x2"]
    assert items[0].principles == ("p1", "p2")


def test_queue_is_fast_on_thousands_of_comparisons(store):
    n = 3000
    # Bulk rows in SQL: row-by-row inserts would measure the test, not the queue.
    store.execute("INSERT INTO prompts SELECT 'p' || i, 's', i, 'prompt ' || i, NULL, now() FROM range(?) t(i)", [n])
    store.execute("INSERT INTO comparisons (id, prompt_id, source, answer_a, answer_b) "
                  "SELECT 'c' || lpad(i::VARCHAR, 5, '0'), 'p' || i, 'test', 'a ' || i, 'b ' || i FROM range(?) t(i)", [n])
    store.execute("""
        INSERT INTO verdicts (id, run_id, comparison_id, principle_id, constitution_version, judge, mode, ab_order,
                              raw, choice, p_first, p_a)
        SELECT 'v' || i || '-' || pr || '-' || o, 'r', 'c' || lpad(i::VARCHAR, 5, '0'), 'p' || ((i + pr) % 7), 'v', 'j',
               'logprob', o, '{}', CASE WHEN (i * 7 + pr) % 13 = 0 THEN NULL WHEN (i + pr) % 3 = 0 THEN 'B' ELSE 'A' END,
               ((i * 37 + pr) % 100) / 100.0, ((i * 37 + pr) % 100) / 100.0
        FROM range(?) t(i), (VALUES (0), (1)) p(pr), (VALUES ('AB'), ('BA')) q(o)""", [n])
    for k in range(0, 300, 3):
        record_audit(store, f"c{k:05d}", author="ann", action="A")
    for strategy in ("random", "stratified", "disagreement"):
        t0 = time.perf_counter()
        items = audit_queue(store, strategy=strategy, author="ann", limit=20)
        elapsed = time.perf_counter() - t0
        assert len(items) == 20 and elapsed < 1.0, (strategy, elapsed)
    t0 = time.perf_counter()
    report = agreement(store)
    assert report.n == 100 and time.perf_counter() - t0 < 1.0


# -- plots ---------------------------------------------------------------------------------------------
def n_traces(fig):
    assert isinstance(fig, go.Figure)
    return len(json.loads(fig.to_json())["data"])


def title(fig):
    return fig.layout.title.text or ""


def test_agreement_plots(audited):
    r = agreement(audited)
    assert n_traces(agreement_figure(r)) == 2
    assert n_traces(agreement_figure(r.to_dict())) == 2
    fig = agreement_figure(r)
    assert "κ" in fig.data[0].text[0] and "agreement" in title(fig)
    assert n_traces(judge_agreement_figure(r)) == 1 and "flip rate" in title(judge_agreement_figure(r))
    cal = calibration_figure(r)
    assert n_traces(cal) == 2 and len(cal.data[1].x) == 3
    assert n_traces(label_counts_figure(label_counts_over_time(audited))) == len(
        {(x["source"], x["label"]) for x in label_counts_over_time(audited)})


def test_agreement_plots_empty(store):
    r = agreement(store)
    for fn in (agreement_figure, judge_agreement_figure, calibration_figure):
        for arg in (r, r.to_dict(), {}, None):
            fig = fn(arg)
            assert n_traces(fig) == 0 and title(fig)
    assert n_traces(label_counts_figure([])) == 0 and "nothing" in title(label_counts_figure(None))


def test_training_curves_figure():
    metrics = [{"step": 2, "loss": 1.0, "kl": 0.1}, {"step": 1, "loss": 2.0, "kl": float("nan")},
               {"step": 3, "loss": 0.5, "reward": 0.3, "learning_rate": 1e-5}]
    fig = training_curves_figure(metrics)
    assert n_traces(fig) == 3 and [t.name for t in fig.data] == ["loss", "reward", "kl"]
    assert list(fig.data[0].x) == [1, 2, 3] and list(fig.data[0].y) == [2.0, 1.0, 0.5]
    assert n_traces(training_curves_figure(metrics, keys=("loss",))) == 1
    assert title(training_curves_figure([])) == "no metrics yet" and n_traces(training_curves_figure(None)) == 0
    assert "no metrics yet" in title(training_curves_figure([{"step": 1, "grad_norm": 3}]))


def eval_report():
    outcomes = [("base", "cai", "B")] * 7 + [("base", "cai", "A")] * 2 + [("base", "cai", "tie"), ("base", "cai", None)]
    labels = {"base": ["comply"] * 8 + ["evasive"] * 2, "cai": ["objection"] * 7 + ["evasive", "comply", "empty"]}
    return build_report(["base", "cai"], outcomes, labels, 10)


def test_eval_plots():
    rep = eval_report()
    wr = win_rate_figure(rep.to_dict())
    assert n_traces(wr) == 2  # one per opponent
    cai = next(t for t in wr.data if t.name == "vs base")
    assert list(cai.x) == ["cai"] and cai.y[0] == pytest.approx(0.75)
    assert cai.error_y.array[0] > 0 and cai.error_y.arrayminus[0] > 0
    assert n_traces(win_rate_figure(rep)) == 2  # the report object works too
    rr = response_rates_figure(rep.to_dict())
    assert n_traces(rr) == 4 and rr.layout.barmode == "stack"
    assert [t.name for t in rr.data] == ["comply", "objection", "evasive", "incoherent"]
    assert rr.data[1].y[1] == pytest.approx(0.7)


def test_eval_plots_empty():
    empty = build_report(["base"], [], {}, 0).to_dict()
    for fn in (win_rate_figure, response_rates_figure):
        for arg in (empty, {}, None, {"win_rates": [], "response_rates": []}):
            fig = fn(arg)
            assert n_traces(fig) == 0 and title(fig)


@pytest.mark.parametrize("bucket", ["minute", "hour", "day"])
def test_label_counts_bars_cover_their_bucket_even_alone(bucket):
    """Everything labelled within one bucket, and a lone human bar in another: each bar is a
    bucket wide (plotly alone would size a one-point trace to a millisecond) and the axis
    spans whole buckets around the data (plotly alone zooms one bucket to sub-ms ticks)."""
    from datetime import timedelta

    from views.plots import BUCKET_SECONDS

    sec = BUCKET_SECONDS[bucket]
    t0 = datetime(2026, 12, 2, 14)
    one = [{"time": t0, "source": "ai", "label": "A", "count": 40},
           {"time": t0, "source": "ai", "label": "B", "count": 24},
           {"time": t0, "source": "human", "label": "accept", "count": 5}]
    fig = label_counts_figure(one, bucket)
    lo, hi = (datetime.fromisoformat(str(x)) if not isinstance(x, datetime) else x for x in fig.layout.xaxis.range)
    assert hi - lo == timedelta(seconds=3 * sec) and lo < t0 and t0 + timedelta(seconds=sec) < hi
    for trace in fig.data:
        assert list(trace.width) == [sec * 1000 * 0.8] and trace.xperiod == sec * 1000
        assert trace.xperiodalignment == "middle"  # over its bucket, which starts at the time given
    two = one[:2] + [{"time": t0 + timedelta(seconds=sec), "source": "human", "label": "A", "count": 5}]
    fig = label_counts_figure(two, bucket)
    lone = [t for t in fig.data if t.name == "human: A"][0]
    assert list(lone.width) == [sec * 1000 * 0.8]
    lo, hi = (datetime.fromisoformat(str(x)) if not isinstance(x, datetime) else x for x in fig.layout.xaxis.range)
    assert lo <= t0 and hi >= t0 + timedelta(seconds=2 * sec)
