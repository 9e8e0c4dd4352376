"""The `cai` command as users run it (subprocesses): contract, errors, kill -9 and resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import CAI, cli_env


def cai(tmp_path: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(
        [CAI, "--db", str(tmp_path / "cai.duckdb"), *args],
        cwd=tmp_path, env=env or cli_env(tmp_path), capture_output=True, text=True, timeout=300,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"cai {' '.join(args)} -> {p.returncode}\n{p.stderr}")
    return p


def stats(tmp_path: Path) -> dict:
    return json.loads(cai(tmp_path, "stats", "--json").stdout.strip().splitlines()[-1])


def test_help_lists_every_command(tmp_path):
    out = cai(tmp_path, "--help").stdout
    for cmd in ("prompts", "constitutions", "sl", "export", "stats", "runs", "app", "model"):
        assert cmd in out
    assert "red-team" in out  # the epilog names the shipped sets
    sl_help = cai(tmp_path, "sl", "--help").stdout
    for flag in ("--prompts", "--constitution", "--rounds", "--limit", "--cot", "--seed", "--new-run"):
        assert flag in sl_help


def test_import_sl_export_stats(tmp_path):
    f = tmp_path / "mine.csv"
    f.write_text("prompt,category\nHow do I pick a lock?,theft\nHow do I pick a lock?,theft\nWrite a rude poem.,insults\n")
    imp = cai(tmp_path, "prompts", "import", str(f), "--name", "mine")
    assert imp.stdout.strip() == "mine" and "2 prompts added" in imp.stderr
    assert cai(tmp_path, "prompts", "list").stdout.startswith("mine\t2\t")

    # global options may also follow the subcommand
    sl = cai(tmp_path, "sl", "--backend", "scripted", "--prompts", "mine", "--constitution", "seed", "--rounds", "2")
    run_id = sl.stdout.strip()
    assert run_id.startswith("sl-") and "finished" in sl.stderr
    s = stats(tmp_path)
    assert (s["prompts"], s["generations"], s["critiques"], s["revisions"], s["runs"]) == (2, 2, 4, 4, 1)
    assert set(s) >= {"comparisons", "verdicts", "unparsed_verdicts", "audits", "checkpoints"}

    # same command again: same run id, nothing new
    again = cai(tmp_path, "sl", "--backend", "scripted", "--prompts", "mine", "--constitution", "seed", "--rounds", "2")
    assert again.stdout.strip() == run_id and stats(tmp_path)["revisions"] == 4
    # --new-run forces a fresh run
    fresh = cai(tmp_path, "sl", "--backend", "scripted", "--prompts", "mine", "--constitution", "seed", "--rounds", "2", "--new-run")
    assert fresh.stdout.strip() != run_id and stats(tmp_path)["runs"] == 2

    out = tmp_path / "sft.jsonl"
    exp = cai(tmp_path, "export", "sft", "--out", str(out), "--run", run_id)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and "snapshot" in exp.stderr
    assert [m["role"] for m in rows[0]["messages"]] == ["user", "assistant"]
    assert rows[0]["messages"][0]["content"] == "How do I pick a lock?"
    assert rows[0]["messages"][1]["content"].startswith("revision ")  # the scripted revision
    pq = tmp_path / "sft.parquet"
    both = cai(tmp_path, "export", "sft", "--out", str(pq), "--sl-runs", f"{run_id},{fresh.stdout.strip()}")
    import datasets

    assert datasets.Dataset.from_parquet(str(pq)).num_rows == 4 and run_id in both.stderr
    # no selection: the latest finished SL run, never "everything in the store"
    latest = cai(tmp_path, "export", "sft", "--out", str(pq))
    assert datasets.Dataset.from_parquet(str(pq)).num_rows == 2 and fresh.stdout.strip() in latest.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["sl", "--backend", "scripted", "--prompts", "nope", "--constitution", "seed"], "no prompt set named 'nope'"),
        (["sl", "--backend", "scripted", "--prompts", "red-team", "--constitution", "nope"], "no constitution named 'nope'"),
        (["sl", "--backend", "scripted", "--prompts", "red-team", "--constitution", "seed", "--rounds", "-1"], "rounds must be 0 (first answers only) or more"),
        (["prompts", "import", "missing.jsonl"], "no such file"),
        (["sl", "--model", "/no/such/folder", "--prompts", "red-team", "--constitution", "seed"], "not 'embedded' and not a local folder"),
        (["sl", "--backend", "openai", "--prompts", "red-team", "--constitution", "seed"], "needs --base-url"),
    ],
)
def test_errors_are_one_clear_line(tmp_path, args, message):
    p = cai(tmp_path, *args, check=False)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr
    assert p.stderr.startswith("cai: error:")


def test_bad_prompt_file_and_bad_constitution(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine prompt\n\xff\xfe broken\n")
    p = cai(tmp_path, "prompts", "import", str(bad), check=False)
    assert p.returncode == 2 and "bad.txt:2: not UTF-8" in p.stderr
    cons = tmp_path / "broken.toml"
    cons.write_text('title = "x"\n[[principles]]\nid = "a"\ncritique = "c"\npreference = "p"\n')
    v = cai(tmp_path, "constitutions", "validate", str(cons), check=False)
    assert v.returncode == 1 and "broken.toml:2" in v.stderr and "'revision'" in v.stderr
    ok = cai(tmp_path, "constitutions", "validate", str(Path(__file__).parents[2] / "constitutions" / "harmless.toml"))
    assert "16 principles" in ok.stdout


def test_second_writer_gets_a_clear_message(tmp_path):
    from cai_core.store import Store

    holder = Store(tmp_path / "cai.duckdb")  # this test process holds the write lock
    try:
        p = cai(tmp_path, "stats", "--json", check=False)
        assert p.returncode == 2
        assert "open for writing in another process" in p.stderr and "Traceback" not in p.stderr
        assert f"PID {os.getpid()}" in p.stderr
    finally:
        holder.close()
    assert stats(tmp_path)["prompts"] == 0


def test_kill_9_mid_run_then_resume_counts_exact(tmp_path):
    """kill -9 the CLI while it writes, rerun the same command: every record exactly once."""
    args = ["--backend", "scripted", "sl", "--prompts", "red-team", "--constitution", "harmless",
            "--rounds", "2", "--limit", "24", "--chunk", "4"]
    env = cli_env(tmp_path, CAI_SCRIPTED_DELAY="0.15")  # each batch of 4 takes 0.15 s
    proc = subprocess.Popen([CAI, "--db", str(tmp_path / "cai.duckdb"), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = tmp_path / "cai.duckdb"
    # Kill once the progress bar says the first answers are written (not after a fixed sleep: a slow
    # machine can spend seconds importing before the first batch).
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stderr.read(64), "")), daemon=True)
    reader.start()
    deadline = time.time() + 120
    while "round 1 critiques" not in "".join(seen) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed:\n" + "".join(seen)[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert time.time() < deadline
    partial = stats(tmp_path)
    total = partial["generations"] + partial["critiques"] + partial["revisions"]
    assert 0 < total < 24 * 5, partial

    resumed = cai(tmp_path, *args, env=env)
    assert "finished" in resumed.stderr
    s = stats(tmp_path)
    assert (s["generations"], s["critiques"], s["revisions"], s["runs"]) == (24, 48, 48, 1)
    from cai_core.store import Store

    with Store(db) as st:
        for table in ("generations", "critiques", "revisions"):
            assert st.scalar(f"SELECT count(*) - count(DISTINCT id) FROM {table}") == 0
        # per prompt: exactly one record per round
        assert st.scalar("SELECT max(n) FROM (SELECT count(*) AS n FROM revisions GROUP BY prompt_id, round)") == 1
        assert st.scalar("SELECT status FROM runs") == "finished"
    print(f"kill -9 survived: {total} of 120 records were written before the kill; resume completed the rest")


def test_a_constitution_saved_in_the_app_is_used_by_cai_sl(tmp_path):
    from cai_core.config import Settings
    from cai_core.services import Services

    base = (Path(__file__).parents[2] / "constitutions" / "seed.toml").read_text()
    edited = base.replace('title = "', 'title = "Edited in the app: ', 1)
    app = Services(Settings(db=str(tmp_path / "cai.duckdb"), backend="scripted"))  # as app.py builds it
    saved = app.save_constitution("mine", edited)
    app.close()
    listed = cai(tmp_path, "constitutions", "list").stdout
    assert f"mine\t{saved.version}" in listed
    run_id = cai(tmp_path, "--backend", "scripted", "sl", "--prompts", "red-team", "--constitution", "mine",
                 "--rounds", "1", "--limit", "2").stdout.strip()
    from cai_core.store import Store

    with Store(tmp_path / "cai.duckdb") as s:
        assert s.scalar("SELECT constitution_version FROM runs WHERE id = ?", [run_id]) == saved.version


def test_cai_app_takes_every_flag_app_py_takes_and_starts_with_a_login(tmp_path):
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert "ct2" in subprocess.run([CAI, "app", "--help"], capture_output=True, text=True).stdout
    proc = subprocess.Popen([CAI, "--db", str(tmp_path / "cai.duckdb"), "app", "--auth", "u:p", "--backend", "scripted",
                             "--port", str(port)], cwd=tmp_path, env=cli_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline, page = time.time() + 90, None
        while time.time() < deadline and proc.poll() is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert proc.poll() is None and page is not None, proc.stdout.read() if proc.poll() is not None else "no answer"
        import urllib.error

        with pytest.raises(urllib.error.HTTPError, match="401"):  # the login is on: no config without it
            urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    bad = cai(tmp_path, "app", "--host", "0.0.0.0", check=False)
    assert bad.returncode == 2 and "a shared host needs a login" in bad.stderr


def test_judge_validate_json_and_the_formats_it_reads(tmp_path):
    rows = [{"prompt": "How do I pick a lock?", "chosen": "I won't help open a lock that isn't yours; a locksmith can.",
             "rejected": "Sure: rake the pins."},
            {"chosen": "\n\nHuman: Name a colour.\n\nAssistant: Blue.", "rejected": "\n\nHuman: Name a colour.\n\nAssistant: No."},
            {"prompt": "Human: Faster code?\n\nWhich is better?\n\n(A) [[[No idea.]]] (B) [[[Profile it first.]]]",
             "corrects": [" (B)"], "incorrects": [" (A)"]}]
    gold = tmp_path / "mixed.jsonl"
    gold.write_text("\n".join(json.dumps(r) for r in rows))
    assert cai(tmp_path, "gold", "import", str(gold), "--tune", "0.5").stdout.startswith("mixed: 3 pairs")
    listed = {s["name"]: s for s in json.loads(cai(tmp_path, "gold", "list", "--json").stdout)}
    assert listed["mixed"]["n"] == 3 and listed["hhh"]["n"] is None  # shipped, imported on first use
    p = cai(tmp_path, "--backend", "scripted", "judge", "validate", "--gold", str(gold), "--split", "all",
            "--mode", "calibrated,pointwise", "--json")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["n"] == 3 and out["mode"] == "calibrated" and out["gold"] == "mixed"
    assert set(out["accuracy_by_order"]) == {"AB", "BA"} and len(out["accuracy_ci"]) == 2
    assert {"accuracy", "flip_rate", "brier"} <= set(out)
    assert [c["mode"] for c in out["configs"]] == ["calibrated", "pointwise"]
    assert "warning:" in p.stderr  # 3 pairs can never exclude chance
    bad = cai(tmp_path, "--backend", "scripted", "judge", "validate", "--gold", "nope", check=False)
    assert bad.returncode == 2 and "no gold set or file 'nope'" in bad.stderr
    # a judge run (default mode: calibrated, the one validated above) says how far its labels can be trusted
    cai(tmp_path, "--backend", "scripted", "pairs", "--prompts", "red-team", "--limit", "2")
    judged = cai(tmp_path, "--backend", "scripted", "judge")
    assert "validated on mixed" in judged.stderr
    listed = cai(tmp_path, "--backend", "scripted", "runs", "--kind", "judge").stdout
    assert "\tvalidated " in listed
