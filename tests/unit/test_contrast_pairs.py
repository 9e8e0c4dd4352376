"""Preference pairs by construction (no judge): an SL run's revisions over its first answers,
and helpful answers over a trained model's refusals of the same benign prompts."""
from __future__ import annotations

import json

import pytest

from cai_core.backends.scripted import ScriptedBackend
from cai_core.constitutions import find_constitution
from cai_core.labels.contrast import contrast_records
from cai_core.prompt_sets import get_prompt_set
from cai_core.runners.sl import SLConfig, run_sl, start_sl_run
from cai_core.store.sl import answers_of_runs, final_revisions


def _helpful(request) -> str:
    prompt = request.messages[-1].content
    return f"Here is a practical answer about {prompt.rstrip('?.').lower()}: start with the basics, then practise."


def _refuses_kill(request) -> str:
    """The 'trained model': refuses every benign prompt with 'kill' in it, loops on eggs."""
    prompt = request.messages[-1].content
    if "kill" in prompt.lower():
        return "I can't help with that. If you have any other questions, let me know."
    if "egg" in prompt.lower():
        return "eggs eggs eggs " * 12
    return _helpful(request)


def _sl(store, backend, prompts, **cfg):
    c, ps = find_constitution("harmless"), get_prompt_set(store, prompts)
    config = SLConfig(**cfg)
    run, _ = start_sl_run(store, backend, c, ps, config)
    run_sl(store, backend, c, run, config)
    return run


@pytest.fixture
def runs(store):
    harmless = _sl(store, ScriptedBackend("s"), "red-team", rounds=1, limit=6)
    helpful = _sl(store, ScriptedBackend("base", reply=_helpful), "benign", rounds=0)
    refusals = _sl(store, ScriptedBackend("sft", reply=_refuses_kill), "benign", rounds=0)
    return harmless, helpful, refusals


def test_revisions_are_chosen_over_first_answers(store, runs):
    harmless, _, _ = runs
    snap = contrast_records(store, sl_runs=[harmless.id])
    firsts = {a["prompt_id"]: a["answer"] for a in answers_of_runs(store, [harmless.id])}
    finals = {r["prompt_id"]: r["revision"] for r in final_revisions(store, [harmless.id])}
    assert snap.harmful == len(snap.records) == 6 and snap.benign == 0
    for r in snap.records:
        assert r["source"] == "sl" and r["label_source"] == "construction" and r["p_chosen"] == 1.0
        assert r["chosen"] == finals[r["prompt_id"]] and r["rejected"] == firsts[r["prompt_id"]] != r["chosen"]
    assert snap.selection == {"contrast": True, "sl_runs": [harmless.id], "helpful_runs": [], "refusal_runs": []}


def test_a_flagged_revision_makes_no_pair(store, runs):
    harmless, _, _ = runs
    rid = final_revisions(store, [harmless.id])[0]["revision_id"]
    store.execute("UPDATE revisions SET flags = ['no_acceptable_candidate'] WHERE id = ?", [rid])
    snap = contrast_records(store, sl_runs=[harmless.id])
    assert snap.harmful == 5 and snap.left_out == {"flagged_revision": 1}


def test_benign_refusals_are_rejected_against_helpful_answers(store, runs):
    harmless, helpful, refusals = runs
    snap = contrast_records(store, sl_runs=[harmless.id], helpful_runs=[helpful.id], refusal_runs=[refusals.id])
    benign = snap.records[snap.harmful:]
    kills = [a for a in answers_of_runs(store, [refusals.id]) if "kill" in a["prompt"].lower()]
    assert snap.benign == len(benign) == len(kills) > 0  # only the refused prompts make pairs
    for r in benign:
        assert r["source"] == "helpful" and "kill" in r["prompt"].lower()
        assert r["chosen"].startswith("Here is a practical answer") and r["rejected"].startswith("I can't help")
    answered = len(answers_of_runs(store, [refusals.id])) - len(kills) - snap.left_out.get("incoherent", 0) \
        - snap.left_out.get("flagged_answer", 0)
    assert snap.left_out["answered"] == answered > 100
    assert snap.left_out.get("incoherent", 0) + snap.left_out.get("flagged_answer", 0) >= 1  # the egg loops
    again = contrast_records(store, sl_runs=[harmless.id], helpful_runs=[helpful.id], refusal_runs=[refusals.id])
    assert again.content_hash == snap.content_hash != contrast_records(store, sl_runs=[harmless.id]).content_hash
    assert len(snap.prompt_keys) == snap.harmful + snap.benign


def test_benign_ratio_caps_the_benign_pairs_in_a_fixed_order(store, runs):
    harmless, helpful, refusals = runs
    sel = dict(sl_runs=[harmless.id], helpful_runs=[helpful.id], refusal_runs=[refusals.id])
    every = contrast_records(store, **sel)
    assert every.benign > 3
    half = contrast_records(store, **sel, benign_ratio=0.5)
    assert (half.harmful, half.benign) == (6, 3) and half.left_out["over_ratio"] == every.benign - 3
    assert half.records[6:] == every.records[6:9]  # the first in the fixed order, not another draw
    assert half.selection["benign_ratio"] == 0.5 and "benign_ratio" not in every.selection
    assert contrast_records(store, **sel, benign_ratio=0.5).content_hash == half.content_hash != every.content_hash
    with pytest.raises(ValueError, match="benign_ratio"):
        contrast_records(store, **sel, benign_ratio=-1)


@pytest.mark.parametrize("revision, bare", [
    ("I won't help you pick a lock, because it could harm innocent people.", "I won't help you pick a lock."),
    ("I can't write that email because it would deceive people.", "I can't write that email."),
    ("I'm not going to do that; because, frankly, it could hurt someone.", "I'm not going to do that."),
    ("I won't help you with that.", None),
    ("Because it could hurt someone, no.", None),
])
def test_without_reason_cuts_the_reason_clause(revision, bare):
    from cai_core.labels.contrast import without_reason

    assert without_reason(revision) == bare


def test_bare_refusals_as_the_rejected_side(store, runs):
    harmless, _, _ = runs
    from cai_core.labels.contrast import without_reason

    store.execute("UPDATE revisions SET text = CASE WHEN id IN (SELECT id FROM revisions WHERE run_id = ? ORDER BY id "
                  "LIMIT 4) THEN 'I won''t help you ' || id || ', because it could harm people.' "
                  "ELSE 'I won''t help you with that.' END WHERE run_id = ?", [harmless.id, harmless.id])
    snap = contrast_records(store, sl_runs=[harmless.id], harmful_rejected=["bare"])
    assert snap.harmful == 4 and all(r["source"] == "sl-bare" for r in snap.records)
    assert all(r["rejected"] == without_reason(r["chosen"]) and r["rejected"].endswith(".") and "because" not in r["rejected"]
               for r in snap.records)
    assert snap.left_out == {"no_reason_clause": 2}  # the two revisions with no "because"
    both = contrast_records(store, sl_runs=[harmless.id], harmful_rejected=["first", "bare"])
    assert both.harmful == 6 + 4 and {r["source"] for r in both.records} == {"sl", "sl-bare"}
    assert snap.selection["harmful_rejected"] == ["bare"]
    assert "harmful_rejected" not in contrast_records(store, sl_runs=[harmless.id]).selection
    with pytest.raises(ValueError, match="harmful_rejected"):
        contrast_records(store, sl_runs=[harmless.id], harmful_rejected=["judge"])


def test_bad_selections_are_refused(store, runs):
    harmless, helpful, refusals = runs
    with pytest.raises(ValueError, match="both helpful runs"):
        contrast_records(store, sl_runs=[harmless.id], refusal_runs=[refusals.id])
    with pytest.raises(ValueError, match="not an SL run"):
        contrast_records(store, sl_runs=["no-such-run"])
    with pytest.raises(ValueError, match="not an SL run"):
        contrast_records(store, sl_runs=[harmless.id], helpful_runs=[helpful.id], refusal_runs=["nope"])


def test_training_inputs_of_a_contrast_selection(store, runs, tmp_path):
    from cai_core.training.data import inputs_for

    harmless, helpful, refusals = runs
    sel = {"contrast": True, "sl_runs": [harmless.id], "helpful_runs": [helpful.id], "refusal_runs": [refusals.id]}
    inputs = inputs_for(store, "dpo", sel, tmp_path)
    assert inputs.records > 6 and "no judge" in inputs.description and "6 revisions over first answers" in inputs.description
    rows = [json.loads(x) for x in inputs.path.read_text().splitlines()]
    assert len(rows) == inputs.records and {r["source"] for r in rows} == {"sl", "helpful"}
    # lineage: every prompt of a pair, harmful and benign, is recorded as trained on (compare refuses it)
    from cai_core.prompt_sets import text_key
    from cai_core.store.training import snapshot_prompt_keys

    assert snapshot_prompt_keys(store, inputs.snapshot_hash) == {text_key(r["prompt"]) for r in rows}
    assert inputs_for(store, "reward", sel, tmp_path).snapshot_hash == inputs.snapshot_hash  # the reward model may use them too
    # without 'contrast' the same kind still means judge labels
    from cai_core.lineage import NoSelection

    with pytest.raises(NoSelection, match="judge run"):
        inputs_for(store, "dpo", {}, tmp_path)
