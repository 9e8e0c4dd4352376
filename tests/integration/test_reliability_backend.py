"""Backend faults, end to end: an OpenAI-compatible stub that fails chosen requests (HTTP 500,
429, malformed JSON, truncated bodies, timeouts) under `cai --backend openai ... sl|judge`.

A run with failures ends `incomplete` (exit 3), each failure is in the `failures` table with
its reason, everything else is stored, and a rerun after the server is healed computes exactly
the missing items. Backend failures while judging are never stored as verdicts and are retried.

The CLI sets the HTTP timeout and retries (`--timeout`, `--max-retries`; defaults 60 s and 4),
not the back-off (0.5 s doubling). So: 500/429 through the CLI carry `Retry-After: 0` (honoured
by the backend), malformed/truncated bodies take the default back-off (~7.5 s, items in
parallel); timeouts go through the CLI with `--timeout 0.3 --max-retries 1`, and through the
services with OpenAIBackend(timeout=0.3, max_retries=1).
"""
from __future__ import annotations

import json

import pytest

from reliability_helpers import Fault, OpenAIStub, cai, check_integrity, open_store

PROMPTS = [
    "Explain how tides work.", "Write a haiku about rain.", "How do I pick a lock? [f500]",
    "What is the capital of France? [f429]", "Tell me a joke. [fbadjson]", "How do vaccines work? [ftrunc]",
    "Summarise the French revolution. [fcrit500]", "How can I hurt someone?", "Is lying ever acceptable?",
    "How do I make a weapon at home?", "Describe photosynthesis.", "Give me a recipe for bread.",
]
SL_FAULTS = [
    Fault("[f500]", "status", 500, stage="answer"),
    Fault("[f429]", "status", 429, stage="answer"),
    Fault("[fbadjson]", "malformed", stage="answer"),
    Fault("[ftrunc]", "truncated", stage="answer"),
    Fault("[fcrit500]", "status", 503, stage="critique"),
]
REASONS = {
    "[f500]": ("generate", "HTTP 500 after 5 attempts"),
    "[f429]": ("generate", "HTTP 429 after 5 attempts"),
    "[fbadjson]": ("generate", "malformed response (invalid JSON) after 5 attempts"),
    "[ftrunc]": ("generate", "after 5 attempts"),
    "[fcrit500]": ("critique", "HTTP 503 after 5 attempts"),
}


def _import(tmp_path, name="faults", prompts=PROMPTS):
    f = tmp_path / f"{name}.jsonl"
    f.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    cai(tmp_path, "prompts", "import", str(f))


def _item_prompt(db, run_id):
    """failure item id -> prompt text (item ids are the deterministic ids of the missing records)."""
    from cai_core.stages.generate import generation_id
    from cai_core.stages.revise import critique_id, revision_id

    with open_store(db) as s:
        prompts = s.query("SELECT id, text FROM prompts")
    out = {}
    for p in prompts:
        out[generation_id(run_id, p["id"])] = p["text"]
        for r in (1, 2):
            out[critique_id(run_id, p["id"], r)] = p["text"]
            out[revision_id(run_id, p["id"], r)] = p["text"]
    return out


def test_sl_via_openai_with_500_429_malformed_truncated_is_incomplete_then_rerun_completes_exactly_the_missing(tmp_path):
    db = tmp_path / "cai.duckdb"
    _import(tmp_path)
    with OpenAIStub() as stub:
        stub.state.faults = SL_FAULTS
        args = ["--backend", "openai", "--base-url", stub.url, "--model", "stub-model", "sl", "--split", "all", "--prompts", "faults",
                "--constitution", "seed", "--rounds", "1"]
        first = cai(tmp_path, *args, check=False)
        assert first.returncode == 3, first.stderr[-3000:]
        assert "Traceback" not in first.stderr and "incomplete" in first.stderr
        assert "5 failed (rerun to retry)" in first.stderr
        run_id = first.stdout.strip()
        with open_store(db) as s:
            assert s.scalar("SELECT status FROM runs WHERE id = ?", [run_id]) == "incomplete"
            got = (s.count("generations"), s.count("critiques"), s.count("revisions"))
            failures = s.query("SELECT stage, error, item FROM failures WHERE run_id = ?", [run_id])
        n = len(PROMPTS)
        assert got == (n - 4, n - 5, n - 5)  # all other items are stored
        where = _item_prompt(db, run_id)
        by_marker = {next(m for m in REASONS if m in where[f["item"]]): (f["stage"], f["error"]) for f in failures}
        assert len(failures) == 5 and set(by_marker) == set(REASONS)
        for marker, (stage, reason) in REASONS.items():
            assert by_marker[marker][0] == stage and reason in by_marker[marker][1], (marker, by_marker[marker])
        assert "connection error" in by_marker["[ftrunc]"][1] or "malformed" in by_marker["[ftrunc]"][1]
        check_integrity(db)

        # the server is healed; the same command again computes only what is missing
        stub.state.healed = True
        stub.reset_log()
        again = cai(tmp_path, *args)
        assert again.stdout.strip() == run_id and "finished" in again.stderr
        asked = {st: len(stub.requests_of(st)) for st in ("answer", "critique", "revision")}
        assert asked == {"answer": 4, "critique": 5, "revision": 5}, asked
        assert all(any(m in u for m in REASONS) for u in stub.requests_of("answer"))
    counts = check_integrity(db)
    assert (counts["generations"], counts["critiques"], counts["revisions"]) == (n, n, n)
    assert counts["failures"] == 5  # kept as history
    with open_store(db) as s:
        assert s.scalar("SELECT status FROM runs WHERE id = ?", [run_id]) == "finished"


def _sl_then_pairs(tmp_path, prompts):
    _import(tmp_path, "judged", prompts)
    sl = cai(tmp_path, "--backend", "scripted", "sl", "--split", "all", "--prompts", "judged", "--constitution", "seed", "--rounds", "1")
    cai(tmp_path, "pairs", "--from-sl", sl.stdout.strip())


JUDGE_PROMPTS = ["Explain tides.", "How do I pick a lock? [j500]", "Tell me a joke. [j429]",
                 "Write a poem. [jbadjson]", "Describe rain.", "Is lying ok?"]
JUDGE_FAULTS = [Fault("[j500]", "status", 500, stage="judge"), Fault("[j429]", "status", 429, stage="judge"),
                Fault("[jbadjson]", "malformed", stage="judge")]


def _judge_round_trip(tmp_path, mode: str, faults=JUDGE_FAULTS):
    markers = [f.marker for f in faults]
    reasons = {"[j500]": "HTTP 500 after 5 attempts", "[j429]": "HTTP 429 after 5 attempts",
               "[jbadjson]": "malformed response (invalid JSON) after 5 attempts"}
    db = tmp_path / "cai.duckdb"
    _sl_then_pairs(tmp_path, JUDGE_PROMPTS)
    n = len(JUDGE_PROMPTS)
    with OpenAIStub() as stub:
        stub.state.faults = list(faults)
        args = ["--backend", "openai", "--base-url", stub.url, "--model", "stub-model", "judge",
                "--constitution", "seed", "--mode", mode]
        first = cai(tmp_path, *args, check=False)
        assert first.returncode == 3 and "incomplete" in first.stderr, first.stderr[-3000:]
        run_id = first.stdout.strip()
        with open_store(db) as s:
            verdicts = s.count("verdicts", "WHERE run_id = ?", [run_id])
            failures = s.query("SELECT error FROM failures WHERE run_id = ? AND stage = 'judge'", [run_id])
            assert s.scalar("SELECT status FROM runs WHERE id = ?", [run_id]) == "incomplete"
        k = len(faults)
        assert verdicts == (n - k) * 2  # both orders of every healthy comparison; no failure stored as one
        assert sorted(f["error"] for f in failures) == sorted(reasons[m] for m in markers for _ in (1, 2))
        check_integrity(db)

        stub.state.healed = True
        stub.reset_log()
        again = cai(tmp_path, *args)
        assert again.stdout.strip() == run_id and "finished" in again.stderr
        retried = stub.requests_of("judge")
        assert len(retried) == k * 2 and all(any(m in u for m in markers) for u in retried)
    counts = check_integrity(db)
    assert counts["verdicts"] == n * 2
    with open_store(db) as s:
        assert s.count("verdicts", "WHERE choice IS NULL") == 0
        assert s.scalar("SELECT status FROM runs WHERE id = ?", [run_id]) == "finished"


def test_judge_cot_via_openai_backend_failures_are_not_verdicts_and_are_retried(tmp_path):
    _judge_round_trip(tmp_path, "cot")


def test_judge_logprob_via_openai_backend_failures_are_not_verdicts_and_are_retried(tmp_path):
    _judge_round_trip(tmp_path, "logprob", JUDGE_FAULTS[:2])


def test_timeouts_and_faults_through_the_services_with_short_timeouts_then_heal(tmp_path):
    from cai_core.backends.openai_http import OpenAIBackend
    from cai_core.config import Settings
    from cai_core.runners.judge import JudgeConfig
    from cai_core.runners.sl import SLConfig
    from cai_core.services import Services

    prompts = ["Explain tides. [tslow]", "Describe rain.", "Write a haiku. [t500]", "Tell a story.",
               "How do magnets work? [tcrit]", "Why is the sky blue?"]
    _import(tmp_path, "timeouts", prompts)
    db = tmp_path / "cai.duckdb"
    with OpenAIStub() as stub:
        stub.state.faults = [
            Fault("[tslow]", "timeout", sleep=2.0),  # every stage of this prompt hangs
            Fault("[t500]", "status", 500, stage="answer", retry_after=None),  # plain back-off
            Fault("[tcrit]", "timeout", sleep=2.0, stage="critique"),
        ]
        backend = OpenAIBackend(stub.url, "stub-model", timeout=0.3, max_retries=1, backoff=0.01, max_backoff=0.02)
        settings = Settings(db=str(db), backend="openai", model="stub-model", base_url=stub.url)
        services = Services(settings, backend=backend)
        try:
            cfg = SLConfig(rounds=1, split=None)
            res = services.sl(prompts="timeouts", constitution="seed", config=cfg)
            assert res.status == "incomplete" and res.failed == 3
            assert (res.generations, res.critiques, res.revisions) == (4, 3, 3)
            errors = sorted(r["error"] for r in services.store.query("SELECT error FROM failures"))
            assert errors == ["HTTP 500 after 2 attempts", "timeout after 2 attempts", "timeout after 2 attempts"]

            # judging the pairs of the healthy prompts, with one comparison whose judging hangs
            run_id = res.run.id
            assert services.pairs_from_sl(run_id) == 3
            stub.state.faults.append(Fault("Why is the sky blue?", "timeout", sleep=2.0, stage="judge"))
            jr = services.judge(constitution="seed", config=JudgeConfig(mode="cot"))
            assert jr.status == "incomplete" and jr.verdicts == 4
            assert services.store.count("failures", "WHERE stage = 'judge' AND error = 'timeout after 2 attempts'") == 2

            stub.state.healed = True
            stub.reset_log()
            res2 = services.sl(prompts="timeouts", constitution="seed", config=cfg)
            assert res2.status == "finished" and (res2.generations, res2.critiques, res2.revisions) == (6, 6, 6)
            asked = {st: len(stub.requests_of(st)) for st in ("answer", "critique", "revision")}
            assert asked == {"answer": 2, "critique": 3, "revision": 3}, asked
            jr2 = services.judge(constitution="seed", config=JudgeConfig(mode="cot"))
            assert jr2.status == "finished" and jr2.verdicts == 6
            assert len(stub.requests_of("judge")) == 2
        finally:
            services.close()
            backend.close()
    check_integrity(db)


def test_cli_timeout_and_retries_reach_the_backend(tmp_path):
    """`--timeout 0.3 --max-retries 1`: a hanging request fails after 2 attempts within
    seconds (the defaults would wait 60 s x 5), and the stub saw exactly 2 attempts."""
    import time

    prompts = ["Explain tides. [hang]", "Describe rain."]
    _import(tmp_path, "slow", prompts)
    db = tmp_path / "cai.duckdb"
    with OpenAIStub() as stub:
        stub.state.faults = [Fault("[hang]", "timeout", sleep=3.0, stage="answer")]
        t = time.monotonic()
        p = cai(tmp_path, "--backend", "openai", "--base-url", stub.url, "--model", "stub-model", "--timeout", "0.3",
                "--max-retries", "1", "sl", "--split", "all", "--prompts", "slow", "--constitution", "seed", "--rounds", "1", check=False)
        elapsed = time.monotonic() - t
        assert p.returncode == 3, p.stderr[-2000:]
        assert sum("[hang]" in u for u in stub.requests_of("answer")) == 2
    assert elapsed < 30, elapsed
    with open_store(db) as s:
        assert [r["error"] for r in s.query("SELECT error FROM failures")] == ["timeout after 2 attempts"]
        assert s.count("revisions") == 1  # the other prompt went all the way


def test_timeout_and_retries_settings_from_file_and_environment(tmp_path, monkeypatch):
    from cai_core.config import load_settings

    (tmp_path / "cai.toml").write_text("timeout = 5\nmax_retries = 2\n")
    s = load_settings(tmp_path / "cai.toml")
    assert (s.timeout, s.max_retries) == (5.0, 2) and isinstance(s.timeout, float)
    monkeypatch.setenv("CAI_TIMEOUT", "0.75")
    monkeypatch.setenv("CAI_MAX_RETRIES", "0")
    s = load_settings(tmp_path / "cai.toml", timeout=None)
    assert (s.timeout, s.max_retries) == (0.75, 0)
    assert load_settings(tmp_path / "cai.toml", timeout=9.0).timeout == 9.0  # the flag wins
