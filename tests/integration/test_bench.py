"""The benchmark commands run end to end on tiny sizes and print their JSON contract on the
last line. No timing is asserted here: timings are the benchmark's output, not a test."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import CAI, ROOT, cli_env

GENERATION_KEYS = {
    "baseline_tok_s", "project_tok_s", "ratio_vs_baseline", "compute_bound_tok_s", "fraction_of_bound",
    "peak_rss_mb", "sl_prompts_per_min", "judge_pairs_per_min", "judge_pairs_per_min_cot", "ratio_vs_baseline_sl",
}


def _last_json(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "no output"
    return json.loads(lines[-1])


def test_bench_store_prints_p50_and_p95_per_query(tmp_path):
    r = subprocess.run([CAI, "bench", "store", "--verdicts", "2000", "--repeat", "2", "--json"], cwd=tmp_path,
                       env=cli_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = _last_json(r.stdout)
    assert out["verdicts"] == 2000 and out["comparisons"] == 200 and out["audits"] > 0
    names = set(out["queries"])
    for expected in ("audit_queue[disagreement]", "audit_queue[stratified]", "audit_queue[random]", "agreement",
                     "comparisons_page[all]", "comparisons_page[low confidence]", "stats"):
        assert expected in names
    for q in out["queries"].values():
        assert q["p50_ms"] >= 0 and q["p95_ms"] >= q["p50_ms"]
    # the queue really served something from the synthetic data
    assert out["queries"]["audit_queue[disagreement]"]["rows"] == 1
    assert out["queries"]["comparisons_page[all]"]["rows"] > 0


def test_synthetic_data_is_deterministic_and_shaped(store):
    import sys

    sys.path.insert(0, str(ROOT))
    from bench.synth import SynthSizes, generate

    generate(store, SynthSizes(verdicts=1000))
    assert store.count("verdicts") == 1000 and store.count("comparisons") == 100
    per = store.query("SELECT count(*) AS n FROM verdicts GROUP BY comparison_id")
    assert {r["n"] for r in per} == {10}
    assert store.count("verdicts", "WHERE choice IS NULL") > 0  # unparsed verdicts exist
    assert store.scalar("SELECT count(DISTINCT judge) FROM verdicts") == 2
    from cai_core.labels.queue import audit_queue

    items = audit_queue(store, strategy="disagreement", limit=5)
    assert len(items) == 5 and items[0].n_verdicts == 10


@pytest.mark.parametrize("backends", ["local,ct2"])
def test_bench_generation_end_to_end_on_a_tiny_model(tmp_path, tiny_folder, backends):
    pytest.importorskip("ctranslate2")
    samples = tmp_path / "samples.md"
    cmd = [CAI, "--model", str(tiny_folder), "bench", "generation", "--prompts", "3", "--new-tokens", "4",
           "--backends", backends, "--judge-cot-pairs", "1", "--samples", str(samples), "--json"]
    r = subprocess.run(cmd, cwd=tmp_path, env=cli_env(tmp_path, CAI_CACHE_DIR=str(tmp_path / "cache")),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = _last_json(r.stdout)
    assert GENERATION_KEYS <= set(out)
    assert out["prompts"] == 3 and out["new_tokens"] == 4 and out["project_backend"] == "local"
    assert set(out["backends"]) == {"ct2", "local"}
    for b in out["backends"].values():
        assert b["status"] == "finished" and b["tokens"] > 0
    # the engine's own count of what it computed: every generated token but each row's first
    # came from a decoding step; ct2 has no such count
    work = out["backends"]["local"]["computed_tokens"]
    assert work["decode"] >= out["backends"]["local"]["tokens"] - 9 and work["prefill"] > 0 and work["gflop"] > 0
    assert work["total"] == work["prefix"] + work["prefill"] + work["decode"]
    assert out["computed_tokens"] == work and out["computed_fraction_of_probe"] > 0
    assert "computed_tokens" not in out["backends"]["ct2"]
    assert out["baseline_tok_s"] > 0 and out["compute_bound_tok_s"] > 0 and out["peak_rss_mb"] > 0
    # the naive pipeline also ran the SL stage's own requests (answers, critiques, revisions)
    assert out["baseline_sl_prompts"] == 3 and out["baseline_sl_tok_s"] > 0 and out["ratio_vs_baseline_sl"] > 0
    text = samples.read_text()
    assert "Baseline" in text and "**ct2**" in text and "**local**" in text and "critique" in text


def test_bench_attention_times_both_paths_and_names_the_engines_choice(tmp_path):
    from cai_core.backends.engine import cascade

    r = subprocess.run([CAI, "bench", "attention", "--batch", "4", "--widths", "8,20", "--reps", "2", "--json"],
                       cwd=tmp_path, env=cli_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = _last_json(r.stdout)
    assert set(out["cases"]) == {"decode rows 8", "decode rows 20", "decode prefix", "prefill slice"}
    for c in out["cases"].values():
        assert c["fused_ms"] > 0 and c["products_ms"] > 0
        assert c["products_speedup"] == pytest.approx(c["fused_ms"] / c["products_ms"], rel=0.05, abs=0.01)
    decode = "fused" if cascade.FUSED_DECODE and cascade.FUSED else "products"
    assert out["cases"]["decode rows 8"]["engine_uses"] == decode
    assert out["fused_decode"] == cascade.FUSED_DECODE


def test_bench_revision_search_on_a_tiny_model(tmp_path, tiny_folder):
    r = subprocess.run([CAI, "--model", str(tiny_folder), "bench", "revision-search", "--prompts", "3",
                        "--candidates", "3", "--new-tokens", "6", "--json"],
                       cwd=tmp_path, env=cli_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = _last_json(r.stdout)
    assert out["bench"] == "revision-search" and out["turns"] == 3 and out["candidates"] == 3
    assert out["greedy_s"] > 0 and out["search_s"] > 0
    assert out["cost_ratio"] == pytest.approx(out["search_s"] / out["greedy_s"], rel=0.05, abs=0.01)
    shared = out["answers_critiques_s"]
    assert shared > 0 and out["stage_cost_ratio"] == pytest.approx(
        (shared + out["search_s"]) / (shared + out["greedy_s"]), rel=0.05, abs=0.01)
    # a random tiny model writes nothing acceptable: every turn was sampled
    assert out["sampled_turns"] == 3 and out["acceptable_search"] >= out["acceptable_greedy"] == 0
    assert sum(out["kinds_search"].values()) == sum(out["kinds_greedy"].values()) == 3
