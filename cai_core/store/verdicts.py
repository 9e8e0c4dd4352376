"""Verdicts: the judge stage's bookkeeping and the judgements as records."""
from __future__ import annotations

from typing import Sequence

from ..types import Verdict
from .db import Store
from .records import load

__all__ = ["verdicts_per_comparison", "count_verdicts", "verdicts_of", "principle_ids", "judge_ids",
           "latest_judged_run", "judged_comparisons"]


def verdicts_per_comparison(store: Store, run_id: str, judge: str) -> dict[str, int]:
    """comparison id -> verdicts this judge gave in this run (what a resumed run skips)."""
    return {r["comparison_id"]: int(r["n"]) for r in store.query(
        "SELECT comparison_id, count(*) AS n FROM verdicts WHERE run_id = ? AND judge = ? GROUP BY ALL", [run_id, judge])}


def count_verdicts(store: Store, run_id: str | None = None, *, unparsed: bool = False) -> int:
    clauses, params = [], []
    if run_id is not None:
        clauses.append("run_id = ?")
        params.append(run_id)
    if unparsed:
        clauses.append("choice IS NULL")
    return store.count("verdicts", ("WHERE " + " AND ".join(clauses)) if clauses else "", params)


def verdicts_of(store: Store, *, run_ids: Sequence[str] | None = None, comparison_ids: Sequence[str] | None = None,
                principle: str | None = None) -> list[Verdict]:
    where: dict = {}
    if run_ids is not None:
        where["run_id"] = list(run_ids)
    if comparison_ids is not None:
        where["comparison_id"] = list(comparison_ids)
    if principle is not None:
        where["principle_id"] = principle
    return load(store, Verdict, order_by=("comparison_id", "principle_id", "judge", "ab_order"), **where)


def principle_ids(store: Store) -> list[str]:
    return [r["principle_id"] for r in store.query("SELECT DISTINCT principle_id FROM verdicts ORDER BY 1")]


def judge_ids(store: Store) -> list[str]:
    return [r["judge"] for r in store.query("SELECT DISTINCT judge FROM verdicts ORDER BY 1")]


def latest_judged_run(store: Store, principle: str, *, kind: str = "judge") -> str | None:
    """The newest run of ``kind`` with a verdict under ``principle``."""
    return store.scalar(
        "SELECT v.run_id FROM verdicts v JOIN runs r ON r.id = v.run_id WHERE v.principle_id = ? AND r.kind = ? "
        "ORDER BY v.created_at DESC LIMIT 1", [principle, kind])


def judged_comparisons(store: Store, run_id: str, principle: str, limit: int) -> list[str]:
    """Up to ``limit`` comparison ids the run judged under ``principle``, in id order."""
    return [r["comparison_id"] for r in store.query(
        "SELECT DISTINCT comparison_id FROM verdicts WHERE run_id = ? AND principle_id = ? ORDER BY 1 LIMIT ?",
        [run_id, principle, int(limit)])]
