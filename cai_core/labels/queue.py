"""What a person audits next: a queue of judged comparisons, picked in SQL.

Three strategies, because they answer different questions:

* ``random``: an unbiased sample, the only one whose agreement numbers estimate the judge's
  agreement on *all* comparisons (the other two over-sample hard cases on purpose);
* ``stratified``: round-robin across principles, so every principle gets audited even when
  one dominates the draws;
* ``disagreement``: the comparisons where the AI label is least trustworthy first: verdicts
  that did not parse, then position flips (AB and BA chose different answers), then judges
  that disagree, then the lowest confidence.

The queue's AI fields (vote, p_a, confidence, flips, ...) are always the comparison's *full*
AI label, the same one :func:`cai_core.labels.audits.effective_labels` computes and an ``accept``
confirms; the ``principle`` / ``judge`` filters only choose which comparisons are listed.
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any, Callable, Literal

from .audits import human_decisions, standing_audits
from ..store.cache import cached, data_version
from ..store import Store

__all__ = [
    "Summary",
    "STAT_COLUMNS",
    "summary",
    "comparison_texts",
    "cached",
    "data_version",
    "STRATEGIES",
    "LOW_CONFIDENCE",
    "QueueItem",
    "audit_queue",
    "standing_audits",
]

Strategy = Literal["random", "stratified", "disagreement"]
STRATEGIES: tuple[str, ...] = ("random", "stratified", "disagreement")
LOW_CONFIDENCE = 0.5
"""Below this confidence (|p_a - 0.5| * 2) the disagreement queue calls an item "low confidence"."""


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One comparison to audit, with its AI label and why it was queued."""

    comparison_id: str
    prompt_id: str
    prompt: str
    """The human prompt's text ('' if the prompt row is missing)."""
    answer_a: str
    answer_b: str
    vote: Literal["A", "B", "tie"] | None
    """The AI's majority vote over all the comparison's verdicts (None: nothing parsed)."""
    p_a: float | None
    """Mean P(answer_a is better) over the verdicts that have one."""
    confidence: float | None
    """|p_a - 0.5| * 2 (0 = coin flip, 1 = certain)."""
    flips: int
    """(principle, judge, mode) groups whose AB and BA verdicts chose different answers."""
    n_verdicts: int
    n_unparsed: int
    """Verdicts without a choice (unparseable, backend error, or exactly 50/50)."""
    judges_disagree: bool
    """Two judges' majority votes differ."""
    principles: tuple[str, ...]
    """Principles the comparison was judged by, sorted."""
    reason: str
    """Why it is in the queue ("position flip", "judges disagree", "low confidence 0.12", "random", ...)."""
    human_action: str | None = None
    """The standing human decision (anyone's: accept/A/B/tie), if any; shown with include_audited."""
    human_author: str | None = None


# Per-comparison AI label in SQL, mirroring cai_core.stages.judge.aggregate (the tests check
# they agree). Done in DuckDB so a queue over thousands of comparisons never loads the
# verdicts' raw text into Python.
_MAJORITY = "CASE WHEN {a} + {b} = 0 THEN NULL WHEN {a} = {b} THEN 'tie' WHEN {a} > {b} THEN 'A' ELSE 'B' END"

_STATS = f"""
WITH v AS (
    SELECT comparison_id, principle_id, judge, mode, ab_order, choice, p_a
    FROM verdicts WHERE $run::VARCHAR IS NULL OR run_id = $run
),
per_cmp AS (
    SELECT comparison_id,
           count(*) AS n_verdicts,
           count(*) FILTER (WHERE choice IS NULL) AS n_unparsed,
           count(*) FILTER (WHERE choice = 'A') AS n_a,
           count(*) FILTER (WHERE choice = 'B') AS n_b,
           avg(p_a) FILTER (WHERE p_a IS NOT NULL AND NOT isnan(p_a)) AS p_a,
           list(DISTINCT principle_id ORDER BY principle_id) AS principles
    FROM v GROUP BY comparison_id
),
grp AS (
    SELECT comparison_id,
           {_MAJORITY.format(a="count(*) FILTER (WHERE ab_order = 'AB' AND choice = 'A')",
                             b="count(*) FILTER (WHERE ab_order = 'AB' AND choice = 'B')")} AS ab,
           {_MAJORITY.format(a="count(*) FILTER (WHERE ab_order = 'BA' AND choice = 'A')",
                             b="count(*) FILTER (WHERE ab_order = 'BA' AND choice = 'B')")} AS ba
    FROM v GROUP BY comparison_id, principle_id, judge, mode
),
flips AS (
    SELECT comparison_id,
           count(*) FILTER (WHERE ab IN ('A', 'B') AND ba IN ('A', 'B') AND ab <> ba) AS flips
    FROM grp GROUP BY comparison_id
),
per_judge AS (
    SELECT comparison_id,
           {_MAJORITY.format(a="count(*) FILTER (WHERE choice = 'A')", b="count(*) FILTER (WHERE choice = 'B')")} AS vote
    FROM v GROUP BY comparison_id, judge
),
judges AS (
    SELECT comparison_id, count(DISTINCT vote) > 1 AS judges_disagree
    FROM per_judge GROUP BY comparison_id
),
stats AS (
    SELECT p.comparison_id, p.n_verdicts, p.n_unparsed, p.p_a, p.principles,
           {_MAJORITY.format(a="p.n_a", b="p.n_b")} AS vote,
           coalesce(f.flips, 0) AS flips,
           coalesce(j.judges_disagree, false) AS judges_disagree,
           abs(p.p_a - 0.5) * 2 AS confidence
    FROM per_cmp p
    LEFT JOIN flips f USING (comparison_id)
    LEFT JOIN judges j USING (comparison_id)
    WHERE p.comparison_id IN (SELECT id FROM comparisons)  -- orphan verdicts have nothing to show
)
"""

# -- the per-comparison summary, cached per store and data version ----------------------------
# Aggregating a million verdicts takes DuckDB ~0.5 s on 2 cores; the app asks for the queue
# after every audit click. The AI side (_STATS, the orders below) is computed once per data
# version (see cai_core.store.cache) and reused; the human side (the audit log) per audit version.


_DISAGREEMENT_ORDER = ("(n_unparsed > 0) DESC, (flips > 0) DESC, judges_disagree DESC, "
                       "confidence ASC NULLS FIRST, comparison_id")


STAT_COLUMNS = ("comparison_id", "n_verdicts", "n_unparsed", "p_a", "principles", "vote", "flips",
                "judges_disagree", "confidence")
"""Fields of a cached summary row (:attr:`Summary.data` holds them as tuples in this order)."""


class Summary:
    """Every judged comparison's AI label (the _STATS row), in the disagreement order, with
    lazily built seeded orders and filter sets. One per (store, data version, judge run).

    Held as tuples and dicts of immutable values only, which CPython's garbage collector
    stops tracking: cached as lists of dicts, 100 k comparisons made every full collection
    (one per ~13 app queries) cost 15-50 ms, the worst of the queries' p95."""

    def __init__(self, store: Store, judge_run_id: str | None) -> None:
        self.store = store
        self.run = judge_run_id
        rows = store.query(f"{_STATS} SELECT {', '.join(STAT_COLUMNS)} FROM stats ORDER BY {_DISAGREEMENT_ORDER}",
                           {"run": judge_run_id})
        self.data: dict[str, tuple] = {
            r["comparison_id"]: tuple(tuple(r[c]) if c == "principles" else r[c] for c in STAT_COLUMNS) for r in rows}
        self.disagreement: tuple[str, ...] = tuple(r["comparison_id"] for r in rows)
        self._lock = threading.Lock()
        self._shuffled: dict[int, tuple[str, ...]] = {}
        self._strata: dict[int, dict[str, tuple[str, ...]]] = {}
        self._filters: dict[tuple, dict[str, None]] = {}

    def row(self, cid: str) -> dict[str, Any]:
        """The comparison's stats as a dict (``STAT_COLUMNS``)."""
        return dict(zip(STAT_COLUMNS, self.data[cid]))

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
                k = STAT_COLUMNS.index("principles")
                for cid in order:
                    for p in self.data[cid][k]:
                        by.setdefault(p, []).append(cid)
                self._strata[seed] = {p: tuple(ids) for p, ids in by.items()}
            return self._strata[seed]

    def judged_by(self, principle: str | None, judge: str | None) -> dict[str, None]:
        """Comparisons (as dict keys) with a verdict in this run by ``judge`` under
        ``principle``; both must hold for the same verdict; None = any."""
        key = (principle, judge)
        with self._lock:
            if key not in self._filters:
                picks, params = ["($run::VARCHAR IS NULL OR run_id = $run)"], {"run": self.run}
                if principle is not None:
                    picks.append("principle_id = $principle")
                    params["principle"] = principle
                if judge is not None:
                    picks.append("judge = $judge")
                    params["judge"] = judge
                rows = self.store.query(
                    f"SELECT DISTINCT comparison_id FROM verdicts WHERE {' AND '.join(picks)}", params)
                self._filters[key] = dict.fromkeys(r["comparison_id"] for r in rows)
            return self._filters[key]


def summary(store: Store, judge_run_id: str | None = None, *, version: tuple | None = None) -> Summary:
    """The cached :class:`Summary` for the store's current data."""
    return cached(store, ("summary", judge_run_id), lambda: Summary(store, judge_run_id), version=version)


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


def _take(order: tuple[str, ...], ok: Callable[[str], bool], limit: int | None) -> list[str]:
    out = []
    for cid in order:
        if ok(cid):
            out.append(cid)
            if limit is not None and len(out) >= limit:
                break
    return out


def _excluded(store: Store, author: str | None, include_skipped: bool) -> list[str]:
    """Comparisons the queue leaves out by default: with ``author``, those that author has
    a standing decision on (or a standing skip); without one, any standing human decision."""
    if author is None or not author.strip():
        return list(human_decisions(store))
    excluding = ("accept", "A", "B", "tie") if include_skipped else ("accept", "A", "B", "tie", "skip")
    return sorted({r["comparison_id"] for r in standing_audits(store, author=author.strip()) if r["action"] in excluding})


def _reason_disagreement(r: dict[str, Any]) -> str:
    parts = []
    if r["n_unparsed"]:
        parts.append(f"unparsed {r['n_unparsed']}/{r['n_verdicts']}")
    if r["flips"]:
        parts.append("position flip" if r["flips"] == 1 else f"position flips ×{r['flips']}")
    if r["judges_disagree"]:
        parts.append("judges disagree")
    conf = r["confidence"]
    if conf is None:
        parts.append("no AI probability")
    elif conf < LOW_CONFIDENCE or not parts:
        parts.append(f"{'low ' if conf < LOW_CONFIDENCE else ''}confidence {conf:.2f}")
    return ", ".join(parts)


def audit_queue(
    store: Store,
    *,
    strategy: Strategy = "disagreement",
    author: str | None = None,
    limit: int | None = 20,
    seed: int = 0,
    include_audited: bool = False,
    include_skipped: bool = False,
    principle: str | None = None,
    judge: str | None = None,
    judge_run_id: str | None = None,
) -> list[QueueItem]:
    """The next comparisons to audit (at most ``limit``; None = all).

    Only comparisons with at least one verdict are listed. Unless ``include_audited``:
    with ``author``, comparisons that author already decided (a standing accept/A/B/tie,
    after undos) are left out, so two people can work through the same queue without
    repeating their own work; a standing *skip* by the author leaves it out too (otherwise
    the disagreement queue would serve the skipped item straight back) unless
    ``include_skipped``; without ``author``, every comparison with a standing human
    decision is left out. ``principle`` / ``judge`` keep comparisons judged by that
    principle / judge; ``judge_run_id`` restricts the verdicts to one judging run.

    Orders: ``random`` is a shuffle seeded by ``seed`` (of all judged comparisons, sorted by
    id first; left-out items are then skipped, so an audit never reshuffles the rest);
    ``stratified`` takes one comparison per principle in turn (principles sorted,
    comparisons in the seeded shuffle order);
    ``disagreement`` puts comparisons with unparsed verdicts first, then position flips,
    then judge disagreement, then the rest; within each tier lowest confidence first
    (no probability at all counts as lowest), ties broken by comparison id.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    if limit is not None and limit <= 0:
        return []
    version = data_version(store)
    summ = summary(store, judge_run_id, version=version)
    excluded = set() if include_audited else set(_excluded(store, author, include_skipped))
    # Both filters must hold for the same verdict: "judged by j under principle p".
    allowed = summ.judged_by(principle, judge) if principle is not None or judge is not None else None

    def ok(cid: str) -> bool:
        return cid not in excluded and (allowed is None or cid in allowed)

    row = summ.row
    if strategy == "disagreement":
        picked = [(row(c), _reason_disagreement(row(c))) for c in _take(summ.disagreement, ok, limit)]
    elif strategy == "random":
        picked = [(row(c), "random") for c in _take(summ.shuffled(seed), ok, limit)]
    else:
        picked = _round_robin(summ.strata(seed), row, ok, [principle] if principle is not None else None, limit)
    return _items(store, picked, version)


def _round_robin(by_principle: dict[str, tuple[str, ...]], row: Callable[[str], dict[str, Any]], ok: Callable[[str], bool],
                 strata: list[str] | None, limit: int | None) -> list[tuple[dict[str, Any], str]]:
    # A comparison judged by several principles sits in several strata; it is served once,
    # by the first stratum that reaches it. Strata with nothing eligible serve nothing.
    names = strata if strata is not None else sorted(by_principle)
    cursors = dict.fromkeys(names, 0)
    taken: set[str] = set()
    out: list[tuple[dict[str, Any], str]] = []
    while names and (limit is None or len(out) < limit):
        progressed = False
        for p in names:
            queue = by_principle.get(p, [])
            i = cursors[p]
            while i < len(queue) and (queue[i] in taken or not ok(queue[i])):
                i += 1
            cursors[p] = i + 1
            if i < len(queue):
                taken.add(queue[i])
                out.append((row(queue[i]), f"principle {p}"))
                progressed = True
                if limit is not None and len(out) >= limit:
                    break
        if not progressed:
            break
    return out


def _items(store: Store, picked: list[tuple[dict[str, Any], str]], version: tuple | None = None) -> list[QueueItem]:
    """Attach texts and the standing human decision to the picked rows (one query each)."""
    if not picked:
        return []
    ids = [r["comparison_id"] for r, _ in picked]
    texts = comparison_texts(store, ids, version=version)
    humans = human_decisions(store, ids)
    out = []
    for r, reason in picked:
        t = texts.get(r["comparison_id"])
        if t is None:  # verdicts of a comparison that no longer exists: nothing to show
            continue
        h = humans.get(r["comparison_id"])
        out.append(QueueItem(
            comparison_id=r["comparison_id"],
            prompt_id=t["prompt_id"],
            prompt=t["prompt"],
            answer_a=t["answer_a"],
            answer_b=t["answer_b"],
            vote=r["vote"],
            p_a=r["p_a"],
            confidence=r["confidence"],
            flips=int(r["flips"]),
            n_verdicts=int(r["n_verdicts"]),
            n_unparsed=int(r["n_unparsed"]),
            judges_disagree=bool(r["judges_disagree"]),
            principles=tuple(r["principles"]),
            reason=reason,
            human_action=h.action if h else None,
            human_author=h.author if h else None,
        ))
    return out
