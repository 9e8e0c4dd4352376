"""Training as jobs launched through the services (the path the CLI and the app use):
snapshot built from the store, subprocess launched, metrics ingested into DuckDB, the final
checkpoint registered with its lineage, a re-launch of a finished run only ingests."""
from __future__ import annotations

import json
import time

import pytest

from cai_core.backends.scripted import ScriptedBackend
from cai_core.config import Settings
from cai_core.runners.sl import SLConfig
from cai_core.services import Services
from cai_core.training.launcher import wait


@pytest.fixture(scope="module")
def tiny_dir(tiny_lm, tmp_path_factory):
    model, tok = tiny_lm
    d = tmp_path_factory.mktemp("tiny") / "model"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture
def svc(tmp_path):
    s = Services(Settings(db=str(tmp_path / "t.duckdb"), backend="scripted", model="x", runs_dir=str(tmp_path / "runs")),
                 backend=ScriptedBackend("scripted:x"))
    yield s
    s.close()


def test_sft_job_end_to_end(svc, tiny_dir):
    svc.sl(prompts="red-team", constitution="seed", config=SLConfig(rounds=1, limit=6))
    run, proc, runs_dir, inputs = svc.start_training("sft", config={"model": str(tiny_dir), "max_steps": 2, "per_device_batch_size": 2,
                                                             "save_steps": 100, "num_threads": 1})
    assert proc is not None
    seen = []
    state = wait(svc.store, run, proc, runs_dir, progress=lambda d, t, w: seen.append((d, t, w)), poll=0.5)
    assert state.status == "finished", (runs_dir / run.id / "log.txt").read_text()[-3000:]
    assert state.step == 2 and state.checkpoint_id
    # lineage: checkpoint -> run -> snapshot -> SL revisions
    ck = svc.checkpoints()[0]
    assert ck["kind"] == "sft" and ck["run_id"] == run.id and ck["base_model"] == str(tiny_dir)
    snap = svc.store.query("SELECT * FROM snapshots WHERE hash = ?", [ck["snapshot_hash"]])[0]
    assert snap["kind"] == "sft" and snap["records"] == 6
    assert ck["snapshot_hash"] == svc.sft_snapshot().content_hash == inputs.snapshot_hash
    sl_run = svc.runs("sl")[0]["id"]
    assert json.loads(snap["config"])["sl_runs"] == [sl_run] and sl_run in inputs.description
    # the snapshot records the prompts it trains on (by normalised text)
    assert svc.store.scalar("SELECT count(*) FROM snapshot_prompts WHERE snapshot_hash = ?", [ck["snapshot_hash"]]) == 6
    metrics = svc.metrics(run.id)
    assert [m["step"] for m in metrics] == [1, 2] and all("loss" in m for m in metrics)
    assert svc.store.scalar("SELECT status FROM runs WHERE id = ?", [run.id]) == "finished"
    assert svc.resolve_model("sft") == ck["path"]
    # the same command again: same run, nothing launched, nothing duplicated
    run2, proc2, _, inputs2 = svc.start_training("sft", config={"model": str(tiny_dir), "max_steps": 2, "per_device_batch_size": 2,
                                                        "save_steps": 100, "num_threads": 1})
    assert run2.id == run.id and proc2 is None and inputs2.snapshot_hash == inputs.snapshot_hash
    assert len(svc.checkpoints()) == 1 and len(svc.metrics(run.id)) == 2


def test_reward_job_needs_labels_then_trains_on_the_preference_snapshot(svc, tiny_dir):
    with pytest.raises(ValueError, match="no finished judge run over training pairs"):
        svc.start_training("reward", config={"model": str(tiny_dir)})
    from cai_core.runners.judge import JudgeConfig
    from cai_core.runners.pairs import PairsConfig

    svc.pairs(prompts="red-team", config=PairsConfig(limit=4))
    svc.judge(constitution="harmless", config=JudgeConfig(principles=1))
    cid = svc.store.query("SELECT id FROM comparisons LIMIT 1")[0]["id"]
    svc.record_audit(cid, author="ann", action="A")
    run, proc, runs_dir, inputs = svc.start_training("reward", config={"model": str(tiny_dir), "max_steps": 2, "soft_labels": True,
                                                                "per_device_batch_size": 2, "save_steps": 100, "num_threads": 1})
    state = wait(svc.store, run, proc, runs_dir, poll=0.5)
    assert state.status == "finished", (runs_dir / run.id / "log.txt").read_text()[-3000:]
    ck = [c for c in svc.checkpoints() if c["kind"] == "reward"][0]
    assert ck["overrides"] == 1  # the lineage shows how many human decisions the data held
    data = json.loads((runs_dir / run.id / "config.json").read_text())["data"]
    rows = [json.loads(l) for l in open(data)]
    assert len(rows) == 4 and {r["label_source"] for r in rows} == {"ai", "human"}


def test_a_killed_job_is_reported_interrupted(svc, tiny_dir):
    import os
    import signal

    svc.sl(prompts="red-team", constitution="seed", config=SLConfig(rounds=1, limit=4))
    run, proc, runs_dir, inputs = svc.start_training("sft", config={"model": str(tiny_dir), "max_steps": 500, "per_device_batch_size": 2,
                                                             "save_steps": 1000, "num_threads": 1})
    deadline = time.time() + 120
    while not (runs_dir / run.id / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    state = svc.training_state(run.id)
    assert state.status == "interrupted"
    assert svc.store.scalar("SELECT status FROM runs WHERE id = ?", [run.id]) == "interrupted"
    assert svc.metrics(run.id)  # what it logged before dying is in the store


def test_ingest_mirrors_the_run_folder_when_steps_are_redone(tmp_path):
    """A crash can leave lines for steps past the last checkpoint; the resumed job redoes
    those steps and rewrites their lines. The store then shows the redone values, not the
    first ones it ingested, and a step logged twice counts once, its later line winning."""
    from cai_core.store.runs import find_or_create_run
    from cai_core.store import Store
    from cai_core.training.launcher import ingest

    store = Store(tmp_path / "t.duckdb")
    run, _ = find_or_create_run(store, kind="train-sft", config={"x": 1}, model="m", seed=0)
    folder = tmp_path / "runs" / run.id
    folder.mkdir(parents=True)

    def log(*steps):
        (folder / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "time": t, "loss": v}) + "\n"
                                                      for s, t, v in steps))

    def stored():
        return {r["step"]: (r["time"], json.loads(r["metrics"])["loss"]) for r in store.query(
            "SELECT step, time, CAST(metrics AS VARCHAR) AS metrics FROM train_metrics WHERE run_id = ?", [run.id])}

    log((1, 10.0, 2.0), (2, 11.0, 1.5), (3, 12.0, 99.0))  # step 3 logged, then the crash
    ingest(store, run.id, tmp_path / "runs")
    assert stored() == {1: (10.0, 2.0), 2: (11.0, 1.5), 3: (12.0, 99.0)}
    log((1, 10.0, 2.0), (2, 11.0, 1.5), (3, 20.0, 1.2), (4, 21.0, 1.1), (4, 22.0, 1.0))  # resumed: 3 redone
    ingest(store, run.id, tmp_path / "runs")
    assert stored() == {1: (10.0, 2.0), 2: (11.0, 1.5), 3: (20.0, 1.2), 4: (22.0, 1.0)}
    store.close()
