"""Constitution versions: every version a record was made with stays, by its content hash."""
from __future__ import annotations

from ..types import Constitution
from .db import Store

__all__ = ["record_constitution", "versions_of", "version_source"]


def record_constitution(store: Store, c: Constitution) -> None:
    """Keep this version (a no-op when it is already stored)."""
    store.insert("constitutions", [{"version": c.version, "name": c.name, "title": c.title, "source": c.source}])


def versions_of(store: Store, name: str) -> list[dict]:
    """version, title, created_at of every stored version of ``name``, newest first."""
    return store.query("SELECT version, title, created_at FROM constitutions WHERE name = ? ORDER BY created_at DESC",
                       [name])


def version_source(store: Store, version: str) -> str:
    rows = store.query("SELECT source FROM constitutions WHERE version = ?", [version])
    if not rows:
        raise KeyError(f"no stored constitution version {version!r}")
    return rows[0]["source"]
