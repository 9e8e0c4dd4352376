"""Gold sets, their pairs, validation runs' verdicts and their metrics."""
from __future__ import annotations

import json
from typing import Any, Sequence

from ..types import Verdict, as_row
from .db import Store

__all__ = ["save_gold_set", "gold_set", "gold_sets", "gold_pairs", "store_gold_verdicts", "gold_verdicts",
           "gold_verdict_counts", "record_validation", "validations", "latest_validation"]

_VERDICT_COLUMNS = ("id", "run_id", "comparison_id", "principle_id", "constitution_version", "judge", "mode",
                    "ab_order", "raw", "choice", "p_first", "p_a")
_PAIR_COLUMNS = ("id", "set_name", "prompt", "answer_a", "answer_b", "correct", "category", "note", "source_id",
                 "format", "split")


def save_gold_set(store: Store, name: str, origin: str, tune_fraction: float, seed: int,
                  pairs: Sequence[dict[str, Any]]) -> None:
    """Record a gold set and its pairs, replacing what the set held (pairs first, then the
    set's row: a set that is listed has all its pairs)."""
    store.insert("gold_pairs", [{c: p[c] for c in _PAIR_COLUMNS} for p in pairs], replace=True)
    store.execute("DELETE FROM gold_pairs WHERE set_name = ? AND id NOT IN (SELECT unnest(?))",
                  [name, [p["id"] for p in pairs]])
    store.insert("gold_sets", [{"name": name, "origin": origin, "tune_fraction": tune_fraction, "seed": seed}],
                 replace=True)


def gold_set(store: Store, name: str) -> dict[str, Any] | None:
    rows = store.query("SELECT name, origin, tune_fraction, seed FROM gold_sets WHERE name = ?", [name])
    return rows[0] if rows else None


def gold_sets(store: Store) -> list[dict[str, Any]]:
    """Every gold set with its pair counts per split."""
    return store.query("""
        SELECT s.name, s.origin, s.tune_fraction, s.seed, count(p.id) AS n,
               count(p.id) FILTER (WHERE p.split = 'tune') AS tune, count(p.id) FILTER (WHERE p.split = 'test') AS test
        FROM gold_sets s LEFT JOIN gold_pairs p ON p.set_name = s.name
        GROUP BY ALL ORDER BY s.name""")


def gold_pairs(store: Store, name: str, *, split: str | None = None, categories: Sequence[str] | None = None,
               limit: int | None = None) -> list[dict[str, Any]]:
    """The set's pairs in id order (``split``: tune | test | None = all)."""
    sql = f"SELECT {', '.join(_PAIR_COLUMNS)} FROM gold_pairs WHERE set_name = ?"
    params: list[Any] = [name]
    if split is not None:
        sql += " AND split = ?"
        params.append(split)
    if categories:
        sql += " AND category IN (SELECT unnest(?))"
        params.append(list(categories))
    sql += " ORDER BY id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return store.query(sql, params)


def store_gold_verdicts(store: Store, verdicts: Sequence[Verdict]) -> None:
    store.insert("gold_verdicts", [as_row(v) for v in verdicts])


def gold_verdicts(store: Store, run_id: str) -> list[Verdict]:
    rows = store.query(f"SELECT {', '.join(_VERDICT_COLUMNS)} FROM gold_verdicts WHERE run_id = ? ORDER BY id", [run_id])
    return [Verdict(**r) for r in rows]


def gold_verdict_counts(store: Store, run_id: str, judge: str) -> dict[str, int]:
    """gold pair id -> verdicts the run already has from ``judge`` (a resumed run skips those)."""
    rows = store.query("SELECT comparison_id, count(*) AS n FROM gold_verdicts WHERE run_id = ? AND judge = ? "
                       "GROUP BY comparison_id", [run_id, judge])
    return {r["comparison_id"]: int(r["n"]) for r in rows}


def record_validation(store: Store, row: dict[str, Any]) -> None:
    store.insert("judge_validations", [row], replace=True)


def _decode(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in rows:
        if isinstance(r.get("metrics"), str):
            r["metrics"] = json.loads(r["metrics"])
    return rows


def validations(store: Store, *, limit: int | None = 50, run_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Validation results, newest first."""
    sql = "SELECT * FROM judge_validations"
    params: list[Any] = []
    if run_ids is not None:
        sql += " WHERE run_id IN (SELECT unnest(?))"
        params.append(list(run_ids))
    sql += " ORDER BY created_at DESC, run_id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return _decode(store.query(sql, params or None))


def latest_validation(store: Store, *, judge: str, mode: str, constitution_version: str | None = None) -> dict[str, Any] | None:
    """The newest validation of this judge configuration (on the test split when there is one)."""
    sql = "SELECT * FROM judge_validations WHERE judge = ? AND mode = ?"
    params: list[Any] = [judge, mode]
    if constitution_version is not None:
        sql += " AND constitution_version = ?"
        params.append(constitution_version)
    rows = store.query(sql + " ORDER BY (split = 'test') DESC, created_at DESC LIMIT 1", params)
    return _decode(rows)[0] if rows else None
