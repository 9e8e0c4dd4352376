"""The DuckDB store: the only module that imports duckdb (DESIGN.md rule 6).

One ``Store`` per process holds the write connection; every call uses its own cursor, so
threads (the app's request handlers, job threads) can share the store safely.
"""
from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

import duckdb

from .migrate import MIGRATIONS

__all__ = ["Store", "StoreLocked"]


class StoreLocked(RuntimeError):
    """Another process holds the database for writing (DuckDB allows one writer)."""


_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


class Store:
    def __init__(self, path: str | Path = ":memory:", *, read_only: bool = False) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.IOException as e:
            msg = str(e)
            if "lock" in msg.lower():
                holder = re.search(r"PID (\d+)", msg)
                raise StoreLocked(
                    f"the database {self.path} is open for writing in another process"
                    + (f" (PID {holder.group(1)})" if holder else "")
                    + ". DuckDB allows one writer: stop that process (e.g. the app), or use "
                    "the app for this action, or pass another --db."
                ) from None
            raise
        self._lock = threading.Lock()
        if not read_only:
            self._migrate()

    # -- plumbing ------------------------------------------------------------------------
    def _migrate(self) -> None:
        cur = self._con.cursor()
        cur.execute(
            "CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, "
            "applied_at TIMESTAMP DEFAULT current_timestamp)"
        )
        done = {r[0] for r in cur.execute("SELECT name FROM _migrations").fetchall()}
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            cur.execute("BEGIN")
            try:
                cur.execute(sql)
                cur.execute("INSERT INTO _migrations (name) VALUES (?)", [name])
                cur.execute("COMMIT")
            except Exception:
                cur.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def query(self, sql: str, params: Sequence[Any] | dict | None = None) -> list[dict[str, Any]]:
        """Rows as dicts."""
        cur = self._con.cursor()
        try:
            cur.execute(sql, params or [])
            cols = [d[0] for d in cur.description] if cur.description else []
            return [dict(zip(cols, row)) for row in cur.fetchall()]
        finally:
            cur.close()

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.query(sql, params)
        return next(iter(rows[0].values())) if rows else None

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        cur = self._con.cursor()
        try:
            cur.execute(sql, params or [])
        finally:
            cur.close()

    def insert(self, table: str, rows: Iterable[dict[str, Any]], *, ignore_existing: bool = True,
               replace: bool = False) -> int:
        """Insert rows in one transaction; with ``ignore_existing`` a row whose primary key
        exists is skipped (what makes resumed runs idempotent), with ``replace`` it is
        overwritten (for tables that mirror a record kept elsewhere). Returns rows given."""
        rows = list(rows)
        if not rows:
            return 0
        if not _IDENT.match(table):
            raise ValueError(f"bad table name {table!r}")
        cols = list(rows[0])
        for c in cols:
            if not _IDENT.match(c):
                raise ValueError(f"bad column name {c!r}")
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE" if ignore_existing else "INSERT"
        sql = f"{verb} INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
        values = [[_encode(r[c]) for c in cols] for r in rows]
        cur = self._con.cursor()
        try:
            cur.execute("BEGIN")
            cur.executemany(sql, values)
            cur.execute("COMMIT")
        except Exception:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()
        return len(rows)

    def count(self, table: str, where: str = "", params: Sequence[Any] | None = None) -> int:
        if not _IDENT.match(table):
            raise ValueError(f"bad table name {table!r}")
        return int(self.scalar(f"SELECT count(*) FROM {table} {where}", params))


_SURROGATE = re.compile("[\ud800-\udfff]")


def _encode(value: Any) -> Any:
    # JSON columns take dicts as JSON text; lists stay lists (VARCHAR[] columns).
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str) and _SURROGATE.search(value):
        # A lone surrogate (e.g. a server's JSON "\ud800") is not UTF-8 and DuckDB refuses the
        # whole batch; keep the rest of the text, with U+FFFD in its place.
        return _SURROGATE.sub("\ufffd", value)
    return value
