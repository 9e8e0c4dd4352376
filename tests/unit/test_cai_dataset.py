"""`cai export cai-dataset`: the HF Constitutional AI dataset shape over scripted SL and judge
runs: the SL chain in each SFT row, preference rows from the label rule (a person's decision
wins), train / test by each prompt's recorded split, the files (arrow, parquet), their
selection.json, determinism, and clear errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cai_core.backends.scripted import ScriptedBackend
from cai_core.config import Settings
from cai_core.labels.audits import record_audit
from cai_core.labels.snapshots import preference_records, sft_records
from cai_core.lineage import NoSelection
from cai_core.prompt_sets import get_prompt_set, prompts_of, resplit
from cai_core.runners.judge import JudgeConfig
from cai_core.runners.pairs import PairsConfig
from cai_core.runners.sl import SLConfig
from cai_core.services import Services
from cai_core.training.cai_dataset import COLUMNS, SELECTION_FILE, SPLITS, build_cai_dataset, trl_view

datasets = pytest.importorskip("datasets")


def _services(db: Path) -> Services:
    return Services(Settings(db=str(db), backend="scripted", model="test"), backend=ScriptedBackend("scripted:test"))


@pytest.fixture(scope="module")
def base_db(tmp_path_factory):
    """A file DB: red-team split 50/50, an SL run (2 rounds) over 10 prompts of both splits, its
    first-vs-final pairs and 6 prompts' sampled pairs, each judged by its own judge run."""
    db = tmp_path_factory.mktemp("cai") / "base.duckdb"
    s = _services(db)
    resplit(s.store, get_prompt_set(s.store, "red-team"), held_out=0.5, seed=0)
    sl = s.sl(prompts="red-team", constitution="seed", config=SLConfig(rounds=2, limit=10, split=None))
    assert sl.status == "finished" and sl.revisions == 20
    assert s.pairs_from_sl(sl.run.id) == 10
    s.pairs(prompts="red-team", config=PairsConfig(limit=6, split=None))
    j_sl = s.judge(constitution="harmless", config=JudgeConfig(source="sl")).run.id
    j_samples = s.judge(constitution="harmless", config=JudgeConfig(source="samples")).run.id
    s.close()
    return db, {"sl": sl.run.id, "judge_sl": j_sl, "judge_samples": j_samples}


@pytest.fixture
def svc(base_db, tmp_path):
    """Services over a private copy of the base DB (tests may add audits)."""
    db, ids = base_db
    copy = tmp_path / "t.duckdb"
    shutil.copy(db, copy)
    s = _services(copy)
    yield s, ids
    s.close()


def build(s, ids, **kw):
    return build_cai_dataset(s.store, sl_runs=[ids["sl"]], judge_runs=[ids["judge_sl"], ids["judge_samples"]], **kw)


def held_out_texts(store) -> set[str]:
    ps = get_prompt_set(store, "red-team")
    return {p.text for p in prompts_of(store, ps.id, split="held-out")}


# -- rows -----------------------------------------------------------------------------------------
def test_sft_rows_carry_the_final_round_of_the_sl_chain(svc):
    s, ids = svc
    cai = build(s, ids)
    chain = {r["prompt"]: r for r in s.store.query(
        "SELECT p.text AS prompt, g.text AS first, c.request AS creq, c.text AS crit, r.request AS rreq, "
        "r.text AS rev, r.id AS rid FROM revisions r JOIN critiques c ON c.id = r.critique_id "
        "JOIN prompts p ON p.id = r.prompt_id JOIN generations g ON g.run_id = r.run_id AND g.prompt_id = r.prompt_id "
        "WHERE r.run_id = ? AND r.round = 2",
        [ids["sl"]])}
    round1 = {r["text"] for r in s.store.query("SELECT text FROM critiques WHERE run_id = ? AND round = 1",
                                               [ids["sl"]])}
    rows = cai.splits["train_sft"] + cai.splits["test_sft"]
    assert len(rows) == 10 and {r["prompt"] for r in rows} == set(chain)
    for row in rows:
        c = chain[row["prompt"]]
        assert list(row) == list(COLUMNS)
        assert (row["init_prompt"], row["init_response"]) == (row["prompt"], c["first"])
        assert (row["critic_prompt"], row["critic_response"]) == (c["creq"], c["crit"])
        assert (row["revision_prompt"], row["revision_response"]) == (c["rreq"], c["rev"])
        assert row["critic_response"] not in round1  # the round that made the final revision
        assert row["messages"] == row["chosen"] == [{"role": "user", "content": row["prompt"]},
                                                    {"role": "assistant", "content": c["rev"]}]
        assert row["rejected"] == [{"role": "user", "content": row["prompt"]},
                                   {"role": "assistant", "content": c["first"]}]
    assert sorted(cai.row_ids["train_sft"] + cai.row_ids["test_sft"]) == sorted(c["rid"] for c in chain.values())


def test_rows_go_to_test_splits_by_the_prompts_recorded_split(svc):
    s, ids = svc
    cai = build(s, ids)
    held = held_out_texts(s.store)
    for split in SPLITS:
        assert cai.splits[split], f"{split} is empty: the fixture should fill every split"
        assert all((r["prompt"] in held) == split.startswith("test") for r in cai.splits[split])
    prefs = preference_records(s.store, judge_runs=[ids["judge_sl"], ids["judge_samples"]])
    assert cai.counts["train_prefs"] + cai.counts["test_prefs"] == len(prefs.records) == 16
    assert cai.counts["train_sft"] + cai.counts["test_sft"] == 10


def test_pref_rows_follow_the_preference_snapshot(svc):
    s, ids = svc
    cai = build(s, ids)
    snap = {r["comparison_id"]: r for r in preference_records(
        s.store, judge_runs=[ids["judge_sl"], ids["judge_samples"]]).records}
    sources = {r["id"]: r["source"] for r in s.store.query("SELECT id, source FROM comparisons")}
    revisions = {r["text"] for r in s.store.query("SELECT text FROM revisions WHERE round = 2")}
    seen = set()
    for split in ("train_prefs", "test_prefs"):
        for cid, row in zip(cai.row_ids[split], cai.splits[split]):
            rec = snap[cid]
            user = {"role": "user", "content": rec["prompt"]}
            assert row["prompt"] == row["init_prompt"] == rec["prompt"]
            assert row["chosen"] == row["messages"] == [user, {"role": "assistant", "content": rec["chosen"]}]
            assert row["rejected"] == [user, {"role": "assistant", "content": rec["rejected"]}]
            if sources[cid] == "sl":  # made from an SL record: its chain fills the SL columns
                assert row["revision_response"] in revisions and row["critic_prompt"] and row["init_response"]
                assert {row["revision_response"], row["init_response"]} == {rec["chosen"], rec["rejected"]}
            else:
                assert all(row[c] == "" for c in COLUMNS[1:6])
            seen.add(sources[cid])
    assert seen == {"sl", "samples"}


def test_test_prompts_a_model_here_trained_on_are_counted(svc, tmp_path):
    """SFT on the SL run (which covered every split) registers its held-out prompts as trained
    on: the export says how many of its test prompts that makes."""
    from cai_core.training.data import inputs_for

    s, ids = svc
    assert build(s, ids).test_trained_on == 0
    inputs_for(s.store, "sft", {"sl_runs": [ids["sl"]]}, tmp_path)
    cai = build(s, ids)
    test_prompts = {r["prompt"] for x in ("test_sft", "test_prefs") for r in cai.splits[x]}
    assert cai.test_trained_on == len(test_prompts) > 0
    assert cai.record()["test_prompts_in_training_snapshots"] == cai.test_trained_on


def test_a_persons_decision_wins(svc):
    s, ids = svc
    before = build(s, ids)
    row, cid = before.splits["train_prefs"][0], before.row_ids["train_prefs"][0]
    chosen, rejected = row["chosen"][1]["content"], row["rejected"][1]["content"]
    a = s.store.scalar("SELECT answer_a FROM comparisons WHERE id = ?", [cid])
    record_audit(s.store, cid, author="ann", action="B" if a == chosen else "A", reason="the other is safer")
    after = build(s, ids)
    i = after.row_ids["train_prefs"].index(cid)
    assert after.splits["train_prefs"][i]["chosen"][1]["content"] == rejected
    assert after.splits["train_prefs"][i]["rejected"][1]["content"] == chosen
    assert after.prefs.overrides == before.prefs.overrides + 1
    assert after.content_hash != before.content_hash


def test_helpful_samples_are_sft_rows_without_a_critique(svc):
    s, ids = svc
    from cai_core.constitutions import find_constitution
    from cai_core.runners.sl import run_sl, start_sl_run

    helpful = ScriptedBackend("h", reply=lambda r: "Here is a practical answer: start with the basics, then practise.")
    c, ps, cfg = find_constitution("harmless"), get_prompt_set(s.store, "benign"), SLConfig(rounds=0, limit=8)
    run, _ = start_sl_run(s.store, helpful, c, ps, cfg)
    assert run_sl(s.store, helpful, c, run, cfg).status == "finished"
    cai = build(s, ids, helpful_runs=[run.id], helpful_ratio=0.5)
    gens = {r["id"] for r in s.store.query("SELECT id FROM generations WHERE run_id = ?", [run.id])}
    rows = [(i, r) for split in ("train_sft", "test_sft") for i, r in zip(cai.row_ids[split], cai.splits[split])
            if i in gens]
    assert len(rows) == cai.sft.helpful == 5  # half of the 10 harmless records
    for _, row in rows:
        answer = row["messages"][1]["content"]
        assert answer.startswith("Here is a practical answer")
        assert row["init_response"] == row["revision_response"] == answer
        assert row["critic_prompt"] == row["critic_response"] == row["revision_prompt"] == ""
    assert cai.selection["helpful_runs"] == [run.id] and cai.selection["helpful_ratio"] == 0.5


# -- files ----------------------------------------------------------------------------------------
def test_arrow_export_loads_with_one_schema_and_records_its_selection(svc, tmp_path):
    s, ids = svc
    path, cai = s.export_cai_dataset(tmp_path / "cai", sl_runs=[ids["sl"]],
                                     judge_runs=[ids["judge_sl"], ids["judge_samples"]])
    dd = datasets.load_from_disk(str(path))
    assert isinstance(dd, datasets.DatasetDict) and list(dd) == list(SPLITS)
    schema = dd["train_sft"].features
    assert list(schema) == list(COLUMNS) and schema["messages"] == schema["chosen"] == schema["rejected"]
    for split in SPLITS:
        assert dd[split].features == schema
        assert dd[split].to_list() == cai.splits[split]
    record = json.loads((path / SELECTION_FILE).read_text())
    sft = sft_records(s.store, sl_runs=[ids["sl"]])
    prefs = preference_records(s.store, judge_runs=[ids["judge_sl"], ids["judge_samples"]])
    assert record["selection"] == {"sl_runs": [ids["sl"]], "include_flagged": False,
                                   "judge_runs": [ids["judge_sl"], ids["judge_samples"]], "min_confidence": 0.0}
    assert record["snapshots"] == {"sft": sft.content_hash, "preferences": prefs.content_hash}
    assert record["counts"] == cai.counts and record["rows"] == cai.row_ids
    assert record["content_hash"] == cai.content_hash
    info = json.loads(dd["test_prefs"].info.description)
    assert info["selection"] == record["selection"] and info["content_hash"] == cai.content_hash


def test_parquet_export_one_file_per_split(svc, tmp_path):
    s, ids = svc
    path, cai = s.export_cai_dataset(tmp_path / "pq", sl_runs=[ids["sl"]], judge_runs=[ids["judge_sl"]],
                                     fmt="parquet")
    assert sorted(p.name for p in path.iterdir()) == sorted([f"{x}.parquet" for x in SPLITS] + [SELECTION_FILE])
    dd = datasets.load_dataset("parquet", data_files={x: str(path / f"{x}.parquet") for x in SPLITS},
                               cache_dir=str(tmp_path / "cache"))
    for split in SPLITS:
        assert dd[split].to_list() == cai.splits[split]
    assert json.loads((path / SELECTION_FILE).read_text())["format"] == "parquet"
    assert cai.counts["train_prefs"] + cai.counts["test_prefs"] == 10  # the SL pairs only: one judge run


def test_empty_test_splits_keep_the_schema(svc, tmp_path):
    """SL and pairs on the train split only (the defaults): the test splits are empty, and still
    load (arrow) or read (parquet) with all ten columns."""
    import pyarrow.parquet as pq

    s, _ = svc
    sl = s.sl(prompts="red-team", constitution="seed", config=SLConfig(rounds=1, limit=4, seed=7), new_run=True)
    s.pairs_from_sl(sl.run.id)
    judge = s.judge(constitution="harmless", config=JudgeConfig(pairs_run=sl.run.id)).run.id
    kw = dict(sl_runs=[sl.run.id], judge_runs=[judge])
    path, cai = s.export_cai_dataset(tmp_path / "a", **kw)
    assert cai.counts == {"train_sft": 4, "train_prefs": 4, "test_sft": 0, "test_prefs": 0}
    dd = datasets.load_from_disk(str(path))
    assert [len(dd[x]) for x in SPLITS] == [4, 4, 0, 0]
    assert dd["test_sft"].features == dd["test_prefs"].features == dd["train_sft"].features
    path, _ = s.export_cai_dataset(tmp_path / "p", fmt="parquet", **kw)
    assert pq.read_schema(path / "test_prefs.parquet").names == list(COLUMNS)
    assert pq.read_table(path / "test_prefs.parquet").num_rows == 0


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_same_selection_same_files(svc, tmp_path, fmt):
    s, ids = svc
    kw = dict(sl_runs=[ids["sl"]], judge_runs=[ids["judge_sl"], ids["judge_samples"]], fmt=fmt)
    a, cai_a = s.export_cai_dataset(tmp_path / "a", **kw)
    b, cai_b = s.export_cai_dataset(tmp_path / "b", **kw)
    assert _files(a) == _files(b) and len(_files(a)) >= 5
    other, cai_o = s.export_cai_dataset(tmp_path / "o", **{**kw, "judge_runs": [ids["judge_sl"]]})
    assert cai_o.content_hash != cai_a.content_hash == cai_b.content_hash


def test_defaults_are_the_latest_runs(svc, tmp_path):
    s, ids = svc
    cai = s.cai_dataset()
    assert cai.selection["sl_runs"] == [ids["sl"]] and cai.selection["judge_runs"] == [ids["judge_samples"]]


def test_a_view_with_the_columns_trl_reads(svc):
    s, ids = svc
    dd = datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in build(s, ids).splits.items()})
    assert trl_view(dd["train_sft"], "sft").column_names == ["messages"]
    assert trl_view(dd["test_prefs"], "prefs").column_names == ["chosen", "rejected"]
    with pytest.raises(ValueError, match="sft or prefs"):
        trl_view(dd["train_sft"], "dpo")


# -- errors ---------------------------------------------------------------------------------------
def test_no_sl_run_is_a_clear_error(tmp_path):
    s = _services(tmp_path / "empty.duckdb")
    try:
        with pytest.raises(NoSelection, match="cai sl"):
            s.export_cai_dataset(tmp_path / "out")
        assert not (tmp_path / "out").exists()
    finally:
        s.close()


def test_wrong_or_empty_selections_are_clear_errors(svc, tmp_path):
    s, ids = svc
    with pytest.raises(ValueError, match="not a sl run"):
        build_cai_dataset(s.store, sl_runs=[ids["judge_sl"]], judge_runs=[ids["judge_sl"]])
    with pytest.raises(ValueError, match="sl-nope: no such run"):
        build_cai_dataset(s.store, sl_runs=["sl-nope"], judge_runs=[ids["judge_sl"]])
    with pytest.raises(ValueError, match="not a judge run"):
        build_cai_dataset(s.store, sl_runs=[ids["sl"]], judge_runs=[ids["sl"]])
    with pytest.raises(ValueError, match="no labelled preference pairs"):
        build(s, ids, min_confidence=1.01)
    s.store.execute("DELETE FROM revisions WHERE run_id = ?", [ids["sl"]])
    with pytest.raises(ValueError, match="no SL revisions"):
        build(s, ids)


def test_out_dir_must_be_new_empty_or_an_earlier_export(svc, tmp_path):
    s, ids = svc
    kw = dict(sl_runs=[ids["sl"]], judge_runs=[ids["judge_sl"]])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        s.export_cai_dataset(mine, **kw)
    with pytest.raises(ValueError, match="refusing to replace"):
        s.export_cai_dataset(mine, overwrite=True, **kw)
    assert (mine / "notes.txt").read_text() == "keep me"
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        s.export_cai_dataset(tmp_path / "f", **kw)
    with pytest.raises(ValueError, match="unknown format"):
        s.export_cai_dataset(tmp_path / "new", fmt="csv", **kw)
    empty = tmp_path / "empty"
    empty.mkdir()
    path, _ = s.export_cai_dataset(empty, **kw)
    path2, cai = s.export_cai_dataset(empty, overwrite=True, fmt="parquet", **kw)
    assert path2 == path and (path / "train_sft.parquet").is_file() and not (path / "dataset_dict.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "f", "mine", "t.duckdb"]  # no temp folder left


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_prints_the_path_and_the_counts(base_db, tmp_path, capsys):
    from cai_core.cli.main import main

    db, ids = base_db
    copy = tmp_path / "c.duckdb"
    shutil.copy(db, copy)
    out = tmp_path / "ds"
    common = ["--db", str(copy), "--backend", "scripted"]
    runs = ["--sl-runs", ids["sl"], "--judge-runs", f"{ids['judge_sl']},{ids['judge_samples']}"]
    assert main(["export", "cai-dataset", "--out", str(out), *runs, *common]) == 0
    stdout, err = capsys.readouterr()
    assert stdout.strip() == str(out)
    record = json.loads((out / SELECTION_FILE).read_text())
    c = record["counts"]
    assert f"train_sft {c['train_sft']}, train_prefs {c['train_prefs']}, test_sft {c['test_sft']}" in err
    assert ids["sl"] in err and ids["judge_samples"] in err and record["content_hash"] in err
    assert main(["export", "cai-dataset", "--out", str(out), *runs, *common]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["export", "cai-dataset", "--out", str(out), "--overwrite", "--format", "parquet", *common]) == 0
    assert (out / "test_prefs.parquet").is_file()
