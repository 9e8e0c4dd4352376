"""Reliability: crash anywhere, lose nothing; one writer; concurrent auditors.

- ``kill -9`` (of the whole process group, i.e. a machine crash) at points chosen by a seeded
  RNG during an SL run, during judging and during a training job; the same command re-issued
  resumes, and afterwards every record is present exactly once, no row is half-written,
  every child row's parent exists, and training continued from its last checkpoint.
- While the app holds the database, a CLI writer and a second app get a clear one-line
  message naming the holder, and the database is intact afterwards.
- 8 threads x 25 audit actions at once over one Services (as the app's request threads):
  every action stored once, in order, and the effective labels equal a replay of the log.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import CAI
from reliability_helpers import (
    PYTHON, ROOT, ProgressKiller, base_env, cai, check_integrity, free_port, one_clear_line, open_store,
    start_app, stats, stop_app, wait_listening,
)

KILLS: dict[str, int] = {}


def _report_kills(phase: str, n: int) -> None:
    KILLS[phase] = n
    print(f"kills survived ({phase}): {n}; kills survived: {sum(KILLS.values())} in this module so far")


# ---------------------------------------------------------------- kill -9 during an SL run


def test_kill9_during_sl_at_seeded_points_then_rerun_stores_every_record_exactly_once(tmp_path):
    rng = random.Random(61)
    n, rounds, chunk, delay = 20, 2, 4, 0.12
    args = [CAI, "--db", str(tmp_path / "cai.duckdb"), "--backend", "scripted", "sl", "--prompts", "red-team",
            "--constitution", "harmless", "--rounds", str(rounds), "--limit", str(n), "--chunk", str(chunk)]
    env = base_env(CAI_SCRIPTED_DELAY=str(delay))
    total = n * (1 + 2 * rounds)
    kills, written = 0, [0]
    for _ in range(3):
        run = ProgressKiller(args, cwd=tmp_path, env=env)
        # kill 1-3 chunks after this attempt started, at a random moment inside the next chunk
        # (asleep in the backend, or writing the previous chunk to DuckDB)
        killed = run.kill_after(chunk * rng.randint(1, 6), rng.uniform(0, delay))
        assert killed, f"the run finished before it could be killed:\n{run.stderr[-2000:]}"
        kills += 1
        counts = check_integrity(tmp_path / "cai.duckdb")  # consistent right after the crash
        now = counts["generations"] + counts["critiques"] + counts["revisions"]
        assert written[-1] < now < total, (written, now)
        written.append(now)

    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "finished" in done.stderr, done.stderr[-2000:]
    counts = check_integrity(tmp_path / "cai.duckdb")
    assert (counts["generations"], counts["critiques"], counts["revisions"]) == (n, n * rounds, n * rounds)
    assert counts["failures"] == 0
    with open_store(tmp_path / "cai.duckdb") as s:
        assert s.query("SELECT kind, status FROM runs") == [{"kind": "sl", "status": "finished"}]
        # one record per (prompt, round), for every prompt and round
        per = s.query("SELECT round, count(*) AS n, count(DISTINCT prompt_id) AS p FROM revisions GROUP BY round ORDER BY round")
        assert per == [{"round": r, "n": n, "p": n} for r in range(1, rounds + 1)]
    print(f"SL: records after each kill {written[1:]} of {total}; rerun completed the rest")
    _report_kills("sl", kills)


# ---------------------------------------------------------------- kill -9 during judging


def test_kill9_during_judging_then_rerun_gives_one_verdict_per_key(tmp_path):
    rng = random.Random(62)
    db = tmp_path / "cai.duckdb"
    n, principles, delay = 80, 2, 0.3  # 80 of the 82 red-team train prompts
    sl = cai(tmp_path, "--backend", "scripted", "sl", "--prompts", "red-team", "--constitution", "seed",
             "--rounds", "1", "--limit", str(n))
    cai(tmp_path, "pairs", "--from-sl", sl.stdout.strip())
    # CoT mode goes through generate(), which the scripted backend slows by `delay` per chunk
    # of 16 comparisons (16 x 2 principles x 2 orders requests).
    args = [CAI, "--db", str(db), "--backend", "scripted", "judge", "--constitution", "harmless", "--mode", "cot",
            "--principles", str(principles)]
    env = base_env(CAI_SCRIPTED_DELAY=str(delay))
    kills, seen = 0, [0]
    for _ in range(3):
        run = ProgressKiller(args, cwd=tmp_path, env=env)
        assert run.kill_after(16, rng.uniform(0, 0.8 * delay)), run.stderr[-2000:]
        kills += 1
        counts = check_integrity(db)
        assert seen[-1] < counts["verdicts"] < n * principles * 2
        assert counts["verdicts"] % (principles * 2) == 0  # a chunk is written whole or not at all
        seen.append(counts["verdicts"])

    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "finished" in done.stderr, done.stderr[-2000:]
    counts = check_integrity(db)
    assert counts["verdicts"] == n * principles * 2 and counts["comparisons"] == n
    with open_store(db) as s:
        assert s.query("SELECT status FROM runs WHERE kind = 'judge'") == [{"status": "finished"}]
        keys = s.query("SELECT count(*) AS n, count(DISTINCT (comparison_id, principle_id, judge, mode, ab_order)) AS k "
                       "FROM verdicts")[0]
        assert keys == {"n": n * principles * 2, "k": n * principles * 2}
        per = s.query("SELECT comparison_id, count(*) AS v FROM verdicts GROUP BY ALL HAVING v != ?", [principles * 2])
        assert per == []
    print(f"judge: verdicts after each kill {seen[1:]} of {n * principles * 2}")
    _report_kills("judge", kills)


# ---------------------------------------------------------------- kill -9 during a training job


def _metrics(run_dir: Path) -> list[dict]:
    p = run_dir / "metrics.jsonl"
    if not p.is_file():
        return []
    rows = []
    for line in p.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass  # a line cut by the kill
    return rows


def _complete_checkpoint(run_dir: Path) -> int:
    steps = [int(p.name.split("-")[1]) for p in run_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(steps, default=0)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@pytest.fixture
def tiny_folder(tiny_lm, tmp_path):
    model, tok = tiny_lm
    d = tmp_path / "tiny-model"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_kill9_machine_crash_during_training_resumes_from_last_checkpoint(tmp_path, tiny_folder):
    rng = random.Random(63)
    db, max_steps = tmp_path / "cai.duckdb", 20
    cai(tmp_path, "--backend", "scripted", "sl", "--prompts", "red-team", "--constitution", "seed",
        "--rounds", "1", "--limit", "8")
    (tmp_path / "cfg.json").write_text(json.dumps({"per_device_batch_size": 2, "save_steps": 2, "num_threads": 1}))
    cmd = [CAI, "--db", str(db), "train", "sft", "--base", str(tiny_folder), "--max-steps", str(max_steps),
           "--config", str(tmp_path / "cfg.json")]
    env = base_env()
    kills, resumed_from, kept_times = 0, [], {}
    run_dir: Path | None = None
    expected_start = 0  # the checkpoint the next attempt must resume from
    dead: set[int] = set()  # pids of the jobs killed so far
    partial_at_kill, starts = [], []  # what each kill left behind, the checkpoint each rerun must start from
    for attempt, mode in enumerate(["after a step", "during a checkpoint save"]):
        cli = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
        target = expected_start + rng.randint(3, 7)
        deadline = time.time() + 180
        job_pid = None
        while time.time() < deadline:
            assert cli.poll() is None, cli.communicate()[1][-3000:].decode()
            dirs = list((tmp_path / "runs").glob("train-sft-*"))
            if dirs:
                run_dir = dirs[0]
                launcher = _read_json(run_dir / "launcher.json")
                status = _read_json(run_dir / "status.json")
                # this attempt's job is running (not the previous, killed one)
                if launcher.get("pid") and launcher["pid"] not in dead and status.get("pid") == launcher["pid"]:
                    job_pid = launcher["pid"]
                    if attempt and not resumed_from[attempt - 1:]:
                        resumed_from.append(status.get("resumed_from"))
                    if mode == "after a step":
                        rows = _metrics(run_dir)
                        if rows and rows[-1]["step"] >= target:
                            break
                    else:  # the moment a checkpoint folder exists but is not complete yet
                        partial = [p for p in run_dir.glob("checkpoint-*")
                                   if int(p.name.split("-")[1]) > expected_start + 2
                                   and not (p / "trainer_state.json").exists()]
                        if partial:
                            break
            time.sleep(0.002)
        else:
            raise AssertionError(f"training never reached the kill point ({mode})")
        if attempt:
            # the earlier steps are kept as they were, the steps after the checkpoint are redone
            rows = {r["step"]: r for r in _metrics(run_dir)}
            assert all(rows[s]["time"] == t for s, t in kept_times.items() if s <= expected_start)
        # a machine crash: the CLI (which waits on the job, ingesting) and the job die together
        os.killpg(job_pid, signal.SIGKILL)
        os.killpg(cli.pid, signal.SIGKILL)
        cli.wait(30)
        dead.add(job_pid)
        kills += 1
        time.sleep(0.2)
        expected_start = _complete_checkpoint(run_dir)
        assert expected_start >= 2, "no checkpoint was complete at the kill"
        starts.append(expected_start)
        partial_at_kill.append(sorted(p.name for p in run_dir.glob("checkpoint-*")
                                      if not (p / "trainer_state.json").exists()))
        kept_times = {r["step"]: r["time"] for r in _metrics(run_dir)}
        check_integrity(db)

    final = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    status = _read_json(run_dir / "status.json")
    resumed_from.append(status.get("resumed_from"))
    assert status["status"] == "finished" and status["step"] == max_steps
    # every rerun resumed from the last complete checkpoint the crash left
    assert resumed_from == [f"checkpoint-{n}" for n in starts], (resumed_from, starts)
    rows = _metrics(run_dir)
    assert [r["step"] for r in rows] == list(range(1, max_steps + 1))
    new = [r for r in rows if r["step"] > expected_start]
    assert new[0]["step"] == expected_start + 1
    assert all(rows[s - 1]["time"] == t for s, t in kept_times.items() if s <= expected_start)
    counts = check_integrity(db)
    with open_store(db) as s:
        run_id = run_dir.name
        assert s.query("SELECT status FROM runs WHERE kind = 'train-sft'") == [{"status": "finished"}]
        db_steps = [r["step"] for r in s.query("SELECT step FROM train_metrics WHERE run_id = ? ORDER BY step", [run_id])]
        assert db_steps == list(range(1, max_steps + 1))
        assert s.count("checkpoints", "WHERE run_id = ?", [run_id]) == 1
        # what the store shows for each step is what the run folder (the job's record) says
        stored = {r["step"]: json.loads(r["metrics"]) for r in s.query(
            "SELECT step, metrics FROM train_metrics WHERE run_id = ?", [run_id])}
    assert counts["checkpoints"] == 1
    # What the store shows for each step is exactly the run folder's line, also for steps
    # redone after a crash (their wall times and TRL's token counter differ from the first try).
    stale = [st for st in range(1, max_steps + 1) if stored[st] != rows[st - 1]]
    assert not stale, (f"steps whose stored metrics differ from the run folder: {stale}; e.g. step {stale[0]}: "
                       f"store {stored[stale[0]]} vs run folder {rows[stale[0] - 1]}")
    assert partial_at_kill[1], "the second kill was meant to land inside a checkpoint save"
    print(f"training: killed {kills} times (half-written checkpoints left by the kills: {partial_at_kill}); "
          f"resumed from {resumed_from}, finished at step {max_steps}")
    _report_kills("train", kills)


# ---------------------------------------------------------------- one writer


def test_while_the_app_holds_the_db_cli_and_second_app_get_one_clear_line_and_db_is_intact(tmp_path):
    db = tmp_path / "lab.duckdb"
    cai(tmp_path, "--backend", "scripted", "sl", "--prompts", "red-team", "--constitution", "seed",
        "--rounds", "1", "--limit", "5", db=db)
    (tmp_path / "more.txt").write_text("one more prompt\n")
    before = stats(db)
    port, port2 = free_port(), free_port()
    app = start_app(db, port, "--backend", "scripted")
    try:
        # a second app on the same database: starts in parallel with the CLI checks below
        second = subprocess.Popen([PYTHON, str(ROOT / "app.py"), "--db", str(db), "--port", str(port2),
                                   "--backend", "scripted"], cwd=tmp_path, env=base_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for args in (["stats", "--json"],
                     ["--backend", "scripted", "sl", "--prompts", "red-team", "--constitution", "seed", "--limit", "7"],
                     ["prompts", "import", str(tmp_path / "more.txt")]):
            p = cai(tmp_path, *args, db=db, check=False)
            assert p.returncode == 2, (args, p.stderr)
            line = one_clear_line(p.stderr)
            assert line.startswith("cai: error: the database ") and str(db) in line
            assert f"PID {app.pid}" in line, line  # what holds it
            assert "stop that process" in line and "another --db" in line  # what to do
            assert p.stdout == ""
        out = second.communicate(timeout=90)[0]
        assert second.returncode == 2, out
        assert "Traceback" not in out and "open for writing in another process" in out and f"PID {app.pid}" in out
        assert [ln for ln in out.splitlines() if ln.strip()][-1].startswith("app.py: error:")
        with pytest.raises(AssertionError, match="nothing listening"):
            wait_listening(port2, timeout=0.5)
        # the first app still serves
        import httpx

        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
    finally:
        stop_app(app)
    assert stats(db) == before
    check_integrity(db)


# ---------------------------------------------------------------- concurrent auditors


def test_8_threads_x_25_audit_actions_on_one_app_services_all_stored_and_replayable(tmp_path):
    from cai_core.services import Services
    from cai_core.labels.audits import effective_labels
    from cai_core.backends.scripted import ScriptedBackend
    from cai_core.config import Settings
    from cai_core.runners.judge import JudgeConfig
    from cai_core.runners.sl import SLConfig

    services = Services(Settings(db=str(tmp_path / "app.duckdb"), backend="scripted", model="t",
                                    runs_dir=str(tmp_path / "runs")), backend=ScriptedBackend("scripted:t"))
    try:
        res = services.sl(prompts="red-team", constitution="seed", config=SLConfig(rounds=1, limit=6))
        assert services.pairs_from_sl(res.run.id) == 6
        services.judge(constitution="seed", config=JudgeConfig())
        cids = [r["id"] for r in services.store.query("SELECT id FROM comparisons ORDER BY id")]
        ai = {c: lab.ai_choice for c, lab in services.effective_labels().items()}

        # A background SL job writes at the same time, as it would in the app.
        job = services.submit_sl(prompts="benign", constitution="seed", config=SLConfig(rounds=1, limit=12, chunk=2))

        threads, per = 8, 25
        authors = [f"auditor-{i % 4}" for i in range(threads)]  # two threads per person: two tabs
        barrier = threading.Barrier(threads)
        issued: dict[int, list[str]] = {i: [] for i in range(threads)}
        errors: list[BaseException] = []

        def worker(i: int) -> None:
            rng = random.Random(700 + i)
            try:
                barrier.wait(10)
                for k in range(per):
                    action = rng.choice(["A", "B", "tie", "accept", "undo", "A", "B"])
                    cid = rng.choice(cids)
                    audit = services.record_audit(cid, author=authors[i], action=action,
                                                  reason=f"t{i} #{k}" if action != "undo" else None)
                    issued[i].append(audit.id)
                    if k % 5 == 4:  # reads in between, as the Audit tab does after each action
                        services.audit_queue(author=authors[i], limit=1)
                        services.effective_labels(comparison_ids=[cid])
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(120)
        assert not errors, errors
        view = services.jobs.wait(job, timeout=60).view()
        assert view["status"] == "finished", view

        rows = services.store.query("SELECT id, comparison_id, author, action FROM audits ORDER BY id")
        stored = len(rows)
        print(f"actions stored under concurrency: {stored}/{threads * per}")
        assert stored == threads * per
        assert len({r["id"] for r in rows}) == stored
        assert {r["id"] for r in rows} == {a for ids in issued.values() for a in ids}
        for ids in issued.values():  # each thread's actions are in the log in the order it issued them
            assert ids == sorted(ids)

        # Replay the log in id order (independently of cai_core.labels.audits): per (comparison, author)
        # a stack where undo pops; the latest standing decision of anyone wins; accept = AI's vote.
        stacks: dict[tuple[str, str], list[dict]] = {}
        for r in rows:
            st = stacks.setdefault((r["comparison_id"], r["author"]), [])
            if r["action"] == "undo":
                if st:
                    st.pop()
            else:
                st.append(r)
        latest: dict[str, dict] = {}
        for (cid, _), st in stacks.items():
            for r in st:
                if cid not in latest or r["id"] > latest[cid]["id"]:
                    latest[cid] = r
        labels = effective_labels(services.store)
        for cid in cids:
            want = latest.get(cid)
            lab = labels[cid]
            if want is None:
                assert (lab.source, lab.choice) == ("ai", ai[cid]), cid
            elif want["action"] == "accept":
                assert (lab.source, lab.choice, lab.human.audit_id) == ("human", ai[cid], want["id"]), cid
            else:
                assert (lab.source, lab.choice, lab.human.audit_id) == ("human", want["action"], want["id"]), cid
        # the background job's records are complete too
        assert services.store.count("revisions", "WHERE run_id = ?", [view["run_id"]]) == 12
    finally:
        services.close()
    check_integrity(tmp_path / "app.duckdb")
