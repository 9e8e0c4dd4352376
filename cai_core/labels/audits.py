"""Human audits: appended, never updated (DESIGN.md rule 5), and the effective label they
produce: the latest human decision wins, else the aggregated AI verdict."""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Iterable, Literal

from ..store.cache import audit_version, cached_audits, per_store
from ..store import Store
from ..types import Audit, Verdict

__all__ = [
    "ACTIONS",
    "record_audit",
    "HumanDecision",
    "standing_audits",
    "human_decisions",
    "load_verdicts",
    "EffectiveLabel",
    "effective_labels",
]

ACTIONS = ("accept", "A", "B", "tie", "skip", "undo")
_DECISIVE = ("accept", "A", "B", "tie")


def record_audit(store: Store, comparison_id: str, *, author: str, action: str,
                 reason: str | None = None, verdict_id: str | None = None) -> Audit:
    """Append one audit action. ``undo`` cancels the author's latest still-standing action."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; one of {', '.join(ACTIONS)}")
    if not author or not author.strip():
        raise ValueError("an audit needs an author")
    if not store.count("comparisons", "WHERE id = ?", [comparison_id]):
        raise KeyError(f"no comparison {comparison_id!r}")
    # Time-ordered ids: the order of actions is the order of their ids, even within a microsecond.
    audit = Audit(id=f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}", comparison_id=comparison_id,
                  verdict_id=verdict_id, author=author.strip(), action=action, reason=reason or None)  # type: ignore[arg-type]
    store.insert("audits", [{"id": audit.id, "comparison_id": comparison_id, "verdict_id": verdict_id,
                             "author": audit.author, "action": action, "reason": audit.reason}], ignore_existing=False)
    return audit


@dataclass(frozen=True, slots=True)
class HumanDecision:
    comparison_id: str
    action: Literal["accept", "A", "B", "tie"]
    author: str
    audit_id: str
    reason: str | None


_COLUMNS = "id, comparison_id, author, action, reason, created_at"


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
            if self.last is not None and store.scalar("SELECT count(*) FROM audits WHERE id <= ?", [self.last]) == self.n:
                new = store.query(f"SELECT {_COLUMNS} FROM audits WHERE id > ? ORDER BY id", [self.last])
            else:
                self._reset()
                new = store.query(f"SELECT {_COLUMNS} FROM audits ORDER BY id")
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
    """Audit rows still standing after undos (skips included), in action order: replaying the
    log, ``undo`` pops the author's latest standing action on that comparison."""
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
        if r["action"] in _DECISIVE:
            latest[r["comparison_id"]] = r
    return {cid: HumanDecision(cid, r["action"], r["author"], r["id"], r["reason"]) for cid, r in latest.items()}


def human_decisions(store: Store, comparison_ids: Iterable[str] | None = None) -> dict[str, HumanDecision]:
    """The standing human decision per comparison, after undos; skips decide nothing."""
    version = audit_version(store)
    every = cached_audits(store, ("decisions",), lambda: _decisions(_standing(store, version)), version=version)
    if comparison_ids is None:
        return dict(every)
    wanted = set(comparison_ids)
    return {cid: d for cid, d in every.items() if cid in wanted}  # in the replay's order, as before


def load_verdicts(store: Store, *, comparison_ids: Iterable[str] | None = None, run_id: str | None = None) -> list[Verdict]:
    clauses, params = [], []
    if comparison_ids is not None:
        clauses.append("comparison_id IN (SELECT unnest(?))")
        params.append(list(comparison_ids))
    if run_id is not None:
        clauses.append("run_id = ?")
        params.append(run_id)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = store.query(
        "SELECT id, run_id, comparison_id, principle_id, constitution_version, judge, mode, ab_order, raw, "
        f"choice, p_first, p_a FROM verdicts {where}", params)
    return [Verdict(**r) for r in rows]


@dataclass(frozen=True, slots=True)
class EffectiveLabel:
    comparison_id: str
    choice: Literal["A", "B", "tie"] | None
    """The label training uses."""
    p_a: float | None
    """P(answer_a better): the AI's mean probability, or 1/0/0.5 for a human decision."""
    source: Literal["human", "ai", "none"]
    ai_vote: Literal["A", "B", "tie"] | None
    ai_p_a: float | None
    human: HumanDecision | None


def effective_labels(store: Store, *, comparison_ids: Iterable[str] | None = None,
                     judge_run_id: str | None = None) -> dict[str, EffectiveLabel]:
    from ..stages.judge import aggregate

    ids = None if comparison_ids is None else list(comparison_ids)
    ai = aggregate(load_verdicts(store, comparison_ids=ids, run_id=judge_run_id))
    humans = human_decisions(store, ids)
    out: dict[str, EffectiveLabel] = {}
    for cid in set(ai) | set(humans):
        label, human = ai.get(cid), humans.get(cid)
        ai_vote = label.vote if label else None
        ai_p = label.p_a if label else None
        if human and human.action != "accept":
            choice, p_a, source = human.action, {"A": 1.0, "B": 0.0, "tie": 0.5}[human.action], "human"
        elif human:  # accepted: a person confirmed the AI label
            choice, p_a, source = ai_vote, ai_p, "human"
        else:
            choice, p_a, source = ai_vote, ai_p, ("ai" if label else "none")
        out[cid] = EffectiveLabel(cid, choice, p_a, source, ai_vote, ai_p, human)  # type: ignore[arg-type]
    return out
