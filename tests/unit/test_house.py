"""The house rules a script can check (../shared/DESIGN.md): the store owns the SQL, one
facade, no import circle, small functions, vocabularies with one registry, and migrations
that build the schema the code expects."""
from __future__ import annotations

import ast
import dataclasses
import re
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "cai_core"
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.I)
KERNELS = {("cai_core/backends/engine/decoder.py", "_generate_batch")}
"""Functions allowed past 80 lines: the decoder's kernel loop (one step's work, kept together on purpose)."""


def sources(*roots: str):
    for r in roots:
        base = ROOT / r
        yield from ([base] if base.is_file() else sorted(base.rglob("*.py")))


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_no_sql_and_no_duckdb_outside_the_store():
    offenders = []
    for p in sources("cai_core", "views", "app.py"):
        if rel(p).startswith("cai_core/store/"):
            continue
        text = p.read_text()
        if SQL.search(text) or re.search(r"^\s*(import|from) duckdb", text, re.M):
            offenders.append(rel(p))
        # nor raw SQL handed to the store (its typed functions are the interface)
        if re.search(r"\bstore\.(query|execute|scalar|count|insert)\(", text):
            offenders.append(rel(p) + " (raw store call)")
    assert offenders == []


def test_views_never_import_torch_trl_transformers_or_duckdb():
    bad = [rel(p) for p in sources("views", "app.py")
           if re.search(r"^\s*(import|from) (torch|trl|transformers|duckdb)\b", p.read_text(), re.M)]
    assert bad == []


def test_one_services_class():
    classes = [(rel(p), n.name) for p in sources("cai_core", "views", "app.py")
               for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.ClassDef) and n.name.endswith("Services")]
    assert classes == [("cai_core/services.py", "Services")]


def test_no_function_over_80_lines_outside_the_decoder_kernel():
    long = [(rel(p), n.name, n.end_lineno - n.lineno + 1) for p in sources("cai_core", "views", "app.py")
            for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 80
            and (rel(p), n.name) not in KERNELS]
    assert long == []


def _module_graph() -> dict[str, set[str]]:
    mods = {}
    for p in PACKAGE.rglob("*.py"):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    graph = {}
    for name, p in mods.items():
        base = name.split(".") if p.name == "__init__.py" else name.split(".")[:-1]
        deps = set()
        for node in ast.parse(p.read_text()).body:  # imports at module level (TYPE_CHECKING blocks aside)
            if isinstance(node, ast.ImportFrom):
                target = ".".join(base[: len(base) - node.level + 1] + [node.module or ""]).strip(".") if node.level \
                    else node.module or ""
                for a in node.names:
                    deps.add(f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def test_no_import_circle():
    graph = _module_graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(v):  # depth-first; a grey node met again closes a circle
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                raise AssertionError(" -> ".join(path[path.index(w):] + [w]))
            if w not in state:
                visit(w)
        path.pop()
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v)
    assert "cai_core.training.env" in graph["cai_core.training.common"]  # the environment is imported first


def test_the_circle_check_sees_a_circle(monkeypatch):
    """The check above can fail: a circle put into the graph is found."""
    graph = _module_graph()
    graph["cai_core.ids"] = {"cai_core.types"}
    monkeypatch.setattr(__import__(__name__), "_module_graph", lambda: graph)
    with pytest.raises(AssertionError, match="cai_core.ids -> cai_core.types -> cai_core.ids|cai_core.types -> cai_core.ids"):
        test_no_import_circle()


def test_vocabularies_have_one_registry_each():
    from cai_core import types as T

    for lit, registry in ((T.TrainKind, T.TRAIN_KINDS), (T.JudgeMode, T.JUDGE_MODES), (T.RunStatus, T.RUN_STATUSES),
                          (T.ComparisonSource, T.COMPARISON_SOURCES), (T.AuditAction, T.AUDIT_ACTIONS),
                          (T.Split, T.SPLITS), (T.BackendKind, T.BACKEND_KINDS)):
        assert registry == typing.get_args(lit)
    from cai_core.training import KINDS
    from cai_core.cli.main import build_parser

    assert tuple(KINDS) == T.TRAIN_KINDS
    # the literals are spelled out nowhere else in the package's code
    for word in ("'ppo', 'rloo', 'grpo'", '"ppo", "rloo", "grpo"'):
        hits = [rel(p) for p in sources("cai_core", "views") if word in p.read_text()]
        assert hits == ["cai_core/types.py"] if '"' in word else hits == [], (word, hits)
    train = next(a for a in build_parser()._subparsers._group_actions[0].choices["train"]._subparsers._group_actions)
    assert tuple(train.choices) == T.TRAIN_KINDS


def test_failures_have_one_deterministic_id():
    from cai_core.types import Failure

    a, b = Failure.of("r", "item", "judge", "HTTP 500"), Failure.of("r", "item", "judge", "HTTP 500")
    assert a == b and a.id != Failure.of("r", "item", "judge", "timeout").id
    assert not [rel(p) for p in sources("cai_core") if re.search(r'"failure",', p.read_text()) and "types.py" not in str(p)]


# -- migrations (simonw/llm's tests/test_migrate.py pattern) -------------------------------------------
EXPECTED_COLUMNS = {
    "prompt_sets": ["id", "name", "source", "created_at"],
    "prompts": ["id", "set_id", "position", "text", "category", "created_at"],
    "constitutions": ["version", "name", "title", "source", "created_at"],
    "runs": ["id", "kind", "config_hash", "config", "model", "constitution_version", "prompt_set_id", "seed", "status",
             "error", "created_at", "updated_at"],
    "generations": ["id", "run_id", "prompt_id", "text", "finish_reason", "flags", "model", "params", "prompt_tokens",
                    "completion_tokens", "created_at"],
    "critiques": ["id", "run_id", "prompt_id", "parent_id", "round", "principle_id", "constitution_version", "cot",
                  "request", "text", "finish_reason", "flags", "model", "created_at"],
    "revisions": ["id", "run_id", "prompt_id", "critique_id", "round", "principle_id", "request", "text",
                  "finish_reason", "flags", "model", "created_at"],
    "revision_candidates": ["id", "run_id", "prompt_id", "round", "revision_id", "idx", "temperature", "text",
                            "finish_reason", "flags", "kind", "relevance", "score", "acceptable", "kept", "created_at"],
    "failures": ["id", "run_id", "item", "stage", "error", "created_at"],
    "comparisons": ["id", "run_id", "prompt_id", "source", "answer_a", "answer_b", "model_a", "model_b", "parent_a",
                    "parent_b", "created_at"],
    "verdicts": ["id", "run_id", "comparison_id", "principle_id", "constitution_version", "judge", "mode", "ab_order",
                 "raw", "choice", "p_first", "created_at", "p_a"],
    "audits": ["id", "comparison_id", "verdict_id", "author", "action", "reason", "created_at", "label", "p_a",
               "judge_runs"],
    "checkpoints": ["id", "run_id", "path", "base_model", "snapshot_hash", "config", "created_at", "kind"],
    "snapshots": ["hash", "kind", "path", "records", "overrides", "config", "created_at"],
    "train_metrics": ["run_id", "step", "time", "metrics"],
    "eval_reports": ["run_id", "judge_run", "report", "markdown", "created_at"],
    "response_labels": ["id", "generation_id", "run_id", "model_name", "author", "label", "reason", "created_at"],
    "split_specs": ["set_id", "held_out", "seed", "created_at"],
    "prompt_splits": ["set_id", "prompt_id", "split"],
    "snapshot_prompts": ["snapshot_hash", "text_key"],
    "what_if_verdicts": ["id", "run_id", "comparison_id", "principle_id", "constitution_version", "judge", "mode",
                         "ab_order", "raw", "choice", "p_first", "p_a", "created_at"],
    "gold_sets": ["name", "origin", "tune_fraction", "seed", "created_at"],
    "gold_pairs": ["id", "set_name", "prompt", "answer_a", "answer_b", "correct", "category", "note", "source_id",
                   "format", "split", "created_at"],
    "gold_verdicts": ["id", "run_id", "comparison_id", "principle_id", "constitution_version", "judge", "mode",
                      "ab_order", "raw", "choice", "p_first", "p_a", "created_at"],
    "judge_validations": ["run_id", "gold", "split", "judge", "mode", "constitution_version", "n", "accuracy", "ci_lo",
                          "ci_hi", "flip_rate", "brier", "metrics", "created_at"],
}


def test_migrations_build_every_table_with_its_columns(tmp_path):
    from cai_core.store import Store
    from cai_core.store.migrate import migrations

    names = [n for n, _ in migrations()]
    assert names == sorted(names) and names[0] == "0001_initial" and all(re.fullmatch(r"\d{4}_\w+", n) for n in names)
    with Store(tmp_path / "blank.duckdb") as s:
        tables = {r["table_name"] for r in s.query("SELECT table_name FROM information_schema.tables")}
        assert tables == set(EXPECTED_COLUMNS) | {"_migrations"}
        for table, cols in EXPECTED_COLUMNS.items():
            got = [r["column_name"] for r in s.query(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position", [table])]
            assert got == cols, table
        assert [r["name"] for r in s.query("SELECT name FROM _migrations ORDER BY name")] == names
    with Store(tmp_path / "blank.duckdb") as s:  # opening again applies nothing twice
        assert s.count("_migrations") == len(names)


def test_every_record_type_matches_its_table():
    from cai_core.store.records import TABLES

    for cls, table in TABLES.items():
        fields = [f.name for f in dataclasses.fields(cls)]
        assert set(fields) <= set(EXPECTED_COLUMNS[table]), (cls.__name__, set(fields) - set(EXPECTED_COLUMNS[table]))
