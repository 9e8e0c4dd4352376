"""The AI label of a comparison from all its verdicts: mean P(answer_a), majority vote,
AB/BA flips and judge disagreement; and a judge's position bias.

The SQL in ``agreement.py`` / ``audit_queue.py`` mirrors these rules (the tests check both
agree), so a change here is a change there.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable, Literal

from ..types import Verdict

__all__ = ["Label", "aggregate", "position_bias"]


# -- aggregation ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Label:
    """The AI label of one comparison, from all its verdicts."""

    comparison_id: str
    p_a: float | None
    """Mean of the verdicts' P(answer_a is better), over those that have one."""
    vote: Literal["A", "B", "tie"] | None
    """Majority of the parsed choices; equal counts -> "tie"; nothing parsed -> None."""
    n: int
    """Verdicts counted."""
    n_unparsed: int
    """Verdicts without a choice (unparseable, backend error, or exactly 50/50)."""
    flips: int
    """(principle, judge, mode) groups whose AB and BA verdicts chose different answers of
    the comparison: the judge followed position, not content."""
    judges_disagree: bool
    """Two judges' majority votes (A, B or tie) differ."""
    confidence: float | None
    """|p_a - 0.5| * 2 (0 = coin flip, 1 = certain)."""


def _majority(choices: Iterable[str | None]) -> Literal["A", "B", "tie"] | None:
    counts = Counter(c for c in choices if c is not None)
    if not counts:
        return None
    if counts["A"] == counts["B"]:
        return "tie"
    return "A" if counts["A"] > counts["B"] else "B"


def aggregate(verdicts: Iterable[Verdict]) -> dict[str, Label]:
    by_comparison: dict[str, list[Verdict]] = defaultdict(list)
    for v in verdicts:
        by_comparison[v.comparison_id].append(v)
    labels: dict[str, Label] = {}
    for cid, vs in by_comparison.items():
        ps = [v.p_a for v in vs if v.p_a is not None and not math.isnan(v.p_a)]
        p_a = sum(ps) / len(ps) if ps else None
        groups: dict[tuple[str, str, str], dict[str, list[str | None]]] = defaultdict(lambda: {"AB": [], "BA": []})
        for v in vs:
            groups[(v.principle_id, v.judge, v.mode)][v.ab_order].append(v.choice)
        flips = 0
        for g in groups.values():
            ab, ba = _majority(g["AB"]), _majority(g["BA"])
            if ab in ("A", "B") and ba in ("A", "B") and ab != ba:
                flips += 1
        by_judge: dict[str, list[str | None]] = defaultdict(list)
        for v in vs:
            by_judge[v.judge].append(v.choice)
        judge_votes = {m for m in (_majority(cs) for cs in by_judge.values()) if m is not None}
        labels[cid] = Label(
            comparison_id=cid,
            p_a=p_a,
            vote=_majority(v.choice for v in vs),
            n=len(vs),
            n_unparsed=sum(v.choice is None for v in vs),
            flips=flips,
            judges_disagree=len(judge_votes) > 1,
            confidence=None if p_a is None else abs(p_a - 0.5) * 2,
        )
    return labels


def position_bias(verdicts: Iterable[Verdict]) -> float | None:
    """Fraction of parsed verdicts in which the first shown answer won (0.5 = no bias)."""
    parsed = [v for v in verdicts if v.choice is not None]
    if not parsed:
        return None
    first_won = sum((v.ab_order == "AB") == (v.choice == "A") for v in parsed)
    return first_won / len(parsed)
