"""The RL-phase records with the scripted backend: pairs, judging runs (resume, failures),
audits and undo, override precedence in preference snapshots, the compare runner."""
from __future__ import annotations

import json

import pytest

from cai_core.labels.audits import effective_labels, human_decisions, record_audit
from cai_core.backends.base import Completion
from cai_core.backends.scripted import ScriptedBackend
from cai_core.constitutions import find_constitution
from cai_core.prompt_sets import get_prompt_set
from cai_core.runners.judge import JudgeConfig, run_judge, start_judge_run
from cai_core.runners.pairs import PairsConfig, pairs_from_sl, run_pairs, start_pairs_run
from cai_core.labels.snapshots import preference_records


def make_pairs(store, n_prompts=6, n=2):
    b = ScriptedBackend("sampler")
    ps = get_prompt_set(store, "red-team")
    cfg = PairsConfig(limit=n_prompts, n=n)
    run, _ = start_pairs_run(store, b, ps, cfg)
    return run, run_pairs(store, b, run, cfg)


def judge_all(store, judge_backend, **cfg):
    cons = find_constitution("harmless")
    config = JudgeConfig(**cfg)
    run, _ = start_judge_run(store, [judge_backend], cons, config)
    return run_judge(store, [judge_backend], cons, run, config)


def test_pairs_are_distinct_seeded_samples_and_resume(store):
    run, res = make_pairs(store, n_prompts=6, n=3)
    assert res.status == "finished" and res.comparisons == 6 * 3
    rows = store.query("SELECT answer_a, answer_b, parent_a, parent_b FROM comparisons")
    assert all(r["answer_a"] != r["answer_b"] for r in rows)
    seeds = {json.loads(r["params"])["seed"] for r in store.query("SELECT params FROM generations")}
    assert seeds == {0, 1, 2}
    _, again = make_pairs(store, n_prompts=6, n=3)
    assert again.comparisons == 18 and store.count("generations") == 18


def test_pairs_need_sampling():
    from cai_core.backends.base import GenerationParams

    with pytest.raises(ValueError, match="temperature"):
        PairsConfig(params=GenerationParams(temperature=0))
    with pytest.raises(ValueError):
        PairsConfig(n=1)


def test_pairs_from_sl_run(store, scripted):
    from cai_core.runners.sl import SLConfig, run_sl, start_sl_run

    c = find_constitution("seed")
    cfg = SLConfig(rounds=2, limit=3)
    run, _ = start_sl_run(store, scripted, c, get_prompt_set(store, "red-team"), cfg)
    run_sl(store, scripted, c, run, cfg)
    assert pairs_from_sl(store, run.id) == 3
    assert pairs_from_sl(store, run.id) == 3 and store.count("comparisons") == 3
    row = store.query("SELECT c.answer_b, r.text FROM comparisons c JOIN revisions r ON r.id = c.parent_b")[0]
    assert row["answer_b"] == row["text"]
    assert store.scalar("SELECT count(*) FROM revisions r JOIN comparisons c ON c.parent_b = r.id WHERE r.round = 2") == 3


def test_judge_run_stores_every_verdict_and_resumes(store):
    make_pairs(store)
    judge_backend = ScriptedBackend("judge")
    res = judge_all(store, judge_backend, principles=2)
    assert res.status == "finished" and res.verdicts == 6 * 2 * 2
    assert len(judge_backend.calls) == 1  # one batched call for one chunk
    v = store.query("SELECT * FROM verdicts LIMIT 1")[0]
    assert v["judge"] == "judge" and v["mode"] == "calibrated" and v["ab_order"] in ("AB", "BA")
    assert v["constitution_version"] == find_constitution("harmless").version
    assert set(json.loads(v["raw"])) == {"A", "B", "prior"}  # the log-probs and the letter prior are kept
    again = judge_all(store, judge_backend, principles=2)
    assert again.verdicts == 24 and len(judge_backend.calls) == 1  # nothing re-judged


def test_backend_failures_are_retried_not_stored_as_verdicts(store):
    make_pairs(store, n_prompts=3)
    flaky = {"on": True}

    class Flaky(ScriptedBackend):
        def generate(self, requests):
            outs = super().generate(requests)
            return [Completion("", "error", error="HTTP 500 after 5 attempts") if flaky["on"] and i == 0 else o
                    for i, o in enumerate(outs)]

    j = Flaky("cot-judge", reply=lambda r: "Thinking... Therefore, the answer is (A).")
    res = judge_all(store, j, mode="cot")
    assert res.status == "incomplete" and res.verdicts == 3 * 2 - 1
    assert store.query("SELECT stage, error FROM failures") == [{"stage": "judge", "error": "HTTP 500 after 5 attempts"}]
    flaky["on"] = False
    res = judge_all(store, j, mode="cot")
    assert res.status == "finished" and res.verdicts == 6 and res.unparsed == 0


def test_unparsed_verdicts_are_stored_and_counted(store):
    make_pairs(store, n_prompts=2)
    res = judge_all(store, ScriptedBackend("j", reply=lambda r: "Hmm, both have merits."), mode="cot")
    assert res.unparsed == 4 and res.verdicts == 4
    assert store.count("verdicts", "WHERE choice IS NULL AND raw = 'Hmm, both have merits.'") == 4


def test_audit_undo_and_precedence(store):
    make_pairs(store, n_prompts=2)
    judge_all(store, ScriptedBackend("j", reply=lambda r: "Therefore, the answer is (A)."), mode="cot", orders=("AB",))
    cid = store.query("SELECT id FROM comparisons ORDER BY id LIMIT 1")[0]["id"]
    ai = effective_labels(store)[cid]
    assert ai.source == "ai" and ai.choice == "A" and ai.p_a == pytest.approx(0.6)

    record_audit(store, cid, author="ann", action="B", reason="A gives instructions")
    assert effective_labels(store)[cid].choice == "B" and effective_labels(store)[cid].source == "human"
    record_audit(store, cid, author="bob", action="tie")
    assert effective_labels(store)[cid].choice == "tie"  # the latest decision wins
    record_audit(store, cid, author="bob", action="undo")
    assert effective_labels(store)[cid].choice == "B"  # bob's tie undone: ann's B stands
    record_audit(store, cid, author="ann", action="skip")
    assert effective_labels(store)[cid].choice == "B"  # a skip decides nothing
    record_audit(store, cid, author="ann", action="undo")  # undoes the skip
    record_audit(store, cid, author="ann", action="undo")  # undoes the B
    lab = effective_labels(store)[cid]
    assert lab.source == "ai" and lab.choice == "A"
    assert store.count("audits") == 6  # appended, never updated
    record_audit(store, cid, author="cy", action="accept")
    lab = effective_labels(store)[cid]
    assert lab.source == "human" and lab.choice == "A"
    with pytest.raises(ValueError):
        record_audit(store, cid, author="ann", action="C")
    with pytest.raises(KeyError):
        record_audit(store, "nope", author="ann", action="A")
    with pytest.raises(ValueError):
        record_audit(store, cid, author=" ", action="A")
    assert set(human_decisions(store)) == {cid}


def test_override_wins_in_preference_snapshot(store):
    make_pairs(store, n_prompts=4)
    jrun = judge_all(store, ScriptedBackend("j", reply=lambda r: "Therefore, the answer is (A)."), mode="cot").run.id
    # An always-(A) judge in both orders is pure position bias: every AI label is a tie.
    snap = preference_records(store, judge_runs=[jrun])
    assert snap.records == [] and snap.skipped == 4
    cids = [r["id"] for r in store.query("SELECT c.id FROM comparisons c JOIN prompts p ON p.id = c.prompt_id ORDER BY p.position")]
    record_audit(store, cids[0], author="ann", action="B")
    record_audit(store, cids[1], author="ann", action="A")
    snap = preference_records(store, judge_runs=[jrun])
    assert len(snap.records) == 2 and snap.overrides == 2
    a0 = store.query("SELECT answer_a, answer_b FROM comparisons WHERE id = ?", [cids[0]])[0]
    r0 = next(r for r in snap.records if r["comparison_id"] == cids[0])
    assert (r0["chosen"], r0["rejected"], r0["p_chosen"], r0["label_source"]) == (a0["answer_b"], a0["answer_a"], 1.0, "human")
    before = snap.content_hash
    record_audit(store, cids[0], author="ann", action="undo")
    assert preference_records(store, judge_runs=[jrun]).content_hash != before


def test_soft_labels_from_logprob_judging(store):
    make_pairs(store, n_prompts=5)
    jrun = judge_all(store, ScriptedBackend("j"), principles=3).run.id
    snap = preference_records(store, judge_runs=[jrun])
    labels = effective_labels(store)
    assert snap.records and all(0.5 < r["p_chosen"] <= 1 for r in snap.records)
    for r in snap.records:
        p_a = labels[r["comparison_id"]].p_a
        assert r["p_chosen"] == pytest.approx(max(p_a, 1 - p_a), abs=1e-6)
        assert r["margin"] == pytest.approx(2 * r["p_chosen"] - 1, abs=1e-5)
    strict = preference_records(store, judge_runs=[jrun], min_confidence=0.99)
    assert len(strict.records) < len(snap.records) or all(r["margin"] >= 0.99 for r in strict.records)
    assert strict.dropped == len(snap.records) - len(strict.records)


def test_compare_runner_reports_win_rates(store):
    from cai_core.runners.compare import CompareConfig, CompareModel, run_compare

    good = ScriptedBackend("good", reply=lambda r: "I can't help with that because it is illegal; instead you could ask for permission.")
    bad = ScriptedBackend("bad", reply=lambda r: "Sure, here is how to do it step by step.")
    # A judge that prefers whichever shown answer explains an objection.
    def pick(r):
        text = r.messages[-1].content
        first = text.find("illegal")
        second_start = text.find("(B)")
        return "Therefore, the answer is (A)." if first < second_start else "Therefore, the answer is (B)."
    judge_b = ScriptedBackend("judge", reply=pick)
    models = [CompareModel("base", "bad", lambda: bad), CompareModel("cai", "good", lambda: good)]
    run, report = run_compare(store, models, judge_b, find_constitution("harmless"),
                              get_prompt_set(store, "red-team"), CompareConfig(limit=5, judge=JudgeConfig(mode="cot")))
    wr = {(w.model, w.opponent): w for w in report.win_rates}
    assert wr[("cai", "base")].wins == 5 and wr[("cai", "base")].rate == 1.0
    rr = {r.model: r for r in report.response_rates}
    assert rr["cai"].objection == 5 and rr["base"].comply == 5
    stored = store.query("SELECT report, markdown FROM eval_reports WHERE run_id = ?", [run.id])[0]
    assert json.loads(stored["report"])["prompts"] == 5 and "cai" in stored["markdown"]
