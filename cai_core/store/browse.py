"""Read-side listings the app's tabs show: runs, prompts, comparisons with their verdicts."""
from __future__ import annotations

from typing import Any

from .cache import cached
from .db import Store

__all__ = ["runs_table", "prompts_page", "comparison_texts", "comparisons_listing", "comparison_row",
           "verdict_rows", "record_counts"]


def runs_table(store: Store, kind: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    where, params = ("WHERE r.kind = ?", [kind]) if kind else ("", [])
    return store.query(
        f"""
        SELECT r.id, r.kind, r.status, r.model, r.created_at, r.updated_at, r.error,
               (SELECT count(*) FROM generations g WHERE g.run_id = r.id) AS generations,
               (SELECT count(*) FROM critiques c WHERE c.run_id = r.id) AS critiques,
               (SELECT count(*) FROM revisions v WHERE v.run_id = r.id) AS revisions,
               (SELECT count(*) FROM verdicts v WHERE v.run_id = r.id) AS verdicts
        FROM runs r {where} ORDER BY r.created_at DESC LIMIT {int(limit)}
        """, params)


def prompts_page(store: Store, set_name: str, *, search: str = "", limit: int = 100, offset: int = 0) -> list[dict]:
    """position, category, split, text, id of a set's prompts matching ``search``."""
    return store.query(
        "SELECT p.position, p.category, x.split, p.text, p.id FROM prompts p JOIN prompt_sets s ON s.id = p.set_id "
        "LEFT JOIN prompt_splits x ON x.set_id = p.set_id AND x.prompt_id = p.id "
        "WHERE s.name = ? AND (? = '' OR p.text ILIKE '%' || ? || '%') ORDER BY p.position LIMIT ? OFFSET ?",
        [set_name, search, search, int(limit), int(offset)])


def comparison_texts(store: Store, ids: list[str], *, version: tuple | None = None) -> dict[str, dict[str, Any]]:
    """id -> {id, source, prompt_id, prompt ('' if missing), answer_a, answer_b} for ``ids``.

    Fetched by rowid (a cached id -> rowid map): DuckDB answers a rowid list in ~2 ms where
    matching 500 ids against 100 k comparisons takes ~15 ms. Rows are append-only, so a
    rowid keeps pointing at its row; the ids that come back are checked all the same."""
    if not ids:
        return {}
    rowid = cached(store, ("comparison_rowids",), lambda: {
        r["id"]: r["rid"] for r in store.query("SELECT id, rowid AS rid FROM comparisons")}, version=version)
    cols = "c.id, c.source, c.prompt_id, coalesce(p.text, '') AS prompt, c.answer_a, c.answer_b"
    join = "FROM comparisons c LEFT JOIN prompts p ON p.id = c.prompt_id"
    wanted = [rowid[i] for i in ids if i in rowid]
    rows = store.query(f"SELECT {cols} {join} WHERE c.rowid IN (SELECT unnest(?))", [wanted]) if wanted else []
    out = {r["id"]: r for r in rows}
    if any(i not in out for i in ids if i in rowid):  # never expected: fall back to ids
        out = {r["id"]: r for r in store.query(f"SELECT {cols} {join} WHERE c.id IN (SELECT unnest(?))", [ids])}
    return {i: out[i] for i in ids if i in out}


def comparisons_listing(store: Store) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(ids, sources) of the comparisons the Preferences tab lists: those with a verdict and a
    prompt row, oldest first."""
    rows = store.query("SELECT c.id, c.source FROM comparisons c JOIN prompts p ON p.id = c.prompt_id "
                       "WHERE c.id IN (SELECT comparison_id FROM verdicts) ORDER BY c.created_at, c.id")
    return tuple(r["id"] for r in rows), tuple(r["source"] for r in rows)


def comparison_row(store: Store, comparison_id: str) -> dict[str, Any] | None:
    """The comparison's columns with its prompt's text as ``prompt``."""
    rows = store.query("SELECT c.*, p.text AS prompt FROM comparisons c JOIN prompts p ON p.id = c.prompt_id "
                       "WHERE c.id = ?", [comparison_id])
    return rows[0] if rows else None


def verdict_rows(store: Store, comparison_id: str) -> list[dict[str, Any]]:
    """Every verdict on the comparison, with its run, for the detail view."""
    return store.query(
        "SELECT id, run_id, principle_id, judge, mode, ab_order, raw, choice, p_first, p_a, constitution_version, "
        "created_at FROM verdicts WHERE comparison_id = ? ORDER BY run_id, principle_id, judge, ab_order",
        [comparison_id])


def record_counts(store: Store, tables: tuple[str, ...]) -> dict[str, int]:
    """Row counts of ``tables``, plus unparsed verdicts and flagged SL outputs."""
    out = {t: store.count(t) for t in tables}
    out["unparsed_verdicts"] = store.count("verdicts", "WHERE choice IS NULL")
    out["flagged_outputs"] = sum(store.count(t, "WHERE len(flags) > 0") for t in ("generations", "critiques", "revisions"))
    return out
