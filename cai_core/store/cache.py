"""Per-store caches of derived read-side data, keyed by a cheap fingerprint of the rows they
derive from.

Two independent fingerprints, because the data changes at very different rates:

* :func:`data_version`: the AI side (verdicts, comparisons, prompts). Aggregating a million
  verdicts takes DuckDB ~0.5 s on 2 cores, so the per-comparison summary and the listings
  built on it are computed once per version (:func:`cached`).
* :func:`audit_version`: the human side (the audit log, a few thousand rows that grow on every
  audit click). Replaying it costs a few ms; it is cached per version too
  (:func:`cached_audits`), so the many reads between two clicks do not replay it again.

Both rely on the tables being append-only (DESIGN.md rules 2 and 5: records are immutable,
audits are appended, never updated), which makes row counts plus the highest rowid / id a
fingerprint of the content. Nothing is cached across stores: entries die with the Store.
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

from .db import Store

__all__ = ["data_version", "audit_version", "cached", "cached_audits", "per_store"]

_VERSION_SQL = ("SELECT (SELECT count(*) FROM verdicts) AS v, (SELECT max(rowid) FROM verdicts) AS vr, "
                "(SELECT count(*) FROM comparisons) AS c, (SELECT count(*) FROM prompts) AS p")
_AUDIT_VERSION_SQL = "SELECT count(*) AS n, max(id) AS last FROM audits"


@dataclass
class _Slot:
    version: tuple = ()
    entries: dict = field(default_factory=dict)


@dataclass
class _StoreCache:
    slots: dict[str, _Slot] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    states: dict[tuple, Any] = field(default_factory=dict)


_caches: "weakref.WeakKeyDictionary[Store, _StoreCache]" = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def data_version(store: Store) -> tuple:
    """A cheap fingerprint of the append-only AI data (verdicts, comparisons, prompts)."""
    return tuple(store.query(_VERSION_SQL)[0].values())


def audit_version(store: Store) -> tuple:
    """A cheap fingerprint of the append-only audit log (row count and the highest id)."""
    return tuple(store.query(_AUDIT_VERSION_SQL)[0].values())


def _cache(store: Store) -> _StoreCache:
    with _caches_lock:
        cache = _caches.get(store)
        if cache is None:
            cache = _caches[store] = _StoreCache()
        return cache


def _get(store: Store, slot: str, key: tuple, build: Callable[[], Any], version: tuple) -> Any:
    cache = _cache(store)
    with cache.lock:
        s = cache.slots.setdefault(slot, _Slot())
        if s.version != version:
            s.version, s.entries = version, {}
        if key not in s.entries:
            s.entries[key] = build()
        return s.entries[key]


def cached(store: Store, key: tuple, build: Callable[[], Any], *, version: tuple | None = None) -> Any:
    """``build()``'s value for ``key``, computed once per :func:`data_version` of ``store``
    (``version``: one already read by the caller in this same call)."""
    return _get(store, "ai", key, build, data_version(store) if version is None else version)


def cached_audits(store: Store, key: tuple, build: Callable[[], Any], *, version: tuple | None = None) -> Any:
    """``build()``'s value for ``key``, computed once per :func:`audit_version` of ``store``.
    Values are shared between callers: build immutable ones, or hand out copies."""
    return _get(store, "audits", key, build, audit_version(store) if version is None else version)


def per_store(store: Store, key: tuple, factory: Callable[[], Any]) -> Any:
    """One object per store and ``key``, kept across versions (for state that is brought up to
    date incrementally, such as the audit log's replay); made by ``factory()`` on first use."""
    cache = _cache(store)
    with cache.lock:
        if key not in cache.states:
            cache.states[key] = factory()
        return cache.states[key]
