"""Helpful samples in the SFT snapshot: an answers-only SL run on benign prompts, its helpful
first answers mixed in at a recorded ratio, the rest left out and counted by reason."""
from __future__ import annotations

import pytest

from cai_core.backends.scripted import ScriptedBackend
from cai_core.constitutions import find_constitution
from cai_core.labels.snapshots import sft_records
from cai_core.lineage import default_sl_runs
from cai_core.prompt_sets import get_prompt_set
from cai_core.runners.sl import SLConfig, run_sl, start_sl_run


def _benign_reply(request) -> str:
    """Helpful answers, except: a boilerplate refusal for every 'kill' prompt and a looping
    answer for cooking questions about eggs (flagged repetition)."""
    prompt = request.messages[-1].content
    if "kill" in prompt.lower():
        return "I can't help with that. If you have any other questions, let me know."
    if "egg" in prompt.lower():
        return "eggs eggs eggs " * 12
    return f"Here is a practical answer about {prompt.rstrip('?.').lower()}: start with the basics, then practise."


def _sl(store, backend, prompts, **cfg):
    c, ps = find_constitution("harmless"), get_prompt_set(store, prompts)
    config = SLConfig(**cfg)
    run, _ = start_sl_run(store, backend, c, ps, config)
    return run, run_sl(store, backend, c, run, config)


@pytest.fixture
def runs(store):
    harmless, _ = _sl(store, ScriptedBackend("s"), "red-team", rounds=1, limit=6)
    helpful, res = _sl(store, ScriptedBackend("s", reply=_benign_reply), "benign", rounds=0)
    assert res.status == "finished" and res.critiques == res.revisions == 0
    assert res.generations == res.prompts > 150  # the benign set's train split
    return harmless, helpful, res


def test_answers_only_run_is_not_a_default_sft_selection(store, runs):
    harmless, helpful, _ = runs
    assert default_sl_runs(store) == [harmless.id]


def test_helpful_answers_are_mixed_in_at_the_ratio(store, runs):
    harmless, helpful, res = runs
    base = sft_records(store, sl_runs=[harmless.id])
    snap = sft_records(store, sl_runs=[harmless.id], helpful_runs=[helpful.id], helpful_ratio=1.5)
    assert len(base.records) == 6 and snap.helpful == 9 and len(snap.records) == 15
    assert snap.records[:6] == base.records  # the harmless records first, unchanged
    added = snap.records[6:]
    assert all(r["source"] == "helpful" and r["run_id"] == helpful.id for r in added)
    texts = [r["messages"][1]["content"] for r in added]
    assert all(t.startswith("Here is a practical answer") for t in texts)
    # not simply the first prompts of the file: a fixed shuffle over its categories
    cats = store.query("SELECT DISTINCT category FROM prompts WHERE id IN (SELECT unnest(?))",
                       [[r["prompt_id"] for r in added]])
    assert len(cats) >= 3
    # what was left out, by reason; the selection records the mix
    kills = store.count("prompts", "WHERE set_id = (SELECT set_id FROM prompts WHERE id = ?) AND lower(text) LIKE '%kill%' "
                        "AND id IN (SELECT prompt_id FROM generations WHERE run_id = ?)", [added[0]["prompt_id"], helpful.id])
    assert snap.helpful_left_out["evasive"] == kills > 0
    assert snap.helpful_left_out["flagged"] >= 1
    assert sum(snap.helpful_left_out.values()) + snap.helpful == res.generations
    assert snap.selection == {"sl_runs": [harmless.id], "include_flagged": False, "helpful_runs": [helpful.id],
                              "helpful_ratio": 1.5}
    # the same selection gives the same snapshot; another ratio another one
    assert sft_records(store, sl_runs=[harmless.id], helpful_runs=[helpful.id], helpful_ratio=1.5).content_hash \
        == snap.content_hash != base.content_hash
    none = sft_records(store, sl_runs=[harmless.id], helpful_runs=[helpful.id], helpful_ratio=0)
    assert none.helpful == 0 and none.content_hash == base.content_hash
    # the snapshot's prompts include the helpful ones (evaluation knows they were trained on)
    assert len(snap.prompt_keys) == 15


def test_helpful_runs_must_be_sl_runs(store, runs):
    harmless, _, _ = runs
    with pytest.raises(ValueError, match="not an SL run"):
        sft_records(store, sl_runs=[harmless.id], helpful_runs=["no-such-run"])
    with pytest.raises(ValueError, match="helpful_ratio"):
        sft_records(store, sl_runs=[harmless.id], helpful_runs=[harmless.id], helpful_ratio=-1)


def test_training_inputs_describe_the_mix(store, runs, tmp_path):
    from cai_core.training.data import inputs_for

    harmless, helpful, _ = runs
    inputs = inputs_for(store, "sft", {"sl_runs": [harmless.id], "helpful_runs": [helpful.id], "helpful_ratio": 1.0},
                        tmp_path)
    assert inputs.records == 12 and inputs.selection["helpful_runs"] == [helpful.id]
    assert "6 records" in inputs.description and "6 helpful answers" in inputs.description
    assert "evasive" in inputs.description and "over_ratio" in inputs.description
    lines = (tmp_path / inputs.path.name).read_text().splitlines()
    assert len(lines) == 12


def test_train_tab_selection_syntax():
    import gradio as gr

    from views.train import _selection

    assert _selection("sft", "r1, r2") == {"sl_runs": ["r1", "r2"]}
    assert _selection("sft", "r1; helpful: h1,h2 ratio 0.5") == {"sl_runs": ["r1"], "helpful_runs": ["h1", "h2"],
                                                                 "helpful_ratio": 0.5}
    assert _selection("sft", "; helpful: h1") == {"sl_runs": None, "helpful_runs": ["h1"], "helpful_ratio": 1.0}
    with pytest.raises(gr.Error):
        _selection("sft", "r1; helpful: h1 ratio lots")


def test_train_tab_contrast_selection_syntax():
    import gradio as gr

    from views.train import _selection

    assert _selection("dpo", "j1, j2") == {"judge_runs": ["j1", "j2"]}
    assert _selection("dpo", "contrast: s1; helpful: h1, h2; refusals: r1") == {
        "contrast": True, "sl_runs": ["s1"], "helpful_runs": ["h1", "h2"], "refusal_runs": ["r1"]}
    assert _selection("reward", "contrast:") == {"contrast": True, "sl_runs": None}
    assert _selection("dpo", "contrast: s1; helpful: h1; refusals: r1 ratio 1.5")["benign_ratio"] == 1.5
    assert _selection("dpo", "contrast: s1; rejected: first, bare") == {
        "contrast": True, "sl_runs": ["s1"], "harmful_rejected": ["first", "bare"]}
    with pytest.raises(gr.Error, match="expected"):
        _selection("dpo", "contrast: s1; judges: j1")
