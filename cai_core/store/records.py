"""Typed insert and load per record kind: dataclass in, dataclass out.

Each record type of :mod:`cai_core.types` maps to one table whose columns are the dataclass's
fields (plus ``created_at``, filled by DuckDB). Inserts are ``INSERT OR IGNORE`` by default:
ids are deterministic, so a resumed run never writes a row twice.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Iterable, Sequence, TypeVar

from ..types import (Audit, Checkpoint, Comparison, Critique, Failure, Generation, Prompt, PromptSet, ResponseLabel,
                     Revision, RevisionCandidate, Verdict, as_row)
from .db import Store

__all__ = ["TABLES", "insert", "load", "load_one"]

R = TypeVar("R")

TABLES: dict[type, str] = {
    PromptSet: "prompt_sets",
    Prompt: "prompts",
    Generation: "generations",
    Critique: "critiques",
    Revision: "revisions",
    RevisionCandidate: "revision_candidates",
    Failure: "failures",
    Comparison: "comparisons",
    Verdict: "verdicts",
    Audit: "audits",
    Checkpoint: "checkpoints",
    ResponseLabel: "response_labels",
}
"""Record type -> its table (the one place that says where a kind of record lives)."""


def insert(store: Store, records: Iterable[Any], *, replace: bool = False) -> int:
    """Store records (any mix of kinds, each kind in one transaction). Returns how many were given."""
    by_type: dict[type, list[dict]] = {}
    for r in records:
        by_type.setdefault(type(r), []).append(as_row(r))
    for cls, rows in by_type.items():
        store.insert(TABLES[cls], rows, replace=replace)
    return sum(len(rows) for rows in by_type.values())


def _decoders(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        text = str(hints[f.name])
        if "tuple" in text:
            out[f.name] = lambda v: tuple(v) if v is not None else ()
        elif "dict" in text:
            out[f.name] = lambda v: json.loads(v) if isinstance(v, str) else (v or {})
    return out


def load(store: Store, cls: type[R], *, order_by: Sequence[str] = ("id",), limit: int | None = None,
         **where: Any) -> list[R]:
    """Records of ``cls`` whose columns equal ``where`` (a list or tuple value means IN)."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    clauses, params = [], []
    for col, value in where.items():
        if col not in names:
            raise ValueError(f"{cls.__name__} has no field {col!r}")
        if isinstance(value, (list, tuple, set)):
            clauses.append(f"{col} IN (SELECT unnest(?))")
            params.append(list(value))
        elif value is None:
            clauses.append(f"{col} IS NULL")
        else:
            clauses.append(f"{col} = ?")
            params.append(value)
    for col in order_by:
        if col.split()[0] not in names and col.split()[0] != "created_at":
            raise ValueError(f"cannot order {cls.__name__} by {col!r}")
    sql = f"SELECT {', '.join(names)} FROM {TABLES[cls]}"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    if order_by:
        sql += " ORDER BY " + ", ".join(order_by)
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    decode = _decoders(cls)
    return [cls(**{k: decode[k](v) if k in decode else v for k, v in row.items()})  # type: ignore[call-arg]
            for row in store.query(sql, params)]


def load_one(store: Store, cls: type[R], **where: Any) -> R | None:
    rows = load(store, cls, limit=1, **where)
    return rows[0] if rows else None
