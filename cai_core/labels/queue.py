"""What a person audits next: a queue of judged comparisons.

Four strategies, because they answer different questions:

* ``random``: an unbiased sample, the only one whose agreement numbers estimate the judge's
  agreement on *all* comparisons (the other two over-sample hard cases on purpose);
* ``stratified``: round-robin across principles, so every principle gets audited even when
  one dominates the draws;
* ``disagreement``: the comparisons where the AI label is least trustworthy first: verdicts
  that did not parse, then position flips (AB and BA chose different answers), then judges
  that disagree, then the lowest confidence;
* ``uncertain``: people's effort where the AI is least reliable, by one score
  (:meth:`~cai_core.labels.summary.Summary.uncertainty`): the entropy of the swap-averaged
  P(A), plus the share of position flips, plus disagreement across principles.

The queue's AI fields (choice, p_a, confidence, flips, ...) are always the comparison's AI label
in scope (by default its latest judge run), the same one :func:`~cai_core.labels.audits.effective_labels`
computes and an ``accept`` stores; the ``principle`` / ``judge`` filters only choose which
comparisons are listed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

from ..store import Store
from ..store.cache import data_version
from ..store.browse import comparison_texts
from ..types import DECISIVE_ACTIONS, QUEUE_STRATEGIES, QueueStrategy
from .audits import human_decisions, standing_audits
from .rule import AILabel, Choice
from .summary import Summary, summary

__all__ = ["STRATEGIES", "LOW_CONFIDENCE", "QueueItem", "audit_queue"]

Strategy = QueueStrategy
STRATEGIES: tuple[str, ...] = QUEUE_STRATEGIES
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
    choice: Choice | None
    """The AI label (the label rule on ``p_a``; None: nothing parsed)."""
    p_a: float | None
    """Mean P(answer_a is better) over the verdicts in scope that have one."""
    confidence: float | None
    """|p_a - 0.5| * 2 (0 = coin flip, 1 = certain)."""
    flips: int
    """(principle, judge, mode) groups whose AB and BA verdicts chose different answers."""
    n_verdicts: int
    n_unparsed: int
    """Verdicts without a choice (unparseable, backend error, or exactly 50/50)."""
    judges_disagree: bool
    """Two judges' own labels differ."""
    principles: tuple[str, ...]
    """Principles the comparison was judged by, sorted."""
    judge_runs: tuple[str, ...]
    """The judge runs the label comes from."""
    reason: str
    """Why it is in the queue ("position flip", "judges disagree", "low confidence 0.12", "random", ...)."""
    human_action: str | None = None
    """The standing human decision (anyone's: accept/A/B/tie), if any; shown with include_audited."""
    human_author: str | None = None


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
    excluding = DECISIVE_ACTIONS if include_skipped else (*DECISIVE_ACTIONS, "skip")
    return sorted({r["comparison_id"] for r in standing_audits(store, author=author.strip()) if r["action"] in excluding})


def _reason_disagreement(lab: AILabel) -> str:
    parts = []
    if lab.n_unparsed:
        parts.append(f"unparsed {lab.n_unparsed}/{lab.n}")
    if lab.flips:
        parts.append("position flip" if lab.flips == 1 else f"position flips ×{lab.flips}")
    if lab.judges_disagree:
        parts.append("judges disagree")
    conf = lab.confidence
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
    runs: Sequence[str] | None = None,
) -> list[QueueItem]:
    """The next comparisons to audit (at most ``limit``; None = all).

    Only comparisons with at least one verdict in scope are listed (``runs``: the verdicts of
    those judge runs; default: each comparison's latest judge run). Unless ``include_audited``:
    with ``author``, comparisons that author already decided (a standing accept/A/B/tie,
    after undos) are left out, so two people can work through the same queue without
    repeating their own work; a standing *skip* by the author leaves it out too (otherwise
    the disagreement queue would serve the skipped item straight back) unless
    ``include_skipped``; without ``author``, every comparison with a standing human
    decision is left out. ``principle`` / ``judge`` keep comparisons judged by that
    principle / judge.

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
    summ = summary(store, runs, version=version)
    excluded = set() if include_audited else set(_excluded(store, author, include_skipped))
    # Both filters must hold for the same verdict: "judged by j under principle p".
    allowed = summ.judged_by(principle, judge) if principle is not None or judge is not None else None

    def ok(cid: str) -> bool:
        return cid not in excluded and (allowed is None or cid in allowed)

    if strategy == "disagreement":
        picked = [(c, _reason_disagreement(summ.label(c))) for c in _take(summ.disagreement, ok, limit)]  # type: ignore[arg-type]
    elif strategy == "uncertain":
        picked = [(c, f"uncertainty {summ.uncertainty(c):.2f}") for c in _take(summ.uncertain, ok, limit)]
    elif strategy == "random":
        picked = [(c, "random") for c in _take(summ.shuffled(seed), ok, limit)]
    else:
        picked = _round_robin(summ.strata(seed), ok, [principle] if principle is not None else None, limit)
    return _items(store, summ, picked, version)


def _round_robin(by_principle: dict[str, tuple[str, ...]], ok: Callable[[str], bool], strata: list[str] | None,
                 limit: int | None) -> list[tuple[str, str]]:
    # A comparison judged by several principles sits in several strata; it is served once,
    # by the first stratum that reaches it. Strata with nothing eligible serve nothing.
    names = strata if strata is not None else sorted(by_principle)
    cursors = dict.fromkeys(names, 0)
    taken: set[str] = set()
    out: list[tuple[str, str]] = []
    while names and (limit is None or len(out) < limit):
        progressed = False
        for p in names:
            queue = by_principle.get(p, ())
            i = cursors[p]
            while i < len(queue) and (queue[i] in taken or not ok(queue[i])):
                i += 1
            cursors[p] = i + 1
            if i < len(queue):
                taken.add(queue[i])
                out.append((queue[i], f"principle {p}"))
                progressed = True
                if limit is not None and len(out) >= limit:
                    break
        if not progressed:
            break
    return out


def _items(store: Store, summ: Summary, picked: list[tuple[str, str]], version: tuple | None = None) -> list[QueueItem]:
    """Attach texts and the standing human decision to the picked comparisons (one query each)."""
    if not picked:
        return []
    ids = [cid for cid, _ in picked]
    texts = comparison_texts(store, ids, version=version)
    humans = human_decisions(store, ids)
    out = []
    for cid, reason in picked:
        t = texts.get(cid)
        lab = summ.label(cid)
        if t is None or lab is None:  # verdicts of a comparison that no longer exists: nothing to show
            continue
        h = humans.get(cid)
        out.append(QueueItem(
            comparison_id=cid, prompt_id=t["prompt_id"], prompt=t["prompt"], answer_a=t["answer_a"],
            answer_b=t["answer_b"], choice=lab.choice, p_a=lab.p_a, confidence=lab.confidence, flips=lab.flips,
            n_verdicts=lab.n, n_unparsed=lab.n_unparsed, judges_disagree=lab.judges_disagree,
            principles=lab.principles, judge_runs=lab.judge_runs, reason=reason,
            human_action=h.action if h else None, human_author=h.author if h else None))
    return out
