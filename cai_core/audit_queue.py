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
AI label, the same one :func:`cai_core.audit.effective_labels` computes and an ``accept``
confirms; the ``principle`` / ``judge`` filters only choose which comparisons are listed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from .audit import human_decisions, standing_audits
from .store import Store

__all__ = [
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

    Orders: ``random`` is a shuffle seeded by ``seed``; ``stratified`` takes one comparison
    per principle in turn (principles sorted, comparisons in the seeded shuffle order);
    ``disagreement`` puts comparisons with unparsed verdicts first, then position flips,
    then judge disagreement, then the rest; within each tier lowest confidence first
    (no probability at all counts as lowest), ties broken by comparison id.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    if limit is not None and limit <= 0:
        return []
    params: dict[str, Any] = {"run": judge_run_id}
    where = ["TRUE"]
    if not include_audited:
        excluded = _excluded(store, author, include_skipped)
        if excluded:
            where.append("s.comparison_id NOT IN (SELECT unnest($excluded))")
            params["excluded"] = excluded
    # Both filters must hold for the same verdict: "judged by j under principle p".
    picks = []
    if principle is not None:
        picks.append("principle_id = $principle")
        params["principle"] = principle
    if judge is not None:
        picks.append("judge = $judge")
        params["judge"] = judge
    if picks:
        where.append(f"s.comparison_id IN (SELECT comparison_id FROM v WHERE {' AND '.join(picks)})")
    filtered = f"{_STATS} SELECT s.* FROM stats s WHERE {' AND '.join(where)}"

    if strategy == "disagreement":
        # The whole ordering runs in DuckDB; only `limit` rows come back.
        order = ("(n_unparsed > 0) DESC, (flips > 0) DESC, judges_disagree DESC, "
                 "confidence ASC NULLS FIRST, comparison_id")
        sql = f"{filtered} ORDER BY {order}" + (" LIMIT $limit" if limit is not None else "")
        if limit is not None:
            params["limit"] = int(limit)
        rows = store.query(sql, params)
        picked = [(r, _reason_disagreement(r)) for r in rows]
    else:
        rows = store.query(f"{filtered} ORDER BY comparison_id", params)
        rng = random.Random(seed)
        rng.shuffle(rows)  # sorted first, so the shuffle depends only on the seed and the ids
        if strategy == "random":
            picked = [(r, "random") for r in rows[:limit]]
        else:
            picked = _round_robin(rows, [principle] if principle is not None else None, limit)
    return _items(store, picked)


def _round_robin(rows: list[dict[str, Any]], strata: list[str] | None,
                 limit: int | None) -> list[tuple[dict[str, Any], str]]:
    # A comparison judged by several principles sits in several strata; it is served once,
    # by the first stratum that reaches it.
    by_principle: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        for p in r["principles"]:
            by_principle.setdefault(p, []).append(r)
    names = strata if strata is not None else sorted(by_principle)
    cursors = dict.fromkeys(names, 0)
    taken: set[str] = set()
    out: list[tuple[dict[str, Any], str]] = []
    while names and (limit is None or len(out) < limit):
        progressed = False
        for p in names:
            queue = by_principle.get(p, [])
            i = cursors[p]
            while i < len(queue) and queue[i]["comparison_id"] in taken:
                i += 1
            cursors[p] = i + 1
            if i < len(queue):
                taken.add(queue[i]["comparison_id"])
                out.append((queue[i], f"principle {p}"))
                progressed = True
                if limit is not None and len(out) >= limit:
                    break
        if not progressed:
            break
    return out


def _items(store: Store, picked: list[tuple[dict[str, Any], str]]) -> list[QueueItem]:
    """Attach texts and the standing human decision to the picked rows (one query each)."""
    if not picked:
        return []
    ids = [r["comparison_id"] for r, _ in picked]
    texts = {r["id"]: r for r in store.query(
        "SELECT c.id, c.prompt_id, coalesce(p.text, '') AS prompt, c.answer_a, c.answer_b "
        "FROM comparisons c LEFT JOIN prompts p ON p.id = c.prompt_id WHERE c.id IN (SELECT unnest(?))", [ids])}
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
