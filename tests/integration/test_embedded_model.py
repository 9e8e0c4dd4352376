"""The real embedded SmolLM2-135M-Instruct end to end (CPU; about a minute in all)."""
from __future__ import annotations

import json
import math
import subprocess

import pytest

from conftest import CAI, cli_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol():
    from cai_core.backends.hf_local import HFLocalBackend

    return HFLocalBackend("embedded", batch_size=8)


def test_embedded_model_is_converted_once_and_loads(smol):
    from cai_core.models import embedded_model_dir

    folder = embedded_model_dir()
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert sum(p.numel() for p in smol.model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert smol.id == "embedded:SmolLM2-135M-Instruct"


def test_it_answers_and_scores_choices(smol):
    from cai_core.backends.base import GenerationParams, Request, chat

    outs = smol.generate([
        Request(chat(("user", "How do I hack into my neighbor's WiFi?")), GenerationParams(max_new_tokens=40)),
        Request(chat(("user", "What is the capital of France?")), GenerationParams(max_new_tokens=40)),
    ])
    assert all(o.ok and len(o.text.split()) >= 3 for o in outs)
    assert "Paris" in outs[1].text
    qs = ["Which is a colour? (A) blue (B) seven", "Which animal barks? (A) a fish (B) a dog"]
    reqs = [Request(chat(("user", q)), GenerationParams(max_new_tokens=2), continuation="The answer is: (") for q in qs]
    for greedy, lp in zip(smol.generate(reqs), smol.choice_logprobs(reqs, ["A", "B"])):
        assert all(math.isfinite(v) and v < 0 for v in lp.values())
        # the two letters hold most of the next-token mass, and scoring agrees with decoding
        assert math.exp(lp["A"]) + math.exp(lp["B"]) > 0.5
        assert greedy.text[:1] in "AB" and max(lp, key=lp.get) == greedy.text[:1]


def test_sl_cli_on_the_embedded_model(tmp_path):
    env = cli_env(tmp_path)
    run = subprocess.run(
        [CAI, "--db", str(tmp_path / "cai.duckdb"), "sl", "--prompts", "red-team", "--constitution", "harmless",
         "--rounds", "1", "--limit", "2", "--max-new-tokens", "48", "--candidates", "3"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    stats = json.loads(subprocess.run([CAI, "--db", str(tmp_path / "cai.duckdb"), "stats", "--json"],
                                      cwd=tmp_path, env=env, capture_output=True, text=True).stdout)
    assert (stats["generations"], stats["critiques"], stats["revisions"]) == (2, 2, 2)
    from cai_core.store import Store

    with Store(tmp_path / "cai.duckdb") as st:
        rows = st.query("SELECT g.text AS answer, c.text AS critique, r.text AS revision, g.model "
                        "FROM revisions r JOIN critiques c ON c.id = r.critique_id JOIN generations g ON g.id = c.parent_id")
    assert len(rows) == 2
    for r in rows:
        assert r["model"] == "embedded:SmolLM2-135M-Instruct"
        assert r["answer"] and r["critique"] and r["revision"]
        assert not r["revision"].lower().startswith("revision:")  # the forced prefix is stripped
    # the revision search on the real model: greedy first, samples only when it is not
    # acceptable, the best kept and its text the revision's
    with Store(tmp_path / "cai.duckdb") as st:
        cands = st.query("SELECT c.prompt_id, c.idx, c.text, c.score, c.acceptable, c.kept, c.kind, r.text AS revision "
                         "FROM revision_candidates c JOIN revisions r ON r.id = c.revision_id ORDER BY c.prompt_id, c.idx")
    by_prompt: dict = {}
    for c in cands:
        by_prompt.setdefault(c["prompt_id"], []).append(c)
    assert len(by_prompt) == 2
    for pool in by_prompt.values():
        assert [c["idx"] for c in pool] == ([0] if pool[0]["acceptable"] else [0, 1, 2])
        kept = [c for c in pool if c["kept"]]
        assert len(kept) == 1 and kept[0]["text"] == kept[0]["revision"] and all(c["kind"] for c in pool)
        assert kept[0]["acceptable"] == any(c["acceptable"] for c in pool)
    assert "revision search:" in run.stderr


def test_judge_and_pairs_on_the_embedded_model(smol, store):
    """Sampling pairs and log-prob judging through the real model."""
    from cai_core.constitutions import find_constitution
    from cai_core.prompt_sets import get_prompt_set
    from cai_core.runners.judge import JudgeConfig, run_judge, start_judge_run
    from cai_core.runners.pairs import PairsConfig, run_pairs, start_pairs_run
    from cai_core.backends.base import GenerationParams

    cfg = PairsConfig(limit=2, params=GenerationParams(max_new_tokens=24, temperature=0.9, top_p=0.95))
    prun, _ = start_pairs_run(store, smol, get_prompt_set(store, "red-team"), cfg)
    res = run_pairs(store, smol, prun, cfg)
    assert res.comparisons == 2
    assert all(r["answer_a"] != r["answer_b"] for r in store.query("SELECT answer_a, answer_b FROM comparisons"))
    cons = find_constitution("harmless")
    jcfg = JudgeConfig(principles=2)
    jrun, _ = start_judge_run(store, [smol], cons, jcfg)
    out = run_judge(store, [smol], cons, jrun, jcfg)
    assert (out.verdicts, out.unparsed) == (8, 0)
    for v in store.query("SELECT ab_order, p_first, p_a, choice FROM verdicts"):
        assert 0 < v["p_first"] < 1
        assert v["p_a"] == pytest.approx(v["p_first"] if v["ab_order"] == "AB" else 1 - v["p_first"])
        assert v["choice"] == ("A" if v["p_a"] > 0.5 else "B")


def test_judge_validation_on_the_embedded_model(smol, store):
    """`cai judge validate`'s runner on real gold pairs, three modes side by side: every verdict
    kept with its raw scores, every configuration's metrics recorded and resumable."""
    from cai_core.constitutions import find_constitution
    from cai_core.gold.sets import resolve_gold
    from cai_core.runners.validate import ValidateConfig, run_validation
    from cai_core.store import gold as G

    cons = find_constitution("harmless")
    gold = resolve_gold(store, "hhh")
    cfg = ValidateConfig(gold=gold, modes=("logprob", "calibrated", "pointwise"), limit=4)
    results = run_validation(store, [smol], cons, cfg)
    assert [(r.mode, r.status, r.metrics["n"]) for r in results] == [
        ("logprob", "finished", 4), ("calibrated", "finished", 4), ("pointwise", "finished", 4)]
    by_mode = {r.mode: r for r in results}
    for mode, per_pair in (("logprob", 2), ("calibrated", 2), ("pointwise", 1)):
        vs = G.gold_verdicts(store, by_mode[mode].run.id)
        assert len(vs) == 4 * per_pair and all(v.judge == smol.id and v.constitution_version == cons.version for v in vs)
        assert all(v.p_a is not None and 0.0 <= v.p_a <= 1.0 for v in vs)
        assert all(set(json.loads(v.raw)) >= {"A", "B"} for v in vs)
    assert all("prior" in json.loads(v.raw) for v in G.gold_verdicts(store, by_mode["calibrated"].run.id))
    m = by_mode["logprob"].metrics
    assert 0.0 <= m["accuracy"] <= 1.0 and m["accuracy_ci"][0] <= m["accuracy"] <= m["accuracy_ci"][1]
    assert set(m["accuracy_by_order"]) == {"AB", "BA"} and m["flip_rate"] is not None
    assert by_mode["pointwise"].metrics["flip_rate"] is None  # nothing was shown in two orders
    recorded = {v["mode"]: v for v in G.validations(store)}
    assert set(recorded) == {"logprob", "calibrated", "pointwise"} and recorded["logprob"]["n"] == 4
    again = run_validation(store, [smol], cons, cfg)  # resumed: same runs, nothing judged twice
    assert [r.run.id for r in again] == [r.run.id for r in results] and len(G.gold_verdicts(store, results[0].run.id)) == 8
