"""Comparisons (answer pairs to judge) and the queries the pairs and judge stages make."""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

from ..types import PREFERENCE_SOURCES, Comparison
from .db import Store
from .records import load, load_one

__all__ = ["samples_by_prompt", "comparisons_for_judging", "comparison", "comparisons_of_runs", "comparisons_judged_by", "comparisons_of_ids", "latest_training_pairs_run",
           "final_revisions_of", "comparison_sources", "count_comparisons"]


def samples_by_prompt(store: Store, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """prompt id -> the run's sampled answers ({id, prompt_id, text, model})."""
    by_prompt: dict[str, list[dict]] = defaultdict(list)
    for r in store.query("SELECT id, prompt_id, text, model FROM generations WHERE run_id = ?", [run_id]):
        by_prompt[r["prompt_id"]].append(r)
    return by_prompt


def final_revisions_of(store: Store, run_id: str) -> list[dict[str, Any]]:
    """{id, prompt_id, text} of the highest-round revision of each prompt of an SL run."""
    return store.query(
        "SELECT id, prompt_id, text FROM revisions WHERE run_id = ? "
        "QUALIFY row_number() OVER (PARTITION BY prompt_id ORDER BY round DESC) = 1", [run_id])


def comparisons_for_judging(store: Store, *, sources: Sequence[str], runs: Sequence[str] | None = None,
                            limit: int | None = None) -> list[Comparison]:
    """Comparisons of these sources (and, when given, made by these runs), oldest first."""
    clauses, params = ["source IN (SELECT unnest(?))"], [list(sources)]
    if runs is not None:
        clauses.append("run_id IN (SELECT unnest(?))")
        params.append(list(runs))
    sql = (f"SELECT id, run_id, prompt_id, source, answer_a, answer_b, model_a, model_b, parent_a, parent_b "
           f"FROM comparisons WHERE {' AND '.join(clauses)} ORDER BY created_at, id")
    if limit:
        sql += f" LIMIT {int(limit)}"
    return [Comparison(**r) for r in store.query(sql, params)]


def comparison(store: Store, comparison_id: str) -> Comparison | None:
    return load_one(store, Comparison, id=comparison_id)


def comparisons_of_runs(store: Store, run_ids: Sequence[str]) -> list[Comparison]:
    return load(store, Comparison, run_id=list(run_ids), order_by=("created_at", "id"))


def comparison_sources(store: Store, comparison_ids: Sequence[str]) -> dict[str, str]:
    rows = store.query("SELECT id, source FROM comparisons WHERE id IN (SELECT unnest(?))", [list(comparison_ids)])
    return {r["id"]: r["source"] for r in rows}


def count_comparisons(store: Store, run_id: str | None = None) -> int:
    if run_id is None:
        return store.count("comparisons")
    return store.count("comparisons", "WHERE run_id = ?", [run_id])


def comparisons_judged_by(store: Store, judge_runs: Sequence[str]) -> list[dict[str, Any]]:
    """{id, source, prompt_id, prompt, answer_a, answer_b} of every comparison with a verdict in
    these runs, in prompt position then id order."""
    return store.query(
        "SELECT c.id, c.source, c.prompt_id, p.text AS prompt, c.answer_a, c.answer_b FROM comparisons c "
        "JOIN prompts p ON p.id = c.prompt_id WHERE c.id IN "
        "(SELECT comparison_id FROM verdicts WHERE run_id IN (SELECT unnest(?))) ORDER BY p.position, c.id",
        [list(judge_runs)])


def comparisons_of_ids(store: Store, ids: Sequence[str]) -> list[Comparison]:
    """The comparisons with these ids, in id order."""
    return load(store, Comparison, id=list(ids), order_by=("id",))


def latest_training_pairs_run(store: Store) -> str | None:
    """The run that made the newest training pairs (sampled, or an SL run's first-vs-final)."""
    return store.scalar("SELECT run_id FROM comparisons WHERE source IN (SELECT unnest(?)) AND run_id IS NOT NULL "
                        "ORDER BY created_at DESC, id DESC LIMIT 1", [list(PREFERENCE_SOURCES)])
