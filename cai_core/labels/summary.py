"""The AI labels in the store: every judged comparison's AI label, cached per data version and
scope (people's decisions are applied on top by :mod:`.audits`).

The AI side comes from the one summary query (:mod:`cai_core.store.summary`) and the one rule
(:mod:`.rule`). It is held as tuples of immutable values, which CPython's garbage collector
stops tracking: cached as objects, 100 k comparisons made every full collection (one per ~13
app queries) cost 15-50 ms, the worst of the app's query latencies.
"""
from __future__ import annotations

import math
import random
import threading
from typing import Iterable, Sequence

from ..store import Store
from ..store.cache import cached, data_version
from ..store.summary import SUMMARY_COLUMNS, judged_by, summary_rows
from .rule import AILabel, label_from_summary

__all__ = ["Summary", "summary", "ai_labels", "scope_key"]

_I = {c: i for i, c in enumerate(SUMMARY_COLUMNS)}


def scope_key(runs: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if runs is None else tuple(sorted(set(runs)))


def _confidence(p_a: float | None) -> float | None:
    return None if p_a is None else abs(p_a - 0.5) * 2


class Summary:
    """Every judged comparison's summary row (as a tuple), the disagreement order, and lazily
    built seeded orders and filter sets. One per (store, data version, scope)."""

    def __init__(self, store: Store, runs: tuple[str, ...] | None) -> None:
        self.store, self.runs = store, runs
        self.data: dict[str, tuple] = {
            r["comparison_id"]: tuple(tuple(r[c] or ()) if c in ("principles", "judge_runs") else r[c]
                                      for c in SUMMARY_COLUMNS)
            for r in summary_rows(store, runs=None if runs is None else list(runs))}
        self.disagreement: tuple[str, ...] = tuple(sorted(self.data, key=self._disagreement_key))
        self._lock = threading.Lock()
        self._shuffled: dict[int, tuple[str, ...]] = {}
        self._strata: dict[int, dict[str, tuple[str, ...]]] = {}
        self._filters: dict[tuple, frozenset[str]] = {}
        self._uncertain: tuple[str, ...] | None = None

    def _disagreement_key(self, cid: str):
        """Unparsed verdicts first, then position flips, then judges that disagree, then the
        lowest confidence (none at all counts as lowest); ties by id."""
        r = self.data[cid]
        conf = _confidence(r[_I["p_a"]])
        return (-(r[_I["n_unparsed"]] > 0), -(r[_I["flips"]] > 0), -bool(r[_I["judges_disagree"]]),
                -1.0 if conf is None else conf, cid)

    def uncertainty(self, cid: str) -> float:
        """How little the AI label can be trusted, 0..3: the binary entropy (bits) of the
        swap-averaged P(A) (1 when there is none), plus the share of (principle) groups whose
        verdicts flipped with the order, plus 1 when principles' own labels disagree."""
        r = self.data[cid]
        p = r[_I["p_a"]]
        if p is None or math.isnan(p) or p <= 0.0 or p >= 1.0:
            entropy = 1.0 if p is None or math.isnan(p) else 0.0
        else:
            entropy = -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
        groups = max(1, len(r[_I["principles"]]))
        return entropy + min(1.0, r[_I["flips"]] / groups) + float(bool(r[_I["principles_disagree"]]))

    @property
    def uncertain(self) -> tuple[str, ...]:
        """Comparison ids, least trustworthy AI label first (:meth:`uncertainty`; ties by id)."""
        with self._lock:
            if self._uncertain is None:
                self._uncertain = tuple(sorted(self.data, key=lambda c: (-self.uncertainty(c), c)))
            return self._uncertain

    def label(self, cid: str) -> AILabel | None:
        r = self.data.get(cid)
        return None if r is None else label_from_summary(dict(zip(SUMMARY_COLUMNS, r)))

    def value(self, cid: str, column: str):
        return self.data[cid][_I[column]]

    def confidence(self, cid: str) -> float | None:
        return _confidence(self.data[cid][_I["p_a"]])

    def shuffled(self, seed: int) -> tuple[str, ...]:
        """All comparison ids, sorted, then shuffled by ``seed``: filters and exclusions drop
        items from this order, so auditing one item never reshuffles the rest."""
        with self._lock:
            if seed not in self._shuffled:
                ids = sorted(self.data)
                random.Random(seed).shuffle(ids)
                self._shuffled[seed] = tuple(ids)
            return self._shuffled[seed]

    def strata(self, seed: int) -> dict[str, tuple[str, ...]]:
        """principle -> its comparisons in the seeded shuffle order."""
        order = self.shuffled(seed)
        with self._lock:
            if seed not in self._strata:
                by: dict[str, list[str]] = {}
                for cid in order:
                    for p in self.data[cid][_I["principles"]]:
                        by.setdefault(p, []).append(cid)
                self._strata[seed] = {p: tuple(ids) for p, ids in by.items()}
            return self._strata[seed]

    def judged_by(self, principle: str | None, judge: str | None) -> frozenset[str]:
        """Comparisons with a verdict in scope by ``judge`` under ``principle`` (None = any)."""
        key = (principle, judge)
        with self._lock:
            if key not in self._filters:
                self._filters[key] = frozenset(judged_by(self.store, runs=self.runs, principle=principle, judge=judge))
            return self._filters[key]


def summary(store: Store, runs: Sequence[str] | None = None, *, version: tuple | None = None) -> Summary:
    """The cached :class:`Summary` of the store's current data for this scope (None = each
    comparison's latest judge run)."""
    key = scope_key(runs)
    return cached(store, ("summary", key), lambda: Summary(store, key), version=version)


def ai_labels(store: Store, comparison_ids: Iterable[str] | None = None, *,
              runs: Sequence[str] | None = None) -> dict[str, AILabel]:
    """comparison id -> its AI label in scope (only judged comparisons appear)."""
    summ = summary(store, runs)
    ids = summ.data if comparison_ids is None else [c for c in comparison_ids if c in summ.data]
    return {cid: summ.label(cid) for cid in ids}  # type: ignore[misc]
