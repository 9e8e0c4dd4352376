"""The audit log: appended, never updated (DESIGN.md rule 5). Ids are time-ordered, so the log's
order is the order of its ids."""
from __future__ import annotations

from typing import Any, Sequence

from ..types import Audit, as_row
from .db import Store


__all__ = ["append_audit", "AUDIT_COLUMNS", "audit_rows", "count_audits_upto", "audits_of", "human_label_counts",
           "comparison_exists"]

AUDIT_COLUMNS = ("id", "comparison_id", "author", "action", "reason", "label", "p_a", "judge_runs", "created_at")


def append_audit(store: Store, audit: Audit) -> None:
    store.insert("audits", [as_row(audit)], ignore_existing=False)


def audit_rows(store: Store, *, after: str | None = None) -> list[dict[str, Any]]:
    """Audit rows in log order (only those after the id ``after`` when given)."""
    cols = ", ".join(AUDIT_COLUMNS)
    if after is None:
        return store.query(f"SELECT {cols} FROM audits ORDER BY id")
    return store.query(f"SELECT {cols} FROM audits WHERE id > ? ORDER BY id", [after])


def count_audits_upto(store: Store, last_id: str) -> int:
    return int(store.scalar("SELECT count(*) FROM audits WHERE id <= ?", [last_id]))


def audits_of(store: Store, comparison_id: str) -> list[dict[str, Any]]:
    return store.query("SELECT id, author, action, reason, label, p_a, created_at FROM audits WHERE comparison_id = ? "
                       "ORDER BY id", [comparison_id])


def human_label_counts(store: Store, bucket: str, audit_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Audit actions per time bucket and action, over the given (standing) audit ids."""
    if not audit_ids:
        return []
    return store.query(
        "SELECT date_trunc(?, created_at) AS time, action AS label, count(*) AS count "
        "FROM audits WHERE id IN (SELECT unnest(?)) GROUP BY ALL", [bucket, list(audit_ids)])


def comparison_exists(store: Store, comparison_id: str) -> bool:
    return bool(store.count("comparisons", "WHERE id = ?", [comparison_id]))
