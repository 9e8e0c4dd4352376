"""The Preferences tab's listing: comparisons with their AI label and audit state, filtered and
paged, and one comparison in detail (its verdicts, its audits, the label that stands)."""
from __future__ import annotations

import bisect
import itertools
import json
import threading
from dataclasses import dataclass
from typing import Any

from ..store import Store
from ..store import browse as browse_store
from ..store.audits import audits_of
from ..store.cache import cached, data_version
from .audits import effective_labels, human_decisions
from ..types import LOGPROB_MODES
from .rule import effective
from .summary import Summary, summary

__all__ = ["COMPARISON_FILTERS", "comparisons_page", "comparison_detail"]

COMPARISON_FILTERS = ("all", "disagreement", "low confidence", "unparsed", "audited", "not audited")


_AI_FILTERS = ("all", "disagreement", "low confidence", "unparsed")
_KEEP_FILTERED = 32
"""Filtered listings kept per data version (one per filter/principle/judge/source choice)."""
_filtered_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class _Filtered:
    """The listed comparisons that pass the AI-side filters, in the tab's order."""

    ids: tuple[str, ...]
    rank: dict[str, int]
    """id -> its index in ``ids``."""


def _listing(store: Store, version: tuple) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(ids, sources) of the listed comparisons, oldest first (the tab's order)."""
    return cached(store, ("comparisons_listing",), lambda: browse_store.comparisons_listing(store), version=version)


def _filtered(store: Store, version: tuple, summ: Summary, ai_filter: str, low: float, principle: str | None,
              judge: str | None, source: str | None) -> _Filtered:
    """The listing narrowed by everything that depends on the AI data only (the filter's AI
    part, principle, judge, source), built once per data version and choice: paging through
    it is then a slice, and the human side (audited or not) a walk past the audited ids."""
    key = (ai_filter, low if ai_filter == "low confidence" else None, principle, judge, source)
    kept: dict[tuple, _Filtered] = cached(store, ("comparisons_filtered",), dict, version=version)
    with _filtered_lock:
        hit = kept.get(key)
    if hit is not None:
        return hit
    ids, sources = _listing(store, version)
    data = summ.data
    by_p = summ.judged_by(principle, None) if principle else None
    by_j = summ.judged_by(None, judge) if judge else None

    def keep(cid: str, src: str) -> bool:
        if (by_p is not None and cid not in by_p) or (by_j is not None and cid not in by_j) or \
                (source and src != source):
            return False
        if ai_filter == "all":
            return True
        if cid not in data:
            return False
        if ai_filter == "disagreement":
            return bool(summ.value(cid, "flips") or summ.value(cid, "judges_disagree"))
        if ai_filter == "low confidence":
            conf = summ.confidence(cid)
            return conf is not None and conf < low
        return summ.value(cid, "n_unparsed") > 0  # unparsed

    if ai_filter == "all" and not (principle or judge or source):
        picked = ids
    else:
        picked = tuple(cid for cid, src in zip(ids, sources) if keep(cid, src))
    out = _Filtered(picked, {cid: i for i, cid in enumerate(picked)})
    with _filtered_lock:
        while len(kept) >= _KEEP_FILTERED:  # bounded: many distinct `low` values must not pile up
            del kept[next(iter(kept))]
        kept[key] = out
    return out


def _page_skipping(ids: tuple[str, ...], skip: list[int], skip_ids: Any, offset: int, limit: int) -> list[str]:
    """Items ``offset .. offset+limit`` of ``ids`` once the positions in ``skip`` (sorted) are
    left out, without walking the ``offset`` items before them."""
    # g(p) = kept items before position p grows by one per kept item: find the first p with
    # g(p) == offset by bisection, then walk from there.
    lo, hi = 0, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if mid - bisect.bisect_left(skip, mid) >= offset:
            hi = mid
        else:
            lo = mid + 1
    page: list[str] = []
    for cid in itertools.islice(ids, lo, None):
        if cid not in skip_ids:
            page.append(cid)
            if len(page) >= limit:
                break
    return page


def comparisons_page(store: Store, *, filter: str = "all", principle: str | None = None, judge: str | None = None,
                     source: str | None = None, low: float = 0.2, limit: int = 100, offset: int = 0) -> list[dict]:
    """Comparisons with their AI label and audit state, filtered as the Preferences tab offers:
    disagreement (AB/BA flips or judges disagree), low confidence, unparsed verdicts, audited /
    not audited.

    The AI side (labels, the listing order, the filtered listings) comes from the
    per-data-version summary (:mod:`.summary`), the human side from the replay cached per audit
    version, so a page costs two fingerprint reads, a slice (or a walk past the audited ids) and
    one query for the page's texts, not an aggregation of every verdict."""
    if filter not in COMPARISON_FILTERS:
        raise ValueError(f"unknown filter {filter!r}; one of {', '.join(COMPARISON_FILTERS)}")
    limit, offset = int(limit), max(0, int(offset))
    if limit <= 0:
        return []
    version = data_version(store)
    summ = summary(store, version=version)
    humans = human_decisions(store)
    f = _filtered(store, version, summ, filter if filter in _AI_FILTERS else "all", low, principle, judge, source)
    if filter in _AI_FILTERS:
        page = list(f.ids[offset:offset + limit])
    else:
        audited = sorted(f.rank[c] for c in humans if c in f.rank)
        if filter == "audited":
            page = [f.ids[i] for i in audited[offset:offset + limit]]
        else:
            page = _page_skipping(f.ids, audited, humans, offset, limit)
    if not page:
        return []
    texts = browse_store.comparison_texts(store, page, version=version)
    out = []
    for cid in page:
        r, ai = texts[cid], summ.label(cid)
        lab = effective(cid, ai, humans.get(cid))
        out.append({
            "id": r["id"], "source": r["source"], "answer_a": r["answer_a"], "answer_b": r["answer_b"],
            "prompt": r["prompt"], "ai_choice": lab.ai_choice, "ai_p_a": lab.ai_p_a,
            "confidence": ai.confidence if ai else None, "flips": ai.flips if ai else 0,
            "unparsed": ai.n_unparsed if ai else 0, "judges_disagree": bool(ai and ai.judges_disagree),
            "n_verdicts": ai.n if ai else 0, "label": lab.choice, "label_source": lab.source,
        })
    return out


def comparison_detail(store: Store, comparison_id: str) -> dict[str, Any]:
    """The comparison, every verdict on it (each with its run), its audits and the label that
    stands (AI side: its latest judge run)."""
    c = browse_store.comparison_row(store, comparison_id)
    if c is None:
        raise KeyError(f"no comparison {comparison_id!r}")
    verdicts = browse_store.verdict_rows(store, comparison_id)
    for v in verdicts:
        if v["mode"] in LOGPROB_MODES:
            try:
                v["logprobs"] = json.loads(v["raw"])
            except ValueError:
                v["logprobs"] = None
    label = effective_labels(store, comparison_ids=[comparison_id]).get(comparison_id)
    return {"comparison": c, "verdicts": verdicts, "audits": audits_of(store, comparison_id), "label": label}
