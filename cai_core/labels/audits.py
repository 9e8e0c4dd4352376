"""Human audits: appended, never updated (DESIGN.md rule 5). ``undo`` cancels the author's
latest still-standing action on that comparison; the standing decisions are the log replayed.
An ``accept`` records the AI label the person saw, so it keeps meaning what they confirmed."""
from __future__ import annotations

import threading
import time
import uuid
from typing import Iterable, Sequence

from ..store import Store
from ..store import audits as audit_store
from ..store.cache import audit_version, cached_audits, per_store
from ..types import AUDIT_ACTIONS, DECISIVE_ACTIONS, Audit
from .rule import EffectiveLabel, HumanDecision, effective
from .summary import ai_labels

__all__ = ["ACTIONS", "record_audit", "HumanDecision", "standing_audits", "human_decisions", "effective_labels"]

ACTIONS = AUDIT_ACTIONS


def record_audit(store: Store, comparison_id: str, *, author: str, action: str, reason: str | None = None,
                 verdict_id: str | None = None, runs: Sequence[str] | None = None) -> Audit:
    """Append one audit action. ``accept`` stores the comparison's AI label in scope (``runs``,
    default its latest judge run) — exactly the label and P(A) training then uses."""
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; one of {', '.join(AUDIT_ACTIONS)}")
    if not author or not author.strip():
        raise ValueError("an audit needs an author")
    if not audit_store.comparison_exists(store, comparison_id):
        raise KeyError(f"no comparison {comparison_id!r}")
    label = p_a = None
    judge_runs: tuple[str, ...] = ()
    if action == "accept":
        ai = ai_labels(store, [comparison_id], runs=runs).get(comparison_id)
        if ai is None or ai.choice is None:
            raise ValueError("there is no AI label to accept (no verdict parsed): choose A, B or tie")
        label, p_a, judge_runs = ai.choice, ai.p_a, ai.judge_runs
    # Time-ordered ids: the order of actions is the order of their ids, even within a microsecond.
    audit = Audit(id=f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}", comparison_id=comparison_id,
                  verdict_id=verdict_id, author=author.strip(), action=action, reason=reason or None,  # type: ignore[arg-type]
                  label=label, p_a=p_a, judge_runs=judge_runs)
    audit_store.append_audit(store, audit)
    return audit


class _Replay:
    """The audit log replayed up to some row, brought up to date by replaying only the rows
    appended since (the log is append-only and ids are time-ordered): an audit click costs
    one row's replay, not the whole log's. Anything else (a row that appeared below the last
    replayed id) falls back to a full replay."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.n, self.last = 0, None
        self.stacks: dict[tuple[str, str], list[dict]] = {}
        self.standing: dict[str, dict] = {}
        """audit id -> row, in id order (rows are replayed in id order)."""
        self.rows: tuple[dict, ...] = ()

    def update(self, store: Store, version: tuple) -> tuple[dict, ...]:
        with self.lock:
            if version == (self.n, self.last):
                return self.rows
            if self.last is not None and audit_store.count_audits_upto(store, self.last) == self.n:
                new = audit_store.audit_rows(store, after=self.last)
            else:
                self._reset()
                new = audit_store.audit_rows(store)
            for r in new:  # undo pops the author's latest standing action on that comparison
                stack = self.stacks.setdefault((r["comparison_id"], r["author"]), [])
                if r["action"] == "undo":
                    if stack:
                        del self.standing[stack.pop()["id"]]
                else:
                    stack.append(r)
                    self.standing[r["id"]] = r
            if new:
                self.n, self.last = self.n + len(new), new[-1]["id"]
                self.rows = tuple(self.standing.values())
            return self.rows


# The replay is kept per store, the decisions cached per audit version: the app reads them
# several times between two audit clicks (queue, agreement, comparisons page). A stack is per
# (comparison, author), so filtering the whole replay by author or comparison gives exactly
# the replay of the filtered log.
def _standing(store: Store, version: tuple | None = None) -> tuple[dict, ...]:
    return per_store(store, ("audit_replay",), _Replay).update(store, version or audit_version(store))


def standing_audits(store: Store, *, author: str | None = None,
                    comparison_ids: Iterable[str] | None = None) -> list[dict]:
    """Audit rows still standing after undos (skips included), in action order."""
    rows: Iterable[dict] = _standing(store)
    if author is not None:
        rows = [r for r in rows if r["author"] == author]
    if comparison_ids is not None:
        wanted = set(comparison_ids)
        rows = [r for r in rows if r["comparison_id"] in wanted]
    return [dict(r) for r in rows]  # copies: the cached rows stay as replayed


def _decisions(rows: Iterable[dict]) -> dict[str, HumanDecision]:
    latest: dict[str, dict] = {}
    for r in rows:  # in id order: the last one wins
        if r["action"] in DECISIVE_ACTIONS:
            latest[r["comparison_id"]] = r
    return {cid: HumanDecision(cid, r["action"], r["author"], r["id"], r["reason"], r.get("label"), r.get("p_a"),
                               tuple(r.get("judge_runs") or ()))
            for cid, r in latest.items()}


def human_decisions(store: Store, comparison_ids: Iterable[str] | None = None) -> dict[str, HumanDecision]:
    """The standing human decision per comparison, after undos; skips decide nothing."""
    version = audit_version(store)
    every = cached_audits(store, ("decisions",), lambda: _decisions(_standing(store, version)), version=version)
    if comparison_ids is None:
        return dict(every)
    wanted = set(comparison_ids)
    return {cid: d for cid, d in every.items() if cid in wanted}


def effective_labels(store: Store, *, comparison_ids: Iterable[str] | None = None,
                     runs: Sequence[str] | None = None) -> dict[str, EffectiveLabel]:
    """comparison id -> the label that stands (a person's decision, else the AI label in scope),
    for every comparison that has either."""
    ids = None if comparison_ids is None else list(comparison_ids)
    ai = ai_labels(store, ids, runs=runs)
    humans = human_decisions(store, ids)
    return {cid: effective(cid, ai.get(cid), humans.get(cid)) for cid in sorted(set(ai) | set(humans))}
