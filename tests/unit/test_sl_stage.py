"""The SL stage with the scripted backend: counts, lineage, seeded principle draws,
failures recorded and retried, resume after interruption, cancel."""
from __future__ import annotations

import pytest

from cai_core.backends.scripted import ScriptedBackend
from cai_core.constitutions import find_constitution
from cai_core.prompt_sets import get_prompt_set
from cai_core.runners.sl import SLConfig, run_sl, start_sl_run


def _run(store, backend, *, cons="harmless", new_run=False, **cfg):
    c = find_constitution(cons)
    ps = get_prompt_set(store, "red-team")
    config = SLConfig(**cfg)
    run, created = start_sl_run(store, backend, c, ps, config, new_run=new_run)
    return run, created, run_sl(store, backend, c, run, config)


def test_counts_and_lineage(store, scripted):
    run, created, res = _run(store, scripted, rounds=2, limit=4)
    assert created and res.status == "finished"
    assert (res.generations, res.critiques, res.revisions) == (4, 8, 8)
    # Every revision's critique names the answer it critiqued; round 2 critiques a revision.
    rows = store.query(
        "SELECT c.round, c.parent_id, g.id AS gen, r1.id AS rev1 FROM critiques c "
        "LEFT JOIN generations g ON g.id = c.parent_id LEFT JOIN revisions r1 ON r1.id = c.parent_id"
    )
    assert all((r["gen"] is not None) == (r["round"] == 1) for r in rows)
    assert all((r["rev1"] is not None) == (r["round"] == 2) for r in rows)
    assert store.scalar("SELECT count(*) FROM revisions r JOIN critiques c ON c.id = r.critique_id") == 8
    # The constitution version is recorded and its text is stored.
    v = find_constitution("harmless").version
    assert store.scalar("SELECT count(*) FROM critiques WHERE constitution_version = ?", [v]) == 8
    assert store.scalar("SELECT count(*) FROM constitutions WHERE version = ?", [v]) == 1


def test_batches_across_prompts(store, scripted):
    _run(store, scripted, rounds=1, limit=10, chunk=16)
    # first answers, critiques, revisions: three backend calls of 10 requests each
    assert [len(c) for c in scripted.calls] == [10, 10, 10]


def test_principle_draws_are_seeded_and_recorded(store):
    b = ScriptedBackend("s")
    run_a, _, _ = _run(store, b, rounds=3, limit=20, seed=7)
    run_b, _, _ = _run(store, b, rounds=3, limit=20, seed=7, new_run=True)
    run_c, _, _ = _run(store, b, rounds=3, limit=20, seed=8)

    def draws(run_id):
        return [
            (r["prompt_id"], r["round"], r["principle_id"])
            for r in store.query("SELECT prompt_id, round, principle_id FROM critiques WHERE run_id = ? ORDER BY prompt_id, round", [run_id])
        ]

    assert run_a.id != run_b.id
    assert draws(run_a.id) == [(p, r, d) for p, r, d in draws(run_b.id)]
    assert [d for *_, d in draws(run_a.id)] != [d for *_, d in draws(run_c.id)]
    assert len({d for *_, d in draws(run_a.id)}) > 5  # 60 draws over 16 principles
    # the revision uses the critique's principle
    assert store.scalar("SELECT count(*) FROM revisions r JOIN critiques c ON c.id = r.critique_id WHERE r.principle_id != c.principle_id") == 0


def test_same_settings_find_the_same_run(store, scripted):
    run1, created1, _ = _run(store, scripted, rounds=1, limit=3)
    run2, created2, res2 = _run(store, scripted, rounds=1, limit=3)
    assert created1 and not created2 and run1.id == run2.id
    assert res2.generations == 3 and store.count("generations") == 3
    run3, created3, _ = _run(store, scripted, rounds=1, limit=3, cot=True)
    assert created3 and run3.id != run1.id


def test_failed_items_are_recorded_and_retried(store):
    bad_prompt = "How do I hack into my neighbor's WiFi?"
    flaky = {"fail": True}
    b = ScriptedBackend("s", fail=lambda r: flaky["fail"] and r.messages[-1].content == bad_prompt)
    run, _, res = _run(store, b, rounds=1, limit=4)
    assert res.status == "incomplete" and res.failed == 1
    assert (res.generations, res.critiques, res.revisions) == (3, 3, 3)
    assert store.query("SELECT stage, error FROM failures") == [{"stage": "generate", "error": "scripted failure"}]
    assert store.scalar("SELECT status FROM runs WHERE id = ?", [run.id]) == "incomplete"
    flaky["fail"] = False
    _, created, res = _run(store, b, rounds=1, limit=4)
    assert not created and res.status == "finished" and res.failed == 0
    assert (res.generations, res.critiques, res.revisions) == (4, 4, 4)


class _Crash(Exception):
    pass


def test_resume_after_crash_does_nothing_twice(store):
    calls = {"n": 0}

    def reply(r):
        calls["n"] += 1
        if calls["n"] == 17:  # 10 first answers, one chunk of 4 critiques, then mid-chunk
            raise _Crash()
        return f"reply {calls['n']}"

    crashing = ScriptedBackend("s", reply=reply)
    with pytest.raises(_Crash):
        _run(store, crashing, rounds=2, limit=10, chunk=4)
    assert store.count("generations") == 10
    assert store.count("critiques") == 4  # the chunk that crashed wrote nothing
    before = {r["id"]: r["text"] for r in store.query("SELECT id, text FROM generations")}

    clean = ScriptedBackend("s")
    _, created, res = _run(store, clean, rounds=2, limit=10, chunk=4)
    assert not created and res.status == "finished"
    assert (res.generations, res.critiques, res.revisions) == (10, 20, 20)
    # nothing recomputed: the first answers are the crashed run's, and the resumed backend
    # was asked only for the missing work (20 critiques + 20 revisions - done critiques)
    assert {r["id"]: r["text"] for r in store.query("SELECT id, text FROM generations")} == before
    assert sum(len(c) for c in clean.calls) == 40 - 4


def test_cancel_then_resume(store, scripted):
    stops = iter([False, False, True])
    c = find_constitution("seed")
    ps = get_prompt_set(store, "red-team")
    cfg = SLConfig(rounds=1, limit=8, chunk=4)
    run, _ = start_sl_run(store, scripted, c, ps, cfg)
    res = run_sl(store, scripted, c, run, cfg, should_stop=lambda: next(stops, True))
    assert res.status == "cancelled" and res.generations == 8 and res.critiques == 0
    res = run_sl(store, scripted, c, run, cfg)
    assert res.status == "finished" and (res.critiques, res.revisions) == (8, 8)


def test_progress_reports_every_chunk(store, scripted):
    seen = []
    c = find_constitution("seed")
    ps = get_prompt_set(store, "red-team")
    cfg = SLConfig(rounds=1, limit=5, chunk=2)
    run, _ = start_sl_run(store, scripted, c, ps, cfg)
    run_sl(store, scripted, c, run, cfg, progress=lambda d, t, w: seen.append((d, t)))
    assert seen[0] == (0, 15) and seen[-1] == (15, 15)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len(seen) == 1 + 3 * 3  # start + 3 waves of ceil(5/2) chunks


def test_flags_and_prefix_stripping(store):
    def reply(r):
        if r.continuation == "Revision:":
            return "Revision: Revision: " + "same words again " * 12
        if r.continuation == "Critique:":
            return ""
        return r.messages[-1].content  # echo the prompt
    b = ScriptedBackend("s", reply=reply)
    _run(store, b, cons="seed", rounds=1, limit=2)  # seed: no forced revision openings
    assert all("prompt_echo" in r["flags"] for r in store.query("SELECT flags FROM generations"))
    assert all(r["flags"] == ["empty"] for r in store.query("SELECT flags FROM critiques"))
    revs = store.query("SELECT text, flags FROM revisions")
    assert all(r["text"].startswith("same words again") for r in revs)
    assert all("repetition" in r["flags"] for r in revs)


def test_few_shot_examples_precede_the_conversation(store, scripted):
    _run(store, scripted, cons="harmless", rounds=1, limit=1, few_shot=2)
    critique_request = scripted.calls[1][0]
    # 2 examples x 6 turns, then prompt, answer, critique request
    assert len(critique_request.messages) == 12 + 3
    assert critique_request.continuation == "Critique:"
    _run(store, scripted, cons="harmless", rounds=1, limit=1, few_shot=0)
    assert len(scripted.calls[-1][0].messages) == 5  # prompt, answer, critique req, critique, revision req


def test_bad_config_is_rejected():
    with pytest.raises(ValueError):
        SLConfig(rounds=-1)
    with pytest.raises(ValueError):
        SLConfig(limit=0)
