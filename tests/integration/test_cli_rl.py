"""The RL-phase commands as users run them: pairs, judge, export preferences, train,
checkpoints, compare (scripted backend for generation; a tiny model folder for training)."""
from __future__ import annotations

import json
import re

import pytest

from test_cli import cai, stats


def test_pairs_judge_export(tmp_path):
    run = cai(tmp_path, "--backend", "scripted", "pairs", "--prompts", "red-team", "--limit", "5").stdout.strip()
    assert run.startswith("pairs-")
    j = cai(tmp_path, "--backend", "scripted", "judge", "--principles", "2")
    assert j.stdout.strip().startswith("judge-") and "20 verdicts" in j.stderr
    s = stats(tmp_path)
    assert (s["comparisons"], s["verdicts"], s["unparsed_verdicts"]) == (5, 20, 0)
    out = tmp_path / "prefs.jsonl"
    e = cai(tmp_path, "export", "preferences", "--out", str(out))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows and set(rows[0]) >= {"prompt", "chosen", "rejected", "p_chosen", "margin", "label_source",
                                     "comparison_id", "source"}
    assert {r["source"] for r in rows} == {"samples"} and "snapshot" in e.stderr and j.stdout.strip() in e.stderr
    csv_out = tmp_path / "prefs.csv"
    cai(tmp_path, "export", "preferences", "--out", str(csv_out))
    assert csv_out.read_text().startswith("prompt,chosen,rejected,p_chosen")


def test_judge_cot_counts_unparsed(tmp_path):
    cai(tmp_path, "--backend", "scripted", "pairs", "--prompts", "red-team", "--limit", "3")
    j = cai(tmp_path, "--backend", "scripted", "judge", "--mode", "cot", "--orders", "AB")
    assert "3 unparsed" in j.stderr  # the scripted judge never states a verdict
    assert stats(tmp_path)["unparsed_verdicts"] == 3


def test_bad_rl_arguments(tmp_path):
    p = cai(tmp_path, "--backend", "scripted", "judge", "--clamp", "x", check=False)
    assert p.returncode == 2 and "--clamp takes LO,HI" in p.stderr
    p = cai(tmp_path, "--backend", "scripted", "pairs", "--prompts", "red-team", "--n", "1", check=False)
    assert p.returncode == 2 and "--n must be at least 2" in p.stderr
    p = cai(tmp_path, "train", "reward", check=False)
    assert p.returncode == 2 and "no finished judge run over training pairs" in p.stderr
    p = cai(tmp_path, "--backend", "scripted", "compare", "--models", "base", "--prompts", "benign", check=False)
    assert p.returncode == 2 and "at least two models" in p.stderr


def test_train_sft_from_the_cli_then_list_checkpoints(tmp_path, tiny_lm):
    model, tok = tiny_lm
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    cai(tmp_path, "--backend", "scripted", "sl", "--prompts", "red-team", "--constitution", "seed", "--rounds", "1", "--limit", "4")
    cfg = tmp_path / "train.json"
    cfg.write_text(json.dumps({"per_device_batch_size": 2, "save_steps": 100, "num_threads": 1}))
    t = cai(tmp_path, "train", "sft", "--base", str(folder), "--max-steps", "2", "--config", str(cfg))
    run_id = t.stdout.strip()
    assert run_id.startswith("train-sft-") and "finished at step 2" in t.stderr
    listed = cai(tmp_path, "checkpoints", "list").stdout.strip().split("\t")
    assert listed[1] == "sft" and listed[2] == run_id and (tmp_path / "runs" / run_id / "final").is_dir()
    assert stats(tmp_path)["checkpoints"] == 1


def test_train_dpo_from_the_cli_on_a_judge_run_registers_a_dpo_checkpoint(tmp_path, tiny_lm):
    model, tok = tiny_lm
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    cai(tmp_path, "--backend", "scripted", "pairs", "--prompts", "red-team", "--limit", "4")
    judge = cai(tmp_path, "--backend", "scripted", "judge", "--constitution", "seed").stdout.strip()
    cfg = tmp_path / "train.json"
    cfg.write_text(json.dumps({"per_device_batch_size": 2, "save_steps": 100, "num_threads": 1}))
    t = cai(tmp_path, "train", "dpo", "--base", str(folder), "--judge-runs", judge, "--max-steps", "1",
            "--config", str(cfg))
    run_id = t.stdout.strip()
    assert run_id.startswith("train-dpo-") and "finished at step 1" in t.stderr
    assert f"labels of judge run(s) {judge}" in t.stderr
    listed = cai(tmp_path, "checkpoints", "list").stdout.strip().split("\t")
    assert listed[1] == "dpo" and listed[2] == run_id and (tmp_path / "runs" / run_id / "final").is_dir()
    # the same selection finds the finished run: nothing is retrained
    again = cai(tmp_path, "train", "dpo", "--base", str(folder), "--judge-runs", judge, "--max-steps", "1",
                "--config", str(cfg))
    assert again.stdout.strip() == run_id and "already finished" in again.stderr


def test_train_dpo_on_pairs_by_construction(tmp_path, tiny_lm):
    """`cai train dpo --contrast`: no judge run; revisions over first answers, and helpful answers
    over a model's refusals of the same benign prompts."""
    model, tok = tiny_lm
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    sl = cai(tmp_path, "--backend", "scripted", "sl", "--prompts", "red-team", "--constitution", "harmless",
             "--rounds", "1", "--limit", "4").stdout.strip()
    cfg = tmp_path / "train.json"
    cfg.write_text(json.dumps({"per_device_batch_size": 2, "save_steps": 100, "num_threads": 1}))
    p = cai(tmp_path, "train", "dpo", "--sl-runs", sl, check=False)
    assert p.returncode == 2 and "go with --contrast" in p.stderr
    p = cai(tmp_path, "train", "dpo", "--contrast", "--sl-runs", sl, "--refusal-runs", sl, check=False)
    assert p.returncode == 2 and "needs both helpful runs" in p.stderr
    t = cai(tmp_path, "train", "dpo", "--contrast", "--base", str(folder), "--max-steps", "1", "--config", str(cfg))
    run_id = t.stdout.strip()  # --sl-runs defaults to the latest SL run with revisions
    assert run_id.startswith("train-dpo-") and "finished at step 1" in t.stderr
    assert f"no judge): 4 revisions over first answers of SL run(s) {sl}" in t.stderr
    assert cai(tmp_path, "checkpoints", "list").stdout.strip().split("\t")[1] == "dpo"


def test_compare_two_models(tmp_path):
    out = cai(tmp_path, "--backend", "scripted", "compare", "--models", "base,other", "--prompts", "red-team",
              "--limit", "4", "--mode", "cot", "--json")
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["n_prompts"] == 4 and report["held_out"] is True and report["split"] == "held-out"
    assert [(m["name"], m["checkpoint"], m["overlap_with_training"]) for m in report["models"]] == [
        ("base", None, 0), ("other", None, 0)]
    assert {(w["model"], w["opponent"]) for w in report["win_rates"]} == {("base", "other"), ("other", "base")}
    s = stats(tmp_path)
    assert s["comparisons"] == 4 and s["verdicts"] == 8


def test_label_answers_of_a_named_compare_run(tmp_path):
    """`cai label next/report --run RUN` pick that compare run (the --run flag once collided with
    the command's own dispatch and crashed)."""
    out = cai(tmp_path, "--backend", "scripted", "compare", "--models", "base,other", "--prompts", "red-team",
              "--limit", "2", "--mode", "cot")
    first = re.search(r"run (compare-\w+)", out.stdout + out.stderr).group(1)
    cai(tmp_path, "--backend", "scripted", "compare", "--models", "base,other", "--prompts", "benign",
        "--limit", "3", "--mode", "cot")
    rows = [json.loads(x) for x in cai(tmp_path, "label", "next", "--run", first, "--limit", "10").stdout.splitlines()]
    assert len(rows) == 4 and all("model" not in r for r in rows)  # 2 prompts x 2 models, unnamed
    newest = cai(tmp_path, "label", "next", "--limit", "10").stdout.splitlines()
    assert len(newest) == 6  # the default: the newest compare run (3 benign prompts x 2 models)
    cai(tmp_path, "label", "set", rows[0]["id"], "objection", "--reason", "explains why", "--author", "t")
    report = json.loads(cai(tmp_path, "label", "report", "--run", first, "--json").stdout)
    assert report["run_id"] == first
    assert len(cai(tmp_path, "label", "next", "--run", first, "--limit", "10").stdout.splitlines()) == 3


def test_label_import_records_a_labelled_file(tmp_path):
    """`cai label next > f.jsonl`, a label added to each line by hand, `cai label import f.jsonl`."""
    out = cai(tmp_path, "--backend", "scripted", "compare", "--models", "base,other", "--prompts", "red-team",
              "--limit", "2", "--mode", "cot")
    run = re.search(r"run (compare-\w+)", out.stdout + out.stderr).group(1)
    rows = [json.loads(x) for x in cai(tmp_path, "label", "next", "--run", run, "--limit", "10").stdout.splitlines()]
    assert len(rows) == 4
    labelled = tmp_path / "labelled.jsonl"
    # a bad label anywhere: nothing is recorded
    bad = [dict(rows[0], label="objection"), dict(rows[1], label="refused")]
    labelled.write_text("".join(json.dumps(r) + "\n" for r in bad))
    p = cai(tmp_path, "label", "import", str(labelled), check=False)
    assert p.returncode != 0 and "labelled.jsonl:2" in p.stderr and "refused" in p.stderr
    # an id that is no compare answer: nothing is recorded either
    labelled.write_text(json.dumps({"id": "nope", "label": "comply"}) + "\n" + json.dumps(dict(rows[0], label="comply")) + "\n")
    p = cai(tmp_path, "label", "import", str(labelled), check=False)
    assert p.returncode != 0 and "'nope'" in p.stderr
    assert len(cai(tmp_path, "label", "next", "--run", run, "--limit", "10").stdout.splitlines()) == 4
    # three labelled, one left for later
    good = [dict(rows[0], label="objection", reason="names the harm"), dict(rows[1], label="comply"),
            dict(rows[2], label="evasive"), rows[3]]
    labelled.write_text("".join(json.dumps(r) + "\n" for r in good))
    p = cai(tmp_path, "label", "import", str(labelled), "--author", "sam")
    assert "3 labels recorded" in p.stderr and "1 lines without a label skipped" in p.stderr
    left = [json.loads(x) for x in cai(tmp_path, "label", "next", "--run", run, "--limit", "10").stdout.splitlines()]
    assert [r["id"] for r in left] == [rows[3]["id"]]
    report = json.loads(cai(tmp_path, "label", "report", "--run", run, "--json").stdout)
    assert report["n"] == 3 and sum(m["n"] for m in report["models"]) == 3, report
