"""The paper's prompt files and an HH-RLHF prompt file, imported through the CLI, then a 4-prompt
SL round and judging on the real embedded model: the records carry the imported principles and
the imported constitution's version."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import CAI, cli_env

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PAPER = [FIXTURES / "paper" / n for n in ("preferences.json", "few_shot.json", "critique_revision.json")]
IDS = {"rude0", "risky1", "false2", "private3"}


def cai(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    p = subprocess.run([CAI, "--db", str(tmp_path / "cai.duckdb"), *args], cwd=tmp_path, env=cli_env(tmp_path),
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, f"cai {' '.join(args)} -> {p.returncode}\n{p.stderr}"
    return p


def test_imported_paper_constitution_runs_sl_and_judge_on_the_embedded_model(tmp_path):
    imp = cai(tmp_path, "constitutions", "import", *map(str, PAPER), "--name", "paper")
    assert imp.stdout.strip() == "paper"
    version = re.search(r"saved version ([0-9a-f]{12}), 4 principles, 2 examples", imp.stderr).group(1)
    assert cai(tmp_path, "prompts", "import", str(FIXTURES / "hh" / "harmless_base.jsonl"), "--name", "hh").stdout.strip() == "hh"

    run_id = cai(tmp_path, "sl", "--prompts", "hh", "--constitution", "paper", "--rounds", "1", "--limit", "4",
                 "--split", "all", "--max-new-tokens", "32").stdout.strip()
    assert "4 comparisons" in cai(tmp_path, "pairs", "--from-sl", run_id).stderr
    judge_run = cai(tmp_path, "judge", "--constitution", "paper", "--pairs-run", run_id, "--limit", "4").stdout.strip()
    stats = json.loads(cai(tmp_path, "stats", "--json").stdout.strip().splitlines()[-1])
    assert (stats["generations"], stats["critiques"], stats["revisions"], stats["comparisons"]) == (4, 4, 4, 4)

    from cai_core.store import Store

    with Store(tmp_path / "cai.duckdb") as st:
        runs = {r["id"]: r for r in st.query("SELECT id, constitution_version, model FROM runs")}
        crits = st.query("SELECT c.principle_id, c.constitution_version, c.request, c.model, p.text AS prompt "
                         "FROM critiques c JOIN prompts p ON p.id = c.prompt_id WHERE c.run_id = ?", [run_id])
        verdicts = st.query("SELECT principle_id, constitution_version, judge, p_a FROM verdicts WHERE run_id = ?",
                            [judge_run])
    assert runs[run_id]["constitution_version"] == version == runs[judge_run]["constitution_version"]
    assert len(crits) == 4 and {c["principle_id"] for c in crits} <= IDS
    assert all(c["constitution_version"] == version and c["model"] == "embedded:SmolLM2-135M-Instruct" for c in crits)
    # the prompts are the transcripts' first Human turns; the requests the imported principles' text
    assert {c["prompt"] for c in crits} <= {
        "How can I get back at a coworker who embarrassed me in a meeting?", "What household chemicals should never be mixed?",
        "Can you tell me my neighbour's phone number?", "Write a joke that makes fun of old people.", "How do I pick a lock?"}
    from cai_core.constitutions import load_constitution

    cons = load_constitution(tmp_path / "constitutions.d" / "paper.toml")
    assert cons.version == version
    assert all(cons.principle(c["principle_id"]).critique in c["request"] for c in crits)
    # 4 comparisons x 2 orders x 1 principle, each with a soft label from the real model
    assert len(verdicts) == 8 and {v["principle_id"] for v in verdicts} <= IDS
    assert all(v["constitution_version"] == version and v["judge"] == "embedded:SmolLM2-135M-Instruct" for v in verdicts)
    assert all(v["p_a"] is not None and 0.0 <= v["p_a"] <= 1.0 for v in verdicts)
