"""Read-side queries the app's tabs show: runs, SL chains, comparisons with their verdicts.
Pure reads over the store (no duckdb import: SQL through Store)."""
from __future__ import annotations

import bisect
import itertools
import json
import threading
from dataclasses import dataclass
from typing import Any

from .audits import human_decisions
from .queue import STAT_COLUMNS, Summary, comparison_texts, summary
from ..store.cache import cached, data_version
from ..store import Store

__all__ = [
    "runs_table",
    "prompts_page",
    "sl_prompts",
    "sl_chain",
    "comparisons_page",
    "comparison_detail",
    "COMPARISON_FILTERS",
]

COMPARISON_FILTERS = ("all", "disagreement", "low confidence", "unparsed", "audited", "not audited")


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
    return store.query(
        "SELECT p.position, p.category, p.text, p.id FROM prompts p JOIN prompt_sets s ON s.id = p.set_id "
        "WHERE s.name = ? AND (? = '' OR p.text ILIKE '%' || ? || '%') ORDER BY p.position LIMIT ? OFFSET ?",
        [set_name, search, search, int(limit), int(offset)])


def sl_prompts(store: Store, run_id: str, *, principle: str | None = None, flagged_only: bool = False) -> list[dict]:
    """Prompts of an SL run with how far each got and whether anything was flagged."""
    rows = store.query(
        """
        SELECT p.id, p.position, p.text,
               (SELECT max(round) FROM revisions v WHERE v.run_id = ? AND v.prompt_id = p.id) AS rounds,
               (SELECT string_agg(DISTINCT principle_id, ', ') FROM critiques c WHERE c.run_id = ? AND c.prompt_id = p.id) AS principles,
               (SELECT count(*) FROM generations g WHERE g.run_id = ? AND g.prompt_id = p.id AND len(g.flags) > 0)
             + (SELECT count(*) FROM critiques c WHERE c.run_id = ? AND c.prompt_id = p.id AND len(c.flags) > 0)
             + (SELECT count(*) FROM revisions v WHERE v.run_id = ? AND v.prompt_id = p.id AND len(v.flags) > 0) AS flagged
        FROM prompts p WHERE p.id IN (SELECT prompt_id FROM generations WHERE run_id = ?)
        ORDER BY p.position
        """, [run_id] * 6)
    if principle:
        rows = [r for r in rows if principle in (r["principles"] or "").split(", ")]
    if flagged_only:
        rows = [r for r in rows if r["flagged"]]
    return rows


def sl_chain(store: Store, run_id: str, prompt_id: str) -> dict[str, Any]:
    """The first answer, then each round's principle, critique and revision."""
    prompt = store.query("SELECT text FROM prompts WHERE id = ?", [prompt_id])
    first = store.query("SELECT id, text, flags, model FROM generations WHERE run_id = ? AND prompt_id = ?", [run_id, prompt_id])
    crits = store.query("SELECT * FROM critiques WHERE run_id = ? AND prompt_id = ? ORDER BY round", [run_id, prompt_id])
    revs = {r["round"]: r for r in store.query(
        "SELECT * FROM revisions WHERE run_id = ? AND prompt_id = ? ORDER BY round", [run_id, prompt_id])}
    rounds = []
    for c in crits:
        r = revs.get(c["round"])
        rounds.append({
            "round": c["round"], "principle_id": c["principle_id"], "cot": c["cot"],
            "critique_request": c["request"], "critique": c["text"], "critique_flags": list(c["flags"]),
            "revision_request": r["request"] if r else None, "revision": r["text"] if r else None,
            "revision_flags": list(r["flags"]) if r else [],
        })
    return {
        "prompt": prompt[0]["text"] if prompt else "",
        "first": first[0]["text"] if first else None,
        "first_flags": list(first[0]["flags"]) if first else [],
        "model": first[0]["model"] if first else None,
        "rounds": rounds,
    }


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
    """(ids, sources) of the listed comparisons: those with a verdict and a prompt row, oldest
    first (the tab's order)."""
    def build():
        rows = store.query("SELECT c.id, c.source FROM comparisons c JOIN prompts p ON p.id = c.prompt_id "
                           "WHERE c.id IN (SELECT comparison_id FROM verdicts) ORDER BY c.created_at, c.id")
        return tuple(r["id"] for r in rows), tuple(r["source"] for r in rows)
    return cached(store, ("comparisons_listing",), build, version=version)


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
    n_unparsed, flips_i, disagree_i, conf_i = (
        STAT_COLUMNS.index(c) for c in ("n_unparsed", "flips", "judges_disagree", "confidence"))
    by_p = summ.judged_by(principle, None) if principle else None
    by_j = summ.judged_by(None, judge) if judge else None

    def keep(cid: str, src: str) -> bool:
        if (by_p is not None and cid not in by_p) or (by_j is not None and cid not in by_j) or \
                (source and src != source):
            return False
        if ai_filter == "all":
            return True
        lab = data.get(cid)
        if ai_filter == "disagreement":
            return bool(lab and ((lab[flips_i] or 0) > 0 or lab[disagree_i]))
        if ai_filter == "low confidence":
            return bool(lab and lab[conf_i] is not None and lab[conf_i] < low)
        return bool(lab and lab[n_unparsed] > 0)  # unparsed

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
    """Comparisons with their aggregated AI label and audit state, filtered as the
    Preferences tab offers: disagreement (AB/BA flips or judges disagree), low confidence,
    unparsed verdicts, audited / not audited.

    The AI side (labels, the listing order, the filtered listings) comes from the
    per-data-version summary of :mod:`cai_core.labels.queue`, the human side from the replay
    cached per audit version, so a page costs two fingerprint reads, a slice (or a walk past
    the audited ids) and one query for the page's texts, not an aggregation of every verdict."""
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
    texts = comparison_texts(store, page, version=version)
    data = summ.data
    n_verdicts, n_unparsed, p_a, vote_i, flips_i, disagree_i, conf_i = (
        STAT_COLUMNS.index(c) for c in ("n_verdicts", "n_unparsed", "p_a", "vote", "flips", "judges_disagree", "confidence"))
    out = []
    for cid in page:
        r, lab, h = texts[cid], data.get(cid), humans.get(cid)
        vote = lab[vote_i] if lab else None
        if h and h.action != "accept":  # the effective label, as cai_core.labels.audits.effective_labels
            label, label_source = h.action, "human"
        elif h:
            label, label_source = vote, "human"
        else:
            label, label_source = vote, ("ai" if lab else "none")
        out.append({
            "id": r["id"], "source": r["source"], "answer_a": r["answer_a"], "answer_b": r["answer_b"],
            "prompt": r["prompt"], "ai_vote": vote, "ai_p_a": lab[p_a] if lab else None,
            "confidence": lab[conf_i] if lab else None, "flips": int(lab[flips_i]) if lab else 0,
            "unparsed": int(lab[n_unparsed]) if lab else 0, "judges_disagree": bool(lab and lab[disagree_i]),
            "n_verdicts": int(lab[n_verdicts]) if lab else 0, "label": label, "label_source": label_source,
        })
    return out


def comparison_detail(store: Store, comparison_id: str) -> dict[str, Any]:
    from .audits import effective_labels

    c = store.query("SELECT c.*, p.text AS prompt FROM comparisons c JOIN prompts p ON p.id = c.prompt_id WHERE c.id = ?",
                    [comparison_id])
    if not c:
        raise KeyError(f"no comparison {comparison_id!r}")
    verdicts = store.query(
        "SELECT id, principle_id, judge, mode, ab_order, raw, choice, p_first, p_a, constitution_version, created_at "
        "FROM verdicts WHERE comparison_id = ? ORDER BY principle_id, judge, ab_order", [comparison_id])
    for v in verdicts:
        if v["mode"] == "logprob":
            try:
                v["logprobs"] = json.loads(v["raw"])
            except ValueError:
                v["logprobs"] = None
    audits = store.query("SELECT id, author, action, reason, created_at FROM audits WHERE comparison_id = ? ORDER BY id",
                         [comparison_id])
    label = effective_labels(store, comparison_ids=[comparison_id]).get(comparison_id)
    return {"comparison": c[0], "verdicts": verdicts, "audits": audits, "label": label}
