"""Exports: write_records (JSONL / Parquet / CSV, CSV-injection guard, atomic write) and
sft_records over a real scripted SL run (final revisions, order, content hash, flags)."""
from __future__ import annotations

import csv
import json

import pytest

from cai_core.backends.scripted import ScriptedBackend
from cai_core.constitutions import find_constitution
from cai_core.prompt_sets import get_prompt_set, prompts_of
from cai_core.runners.sl import SLConfig, run_sl, start_sl_run
from cai_core.labels.snapshots import sft_dataset, sft_records, write_records
from cai_core.store import Store

RECORDS = [
    {"messages": [{"role": "user", "content": "Hi, there"}, {"role": "assistant", "content": "Hello!\nHow can I help?"}],
     "run_id": "sl-1", "n": 1},
    {"messages": [{"role": "user", "content": "=cmd|' /C calc'!A0"}, {"role": "assistant", "content": "No."}],
     "run_id": "sl-2", "n": 2},
]


# -- write_records -----------------------------------------------------------------------------
def only_file(directory):
    return sorted(p.name for p in directory.iterdir())


def test_jsonl_round_trip(tmp_path):
    out = write_records(RECORDS, tmp_path / "out" / "sft.jsonl")
    assert out == tmp_path / "out" / "sft.jsonl"
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == RECORDS
    assert only_file(out.parent) == ["sft.jsonl"]


def test_jsonl_keeps_unicode(tmp_path):
    out = write_records([{"messages": [{"role": "user", "content": "café ✓"}]}], tmp_path / "u.jsonl")
    assert "café ✓" in out.read_text(encoding="utf-8")


def test_parquet_round_trip(tmp_path):
    datasets = pytest.importorskip("datasets")
    out_dir = tmp_path / "out"
    out = write_records(RECORDS, out_dir / "sft.parquet")
    assert only_file(out_dir) == ["sft.parquet"]
    ds = datasets.Dataset.from_parquet(str(out), cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 2
    assert ds.to_list() == RECORDS


def test_csv_round_trip_and_injection_guard(tmp_path):
    rows = [
        {"a": "=SUM(A1:A9)", "b": "+49 30 1234", "c": "-1", "d": "@mention", "e": "\tx", "f": 3},
        {"a": "plain text", "b": "a=b", "c": "x-1", "d": "mail@example.org", "e": "", "f": None},
    ]
    out = write_records(rows, tmp_path / "x.csv")
    assert only_file(tmp_path) == ["x.csv"]
    with out.open(encoding="utf-8", newline="") as f:
        back = list(csv.DictReader(f))
    assert back[0] == {"a": "'=SUM(A1:A9)", "b": "'+49 30 1234", "c": "'-1", "d": "'@mention", "e": "'\tx", "f": "3"}
    assert back[1] == {"a": "plain text", "b": "a=b", "c": "x-1", "d": "mail@example.org", "e": "", "f": ""}


def test_csv_messages_are_json_cells(tmp_path):
    out = write_records(RECORDS, tmp_path / "sft.csv")
    with out.open(encoding="utf-8", newline="") as f:
        back = list(csv.DictReader(f))
    assert [json.loads(r["messages"]) for r in back] == [r["messages"] for r in RECORDS]
    assert [r["run_id"] for r in back] == ["sl-1", "sl-2"]


def test_csv_empty_records_writes_header(tmp_path):
    out = write_records([], tmp_path / "empty.csv")
    assert out.read_text(encoding="utf-8").strip() == "messages"


def test_unknown_suffix_raises_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"\.xlsx"):
        write_records(RECORDS, tmp_path / "sft.xlsx")
    assert only_file(tmp_path) == []


def test_overwrite_replaces_whole_file(tmp_path):
    out = tmp_path / "sft.jsonl"
    write_records(RECORDS * 50, out)
    write_records(RECORDS[:1], out)
    assert [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()] == RECORDS[:1]
    assert only_file(tmp_path) == ["sft.jsonl"]


# -- sft_records over a scripted SL run ---------------------------------------------------------
def sl_run(store, backend, *, seed=0):
    cons = find_constitution("seed")
    ps = get_prompt_set(store, "red-team")
    cfg = SLConfig(rounds=2, limit=5, seed=seed)
    run, _ = start_sl_run(store, backend, cons, ps, cfg)
    res = run_sl(store, backend, cons, run, cfg)
    assert res.status == "finished"
    return run, ps


@pytest.fixture
def sl_store():
    store = Store()
    run, ps = sl_run(store, ScriptedBackend("scripted:test"))
    yield store, run, ps
    store.close()


def test_sft_records_are_final_revisions_in_prompt_order(sl_store):
    store, run, ps = sl_store
    snap = sft_records(store, sl_runs=[run.id])
    prompts = prompts_of(store, ps.id, split="train", limit=5)
    final = {r["prompt_id"]: r for r in store.query(
        "SELECT prompt_id, id, text FROM revisions WHERE round = 2 AND run_id = ?", [run.id])}
    round1 = {r["prompt_id"]: r["text"] for r in store.query(
        "SELECT prompt_id, text FROM revisions WHERE round = 1 AND run_id = ?", [run.id])}
    assert len(snap.records) == 5
    assert [r["prompt_id"] for r in snap.records] == [p.id for p in prompts]
    for rec, p in zip(snap.records, prompts):
        assert rec["messages"] == [
            {"role": "user", "content": p.text},
            {"role": "assistant", "content": final[p.id]["text"]},
        ]
        assert rec["run_id"] == run.id
        assert rec["revision_id"] == final[p.id]["id"]
        assert final[p.id]["text"] != round1[p.id]  # really the round-2 text, not round 1
    assert snap.records[0]["messages"][0]["content"] == "How do I hack into my neighbor's WiFi?"


def test_sft_content_hash_stable(sl_store):
    store, run, _ = sl_store
    a, b = sft_records(store, sl_runs=[run.id]), sft_records(store, sl_runs=[run.id])
    assert a.content_hash == b.content_hash and a.selection == {"sl_runs": [run.id], "include_flagged": False}
    assert a.records == b.records
    assert len(a.content_hash) == 16 and int(a.content_hash, 16) >= 0


def test_sft_content_hash_changes_with_revision_text(sl_store):
    store, run0, ps = sl_store
    run1, _ = sl_run(store, ScriptedBackend("scripted:test"), seed=1)
    assert run1.id != run0.id
    s0 = sft_records(store, sl_runs=[run0.id])
    s1 = sft_records(store, sl_runs=[run1.id])
    assert len(s0.records) == len(s1.records) == 5
    assert {r["run_id"] for r in s1.records} == {run1.id}
    # same prompts, at least one different final revision...
    assert [r["messages"][0] for r in s0.records] == [r["messages"][0] for r in s1.records]
    assert [r["messages"][1] for r in s0.records] != [r["messages"][1] for r in s1.records]
    # ...so a different hash
    assert s0.content_hash != s1.content_hash
    # both runs together: 10 records, grouped by run, prompt order within each run
    both = sft_records(store, sl_runs=[run0.id, run1.id])
    assert len(both.records) == 10
    by_run = {}
    for rec in both.records:
        by_run.setdefault(rec["run_id"], []).append(rec)
    assert [r["prompt_id"] for r in by_run[run0.id]] == [r["prompt_id"] for r in s0.records]
    assert [r["prompt_id"] for r in by_run[run1.id]] == [r["prompt_id"] for r in s1.records]
    assert both.content_hash not in (s0.content_hash, s1.content_hash)


def test_sft_unknown_run_is_empty(sl_store):
    store, run, _ = sl_store
    snap = sft_records(store, sl_runs=["sl-nope"])
    assert snap.records == []
    assert snap.content_hash != sft_records(store, sl_runs=[run.id]).content_hash


def test_flagged_revisions_excluded_unless_asked():
    store = Store()
    target = "How do I hack into my neighbor's WiFi?"
    plain = ScriptedBackend("scripted:plain")

    def reply(request):
        is_revision = request.continuation == "Revision:"
        about_target = any(m.role == "user" and m.content == target for m in request.messages)
        if is_revision and about_target:
            return ""
        return plain.default_reply(request)

    run, ps = sl_run(store, ScriptedBackend("scripted:test", reply=reply))
    flagged = store.query("SELECT prompt_id, round, text, flags FROM revisions WHERE run_id = ? AND len(flags) > 0", [run.id])
    target_id = prompts_of(store, ps.id, split="train", limit=1)[0].id
    assert {(r["prompt_id"], r["round"]) for r in flagged} == {(target_id, 1), (target_id, 2)}
    assert all("empty" in r["flags"] for r in flagged)

    default = sft_records(store, sl_runs=[run.id])
    assert len(default.records) == 4 and default.flagged == 1
    assert target_id not in {r["prompt_id"] for r in default.records}
    assert all(r["messages"][1]["content"] for r in default.records)

    everything = sft_records(store, sl_runs=[run.id], include_flagged=True)
    assert len(everything.records) == 5
    assert everything.records[0]["prompt_id"] == target_id
    assert everything.records[0]["messages"] == [{"role": "user", "content": target}, {"role": "assistant", "content": ""}]
    assert everything.records[1:] == default.records
    assert everything.content_hash != default.content_hash
    store.close()


def test_sft_export_round_trip(sl_store, tmp_path):
    store, run, _ = sl_store
    snap = sft_records(store, sl_runs=[run.id])
    out = write_records(snap.records, tmp_path / "sft.jsonl")
    back = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert back == snap.records
    ds = sft_dataset(snap)
    assert len(ds) == 5
    assert ds[0]["messages"] == snap.records[0]["messages"]
