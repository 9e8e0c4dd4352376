"""Honest experiments: held-out prompts stay held out, training data is chosen by lineage,
one label rule from the audit queue to the snapshot, compare and what-if keyed by what they
measure, and a second run of the recipe trains nothing.

The recipe-shaped flow runs once per module through the one facade: scripted generation and
judging, real training subprocesses on a tiny random model (seconds)."""
from __future__ import annotations

import json
import re

import pytest

from cai_core.backends.scripted import ScriptedBackend
from cai_core.config import Settings
from cai_core.labels.audits import effective_labels
from cai_core.labels.snapshots import preference_records
from cai_core.prompt_sets import prompts_of, text_key
from cai_core.runners.compare import CompareConfig, TrainedOnEvalPrompts
from cai_core.runners.judge import JudgeConfig
from cai_core.runners.pairs import PairsConfig
from cai_core.runners.sl import SLConfig
from cai_core.services import Services
from cai_core.store import records
from cai_core.training.launcher import wait
from cai_core.types import Comparison, Verdict

SMALL = {"max_steps": 1, "per_device_batch_size": 2, "save_steps": 100, "num_threads": 1}
RL = {**SMALL, "num_generations": 2, "response_length": 8}


def _services(root, backend=None):
    return Services(Settings(db=str(root / "cai.duckdb"), backend="scripted", model="x", runs_dir=str(root / "runs")),
                    backend=backend or ScriptedBackend("scripted:x"))


def _train(svc, kind, config):
    run, proc, runs_dir, inputs = svc.start_training(kind, config=config)
    state = wait(svc.store, run, proc, runs_dir, poll=0.5)
    assert state.status == "finished", (runs_dir / run.id / "log.txt").read_text()[-3000:]
    return run, proc, inputs


def recipe(svc, tiny):
    """SL -> SFT -> pairs (from the SFT model) -> judge -> reward -> RL -> compare, as
    examples/recipe.sh runs it (small). Returns what each step made."""
    out = {"sl": svc.sl(prompts="red-team", constitution="seed", config=SLConfig(rounds=1, limit=6))}
    out["sft"] = _train(svc, "sft", {**SMALL, "model": str(tiny)})
    out["pairs"] = svc.pairs(prompts="red-team", config=PairsConfig(limit=6))
    out["judge"] = svc.judge(constitution="harmless", config=JudgeConfig(principles=1))
    out["reward"] = _train(svc, "reward", {**SMALL, "model": str(tiny)})
    out["rl"] = _train(svc, "grpo", RL)
    out["compare"] = svc.compare(models=["base", "sft", "rl"], prompts="red-team",
                                 config=CompareConfig(limit=5, judge=JudgeConfig(mode="cot")))
    return out


@pytest.fixture(scope="module")
def flow(tiny_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    svc = _services(root)
    first = recipe(svc, tiny_folder)
    counts = {"runs": svc.store.count("runs"), "checkpoints": svc.store.count("checkpoints"),
              "snapshots": svc.store.count("snapshots")}
    yield svc, first, counts, root, tiny_folder
    svc.close()


# -- (a) evaluation prompts are disjoint from every compared checkpoint's training prompts --------
def test_eval_prompts_are_disjoint_from_every_checkpoints_training_prompts(flow):
    svc, first, _, _, _ = flow
    run, report = first["compare"]
    assert report.held_out and report.split == "held-out" and report.prompts == 5
    eval_keys = {text_key(p.text) for p in prompts_of(svc.store, svc.prompt_set("red-team").id, split="held-out", limit=5)}
    by_name = {m.name: m for m in report.lineage}
    assert by_name["base"].checkpoint is None
    # every snapshot along the RL model's lineage: its prompts, the reward model's, the SFT model's
    rl = by_name["rl"]
    sft_hash, reward_hash, rl_hash = (first[k][2].snapshot_hash for k in ("sft", "reward", "rl"))
    assert set(rl.snapshots) == {rl_hash, reward_hash, sft_hash} and by_name["sft"].snapshots == (sft_hash,)
    trained = {r["text_key"] for r in svc.store.query(
        "SELECT text_key FROM snapshot_prompts WHERE snapshot_hash IN (SELECT unnest(?))", [list(rl.snapshots)])}
    assert trained and not trained & eval_keys and all(m.overlap_with_training == 0 for m in report.lineage)
    # RL trained on the train split: all of it, nothing held out
    train = prompts_of(svc.store, svc.prompt_set("red-team").id, split="train")
    assert svc.store.scalar("SELECT records FROM snapshots WHERE hash = ?", [rl_hash]) == len(train)


def test_evaluating_on_prompts_a_model_trained_on_is_refused_or_stamped(flow):
    svc, first, _, _, _ = flow
    with pytest.raises(TrainedOnEvalPrompts, match=r"not held out: sft \(checkpoint [0-9a-f]+\) trained on 6 of them"):
        svc.compare(models=["base", "sft"], prompts="red-team", config=CompareConfig(split="train", limit=6))
    run, report = svc.compare(models=["base", "sft"], prompts="red-team",
                              config=CompareConfig(split="train", limit=8, allow_trained=True))
    assert not report.held_out and report.to_dict()["held_out"] is False
    assert {m.name: m.overlap_with_training for m in report.lineage} == {"base": 0, "sft": 6}
    assert report.to_markdown().startswith("**NOT HELD OUT")


# -- (b) compare comparisons never reach the preference data ----------------------------------------
def test_compare_comparisons_never_reach_preference_data(flow, tmp_path):
    svc, first, _, _, _ = flow
    compare_run, _ = first["compare"]
    compare_judge = svc.store.scalar("SELECT judge_run FROM eval_reports WHERE run_id = ?", [compare_run.id])
    assert svc.store.count("comparisons", "WHERE source = 'compare'") > 0
    path, snap = svc.export_preferences(tmp_path / "prefs.jsonl")  # the default selection
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert rows and {r["source"] for r in rows} == {"samples"} and all(r["comparison_id"] for r in rows)
    assert snap.selection["judge_runs"] == [first["judge"].run.id]
    # even when the compare run's own judge run is named, its pairs do not enter
    named = preference_records(svc.store, judge_runs=[compare_judge, first["judge"].run.id])
    assert {r["source"] for r in named.records} == {"samples"} and len(named.records) == len(snap.records)
    # the reward model trained on exactly that default selection
    reward_inputs = first["reward"][2]
    assert reward_inputs.selection["judge_runs"] == [first["judge"].run.id]
    assert reward_inputs.snapshot_hash == snap.content_hash


# -- (f) a second recipe run on a finished store trains nothing ---------------------------------------
def test_a_second_recipe_run_trains_nothing(flow):
    svc, first, counts, root, tiny = flow
    again = recipe(svc, tiny)
    for kind in ("sft", "reward", "rl"):
        run, proc, inputs = again[kind]
        assert proc is None and run.id == first[kind][0].id and inputs.snapshot_hash == first[kind][2].snapshot_hash
    assert again["compare"][0].id == first["compare"][0].id
    assert {"runs": svc.store.count("runs"), "checkpoints": svc.store.count("checkpoints"),
            "snapshots": svc.store.count("snapshots")} == {**counts, "runs": counts["runs"] + 2}  # + the stamped compare above and its judge run


# -- (c) retrain, then compare: new answers ---------------------------------------------------------
def test_after_retraining_the_same_compare_makes_new_answers(flow):
    svc, first, _, _, tiny = flow
    before, _ = svc.compare(models=["base", "sft"], prompts="red-team", config=CompareConfig(limit=3))
    n_before = svc.store.count("generations", "WHERE run_id = ?", [before.id])
    run, proc, runs_dir, _ = svc.start_training("sft", config={**SMALL, "model": str(tiny)}, new_run=True)
    assert wait(svc.store, run, proc, runs_dir, poll=0.5).status == "finished"
    after, report = svc.compare(models=["base", "sft"], prompts="red-team", config=CompareConfig(limit=3))
    assert after.id != before.id  # keyed by the checkpoint "sft" resolves to, not by the name
    assert svc.store.count("generations", "WHERE run_id = ?", [after.id]) == n_before == 6
    new_ckpt = svc.resolve_checkpoint("sft")
    assert {m.name: m.checkpoint for m in report.lineage}["sft"] == new_ckpt.id != first["sft"][0].id


# -- (d) one label rule: Accept stores exactly what training uses ------------------------------------
def _comparison_with_verdicts(svc, p_as):
    svc.import_prompts(_prompt_file(svc), name="rule")
    prompt = prompts_of(svc.store, svc.prompt_set("rule").id)[0]
    c = Comparison(id="c-rule", run_id="pairs-rule", prompt_id=prompt.id, source="samples",
                   answer_a="answer a", answer_b="answer b")
    vs = [Verdict(id=f"v{i}", run_id="judge-rule", comparison_id=c.id, principle_id=f"p{i}", constitution_version="v",
                  judge="j", mode="logprob", ab_order="AB", raw="{}", choice="A" if p > 0.5 else "B", p_first=p, p_a=p)
          for i, p in enumerate(p_as)]
    records.insert(svc.store, [c, *vs])
    return c


def _prompt_file(svc):
    from pathlib import Path

    path = Path(svc.settings.db).parent / "rule.jsonl"
    path.write_text(json.dumps({"prompt": "Is this a test?"}) + "\n")
    return path


def test_accept_stores_the_label_training_uses_not_the_majority_vote(tmp_path):
    svc = _services(tmp_path)
    c = _comparison_with_verdicts(svc, [0.51, 0.51, 0.05])  # two votes for A, mean P(A) 0.357
    item = svc.audit_queue(author="ann", limit=1)[0]
    assert item.comparison_id == c.id and item.choice == "B" and item.p_a == pytest.approx(1.07 / 3)
    before = preference_records(svc.store, judge_runs=["judge-rule"]).records
    audit = svc.record_audit(c.id, author="ann", action="accept")
    assert (audit.label, round(audit.p_a, 3), audit.judge_runs) == ("B", 0.357, ("judge-rule",))
    after = preference_records(svc.store, judge_runs=["judge-rule"]).records
    assert [(r["chosen"], r["p_chosen"]) for r in before] == [("answer b", pytest.approx(0.643, abs=1e-3))]
    assert [(r["chosen"], r["p_chosen"], r["label_source"]) for r in after] == [
        ("answer b", pytest.approx(0.643, abs=1e-3), "human")]
    lab = effective_labels(svc.store)[c.id]
    assert (lab.choice, lab.source) == ("B", "human")
    # kappa counts the accepted label as the human's: agreement by construction
    rep = svc.agreement()
    assert (rep.n, rep.agree, rep.confusion) == (1, 1, (("B", "B", 1),))
    # a later verdict cannot change what the person confirmed
    records.insert(svc.store, [Verdict(id="v9", run_id="judge-rule", comparison_id=c.id, principle_id="p9",
                                       constitution_version="v", judge="j", mode="logprob", ab_order="AB", raw="{}",
                                       choice="A", p_first=0.99, p_a=0.99)])
    assert svc.audit_queue(include_audited=True, limit=1)[0].choice == "A"  # the AI's label moved
    assert effective_labels(svc.store)[c.id].choice == "B"  # the accepted one stands
    svc.close()


def test_accept_without_an_ai_label_is_refused(tmp_path):
    svc = _services(tmp_path)
    c = _comparison_with_verdicts(svc, [])
    records.insert(svc.store, [Verdict(id="vx", run_id="judge-rule", comparison_id=c.id, principle_id="p",
                                       constitution_version="v", judge="j", mode="cot", ab_order="AB", raw="hmm",
                                       choice=None, p_first=None, p_a=None)])
    with pytest.raises(ValueError, match="no AI label to accept"):
        svc.record_audit(c.id, author="ann", action="accept")
    svc.close()


# -- (e) what-if: the edit, and only the edit --------------------------------------------------------
def _shown(text, tag):
    m = re.search(rf"<response_{tag}>\n(.*?)\n</response_{tag}>", text, re.S)
    return m.group(1) if m else ""


def _question_judge(request):
    """Prefers the refusal, unless the question asks which answer is MORE harmful."""
    text = request.messages[-1].content
    first_refuses = "can't" in _shown(text, "A")
    pick_first = first_refuses != ("MORE harmful" in text)
    return f"Therefore, the answer is ({'A' if pick_first else 'B'})."


def test_what_if_flips_nothing_unchanged_and_flips_an_inverted_question(tmp_path):
    svc = _services(tmp_path, ScriptedBackend("scripted:x", reply=_question_judge))
    svc.import_prompts(_prompt_file(svc), name="rule")
    prompt = prompts_of(svc.store, svc.prompt_set("rule").id)[0]
    records.insert(svc.store, [Comparison(id=f"c{i}", run_id="pairs-w", prompt_id=prompt.id, source="samples",
                                          answer_a="Sure, here is how." if i % 2 else "I can't help with that.",
                                          answer_b="I can't help with that." if i % 2 else "Sure, here is how.")
                               for i in range(4)])
    judged = svc.judge(constitution="seed", config=JudgeConfig(mode="cot", principles=4))
    assert judged.verdicts == 4 * 4 * 2  # every principle of "seed", both orders
    pid = svc.store.scalar("SELECT principle_id FROM verdicts LIMIT 1")
    saved = svc.constitution_source("seed")
    run_id, same = svc.what_if("seed", saved, principle_ids=[pid], sample=4)
    assert len(same) == 4 and not any(r.flipped for r in same)
    assert all(r.old == r.new == r.stored for r in same)
    # invert the principle's preference question in a draft
    lines = saved.splitlines()
    at = lines.index(f'id = "{pid}"')
    k = next(i for i in range(at, len(lines)) if lines[i].startswith("preference = "))
    lines[k] = 'preference = "Which of these assistant responses is MORE harmful?"'
    _, inverted = svc.what_if("seed", "\n".join(lines) + "\n", sample=4)  # the changed principle is found
    assert {r.principle_id for r in inverted} == {pid} and len(inverted) == 4 and all(r.flipped for r in inverted)
    assert all(r.stored == r.old != r.new for r in inverted)  # the stored label is the old text's
    assert svc.store.count("what_if_verdicts") == 2 * (4 * 2 * 2)  # two what-ifs, old + new, both orders
    assert svc.store.count("verdicts") == 32  # what-if never adds a verdict (nor a label)
    svc.close()


# -- (splits) recorded, seeded, stable --------------------------------------------------------------
def test_splits_are_recorded_seeded_and_stable(tmp_path):
    svc = _services(tmp_path)
    svc.prompt_set("red-team")  # a shipped set: imported and split on first use
    red = {r["name"]: r for r in svc.prompt_sets()}["red-team"]
    assert red["train"] + red["held_out"] == red["prompts"] == 205 and 0.1 < red["held_out"] / 205 < 0.3
    held = [p.text for p in svc.prompts("red-team", split="held-out")]
    # a second store splits the same way; the same text in another set lands in the same split
    other = _services(tmp_path / "b")
    assert [p.text for p in other.prompts("red-team", split="held-out")] == held
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in held[:3]))
    other.import_prompts(path, name="mine")
    assert len(other.prompts("mine", split="held-out")) == 3
    # SL, pairs and RL use the train split; a new split is recorded
    counts = svc.split_prompts("red-team", held_out=0.5, seed=7)
    assert counts["train"] + counts["held-out"] == 205 and svc.prompt_sets()[0]["held_out_share"] == 0.5
    other.close()
    svc.close()
