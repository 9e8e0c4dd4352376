"""The ONE label rule: how a comparison's verdicts become its AI label, how a person's decision
stands over it, and what training pair a label makes.

* **AI label.** Within one judge configuration (see :mod:`cai_core.store.summary` for the
  scope), the label is decided by the *mean* P(answer_a is better) over the verdicts that have
  a probability: above 0.5 → A, below → B, exactly 0.5 → tie; no probability at all (every
  verdict unparsed) → no label. The mean is also the soft label training uses, so the label a
  person sees, confirms or overrides is the one training would have used. A majority vote can
  disagree with the mean (A 0.51, A 0.51, B 0.05: two votes for A, mean 0.357 → B); the vote is
  not a label anywhere.
* **Human decisions win.** The standing decision of a person (after undos) replaces the AI
  label: A → P(A) = 1, B → 0, tie → 0.5. ``accept`` stores the AI label the person saw (its
  choice and P(A)), and that stored label is what counts from then on.
* **Training pair.** A label of A or B makes a chosen/rejected pair with p_chosen = P(chosen
  is better); ties and missing labels make none.

Everything that shows or uses a label calls these functions: the audit queue, the "AI says"
badge, Accept, agreement and κ, what-if, the compare report and the preference snapshots.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping

from ..store.summary import TIE_TOLERANCE
from ..types import Verdict

__all__ = ["Choice", "decide", "AILabel", "ai_label", "ai_labels", "label_from_summary", "HumanDecision",
           "EffectiveLabel", "effective", "training_pair", "position_bias"]

Choice = Literal["A", "B", "tie"]


def decide(p_a: float | None) -> Choice | None:
    """The label of a mean P(answer_a is better): A above 0.5, B below, tie at 0.5, None without one."""
    if p_a is None or math.isnan(p_a):
        return None
    if abs(p_a - 0.5) < TIE_TOLERANCE:
        return "tie"
    return "A" if p_a > 0.5 else "B"


@dataclass(frozen=True, slots=True)
class AILabel:
    """The AI label of one comparison from the verdicts in scope."""

    comparison_id: str
    choice: Choice | None
    """:func:`decide` of ``p_a``."""
    p_a: float | None
    """Mean P(answer_a is better) over the verdicts that have one."""
    n: int
    """Verdicts counted."""
    n_unparsed: int
    """Verdicts without a choice (unparseable, backend error, or exactly 50/50)."""
    n_a: int = 0
    """Verdicts that chose answer_a (a diagnostic: the label is the mean's, not a vote)."""
    n_b: int = 0
    flips: int = 0
    """(principle, judge, mode) groups whose AB and BA verdicts chose different answers: the
    judge followed position, not content."""
    judges_disagree: bool = False
    """Two judges' own labels (each judge's mean) differ."""
    principles: tuple[str, ...] = ()
    judge_runs: tuple[str, ...] = ()
    """The judge runs whose verdicts made the label."""
    principles_disagree: bool = False
    """Two principles' own labels (each principle's mean) differ."""

    @property
    def confidence(self) -> float | None:
        """|p_a - 0.5| * 2 (0 = coin flip, 1 = certain)."""
        return None if self.p_a is None else abs(self.p_a - 0.5) * 2


def _mean(values: Iterable[float | None]) -> float | None:
    ps = [p for p in values if p is not None and not math.isnan(p)]
    return sum(ps) / len(ps) if ps else None


def _side(choices: list[str | None]) -> str | None:
    a, b = choices.count("A"), choices.count("B")
    return "A" if a > b else "B" if b > a else None


def ai_label(comparison_id: str, verdicts: Iterable[Verdict]) -> AILabel:
    """The AI label of in-memory verdicts (all of them in scope), the same statistics the
    store's summary query computes."""
    vs = list(verdicts)
    groups: dict[tuple, dict[str, list]] = defaultdict(lambda: {"AB": [], "BA": []})
    by_judge: dict[str, list[float | None]] = defaultdict(list)
    by_principle: dict[str, list[float | None]] = defaultdict(list)
    for v in vs:
        groups[(v.principle_id, v.judge, v.mode)][v.ab_order].append(v.choice)
        by_judge[v.judge].append(v.p_a)
        by_principle[v.principle_id].append(v.p_a)
    flips = sum(1 for g in groups.values() if None not in (ab := _side(g["AB"]), ba := _side(g["BA"])) and ab != ba)
    judge_labels = {decide(_mean(ps)) for ps in by_judge.values()} - {None}
    principle_labels = {decide(_mean(ps)) for ps in by_principle.values()} - {None}
    p_a = _mean(v.p_a for v in vs)
    return AILabel(comparison_id, decide(p_a), p_a, len(vs), sum(v.choice is None for v in vs),
                   sum(v.choice == "A" for v in vs), sum(v.choice == "B" for v in vs), flips, len(judge_labels) > 1,
                   tuple(sorted({v.principle_id for v in vs})), tuple(sorted({v.run_id for v in vs if v.run_id})),
                   len(principle_labels) > 1)


def ai_labels(verdicts: Iterable[Verdict]) -> dict[str, AILabel]:
    """comparison id -> :func:`ai_label` of its verdicts (every verdict given is in scope)."""
    by: dict[str, list[Verdict]] = defaultdict(list)
    for v in verdicts:
        by[v.comparison_id].append(v)
    return {cid: ai_label(cid, vs) for cid, vs in by.items()}


def label_from_summary(row: Mapping[str, Any]) -> AILabel:
    """The AI label of one row of :func:`cai_core.store.summary.summary_rows`."""
    p_a = row["p_a"]
    p_a = None if p_a is None or math.isnan(p_a) else float(p_a)
    return AILabel(row["comparison_id"], decide(p_a), p_a, int(row["n_verdicts"]), int(row["n_unparsed"]),
                   int(row["n_a"]), int(row["n_b"]), int(row["flips"]), bool(row["judges_disagree"]),
                   tuple(row["principles"] or ()), tuple(row["judge_runs"] or ()),
                   bool(row.get("principles_disagree", False)))


@dataclass(frozen=True, slots=True)
class HumanDecision:
    """A person's standing decision on a comparison (after undos)."""

    comparison_id: str
    action: Literal["accept", "A", "B", "tie"]
    author: str
    audit_id: str
    reason: str | None = None
    label: Choice | None = None
    """``accept``: the AI label confirmed (None for accepts recorded before labels were stored)."""
    p_a: float | None = None
    judge_runs: tuple[str, ...] = field(default=())


_HUMAN_P = {"A": 1.0, "B": 0.0, "tie": 0.5}


@dataclass(frozen=True, slots=True)
class EffectiveLabel:
    comparison_id: str
    choice: Choice | None
    """The label training uses."""
    p_a: float | None
    """P(answer_a better) of that label: the AI's mean, or 1 / 0 / 0.5 for a person's A / B / tie."""
    source: Literal["human", "ai", "none"]
    ai: AILabel | None
    human: HumanDecision | None

    @property
    def ai_choice(self) -> Choice | None:
        return self.ai.choice if self.ai else None

    @property
    def ai_p_a(self) -> float | None:
        return self.ai.p_a if self.ai else None


def effective(comparison_id: str, ai: AILabel | None, human: HumanDecision | None) -> EffectiveLabel:
    """The label that stands: a person's decision, else the AI label."""
    if human is not None and human.action != "accept":
        return EffectiveLabel(comparison_id, human.action, _HUMAN_P[human.action], "human", ai, human)
    if human is not None:  # accepted: the label the person confirmed
        if human.label is not None:
            return EffectiveLabel(comparison_id, human.label, human.p_a, "human", ai, human)
        return EffectiveLabel(comparison_id, ai.choice if ai else None, ai.p_a if ai else None, "human", ai, human)
    if ai is not None:
        return EffectiveLabel(comparison_id, ai.choice, ai.p_a, "ai", ai, None)
    return EffectiveLabel(comparison_id, None, None, "none", None, None)


def training_pair(label: EffectiveLabel) -> tuple[bool, float] | None:
    """(answer_a is chosen, p_chosen) for a label of A or B; None for a tie or no label."""
    if label.choice not in ("A", "B"):
        return None
    a_wins = label.choice == "A"
    p_a = label.p_a if label.p_a is not None else (1.0 if a_wins else 0.0)
    return a_wins, (p_a if a_wins else 1.0 - p_a)


def position_bias(verdicts: Iterable[Verdict]) -> float | None:
    """Fraction of parsed verdicts in which the first shown answer won (0.5 = no bias)."""
    parsed = [v for v in verdicts if v.choice is not None]
    if not parsed:
        return None
    return sum((v.ab_order == "AB") == (v.choice == "A") for v in parsed) / len(parsed)
