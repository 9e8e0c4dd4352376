"""How good a judge configuration's labels are, against gold labels.

The unit is a gold pair; its AI label is what training would use: the one label rule
(:func:`cai_core.labels.rule.decide`) on the mean P(answer_a) over the pair's verdicts (both
shown orders, every principle). Definitions (the tests check them on hand-computed cases):

* ``accuracy`` (swap-averaged): share of pairs whose label is the gold answer; a tie, and a
  pair with no label at all (nothing parsed), count one half: abstaining is a coin flip.
  ``accuracy_ci`` is the 95 % Wilson interval on it; ``coverage`` the share with a label.
* ``accuracy_by_order``: single verdicts, per shown order (``AB``: answer_a shown first) — what
  a judge asked only once would score; ``accuracy_by_position``: single verdicts, by where the
  better answer was shown (``first`` / ``second``): the gap between the two is position bias.
* ``flip_rate``: of the (pair, principle, judge) groups judged in both orders with a choice
  in each, the share whose two verdicts chose different answers (followed position, not
  content); None when no group was judged both ways (``pointwise`` shows no order).
* ``first_shown_rate``: share of verdicts choosing whichever answer was shown first.
* ``longer_rate``: share of pairs labelled A or B whose label is the longer answer (by
  characters), beside ``gold_longer_rate``, the same share for the gold answer: a judge far
  above the gold rate rewards length, not content.
* ``brier``: mean (P(gold answer) - 1)^2 over labelled pairs (0 = certain and right; 0.25 =
  always 50/50); ``reliability``: P(answer_a better) in ten bins against how often A was
  the better answer, with counts (a calibrated judge lies on the diagonal).
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

from ..labels.rule import decide
from ..types import Verdict

__all__ = ["wilson", "pair_labels", "validation_metrics", "judge_warnings", "CHANCE"]

CHANCE = 0.5
MAX_FLIP_RATE = 0.5
"""Above this flip rate a judge's labels follow position more often than content."""


def wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval for k successes in n (k may be fractional: ties count half)."""
    if n <= 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _mean(xs: Iterable[float]) -> float | None:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def _credit(label: str | None, correct: str) -> float:
    return 1.0 if label == correct else 0.0 if label in ("A", "B") else 0.5


def _valid(p: float | None) -> bool:
    return p is not None and not math.isnan(p)


def pair_labels(verdicts: Iterable[Verdict]) -> dict[str, tuple[float | None, str | None]]:
    """pair id -> (mean P(answer_a), label by the label rule) over its verdicts."""
    by: dict[str, list[float]] = defaultdict(list)
    seen: set[str] = set()
    for v in verdicts:
        seen.add(v.comparison_id)
        if _valid(v.p_a):
            by[v.comparison_id].append(float(v.p_a))  # type: ignore[arg-type]
    out = {}
    for cid in seen:
        p = _mean(by.get(cid, []))
        out[cid] = (p, decide(p))
    return out


def _accuracy(labels: Mapping[str, tuple[float | None, str | None]], truth: Mapping[str, str]) -> dict[str, Any]:
    ids = [cid for cid in truth if cid in labels] or []
    credit = sum(_credit(labels[cid][1], truth[cid]) for cid in ids)
    n = len(ids)
    ci = wilson(credit, n)
    return {"n": n, "accuracy": credit / n if n else None, "accuracy_ci": list(ci) if ci else None,
            "coverage": (sum(labels[c][1] is not None for c in ids) / n) if n else None}


def _single(verdicts: Sequence[Verdict], truth: Mapping[str, str], key) -> dict[str, float | None]:
    by: dict[str, list[float]] = defaultdict(list)
    for v in verdicts:
        if v.comparison_id in truth:
            by[key(v)].append(_credit(v.choice, truth[v.comparison_id]))
    return {k: _mean(xs) for k, xs in sorted(by.items())}


def _flips(verdicts: Sequence[Verdict]) -> tuple[int, int]:
    groups: dict[tuple, dict[str, str]] = defaultdict(dict)
    for v in verdicts:
        if v.choice in ("A", "B"):
            groups[(v.comparison_id, v.principle_id, v.judge, v.mode)][v.ab_order] = v.choice
    paired = [g for g in groups.values() if "AB" in g and "BA" in g]
    return sum(g["AB"] != g["BA"] for g in paired), len(paired)


def _reliability(labels: Mapping[str, tuple[float | None, str | None]], truth: Mapping[str, str],
                 bins: int = 10) -> list[dict[str, Any]]:
    out = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(p, truth[c] == "A") for c, (p, _) in labels.items()
                  if c in truth and p is not None and (lo <= p < hi or (b == bins - 1 and p == 1.0))]
        out.append({"lo": lo, "hi": hi, "n": len(inside), "mean_p_a": _mean(p for p, _ in inside),
                    "freq_a": _mean(float(a) for _, a in inside)})
    return out


def _by(verdicts: Sequence[Verdict], truth: Mapping[str, str], key) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Verdict]] = defaultdict(list)
    for v in verdicts:
        groups[key(v)].append(v)
    return {k: _accuracy(pair_labels(vs), {c: truth[c] for c in {v.comparison_id for v in vs} if c in truth})
            for k, vs in sorted(groups.items())}


def _longer(labels: Mapping[str, tuple[float | None, str | None]], truth: Mapping[str, str],
            lengths: Mapping[str, tuple[int, int]]) -> tuple[float | None, float | None]:
    def longer(cid: str, side: str | None) -> bool:
        a, b = lengths[cid]
        return (side == "A" and a > b) or (side == "B" and b > a)

    ids = [c for c in truth if c in lengths]
    decided = [c for c in ids if labels.get(c, (None, None))[1] in ("A", "B")]
    judge = _mean(float(longer(c, labels[c][1])) for c in decided)
    return judge, _mean(float(longer(c, truth[c])) for c in ids)


def validation_metrics(verdicts: Sequence[Verdict], truth: Mapping[str, str],
                       categories: Mapping[str, str] | None = None,
                       lengths: Mapping[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """Every metric of the module docstring for one judge configuration's verdicts on gold pairs
    (``truth``: pair id -> the better answer, A or B; pairs without verdicts count as unlabelled)."""
    labels = pair_labels(verdicts)
    for cid in truth:
        labels.setdefault(cid, (None, None))
    acc = _accuracy(labels, truth)
    flips, paired = _flips(verdicts)
    chose = [v for v in verdicts if v.choice in ("A", "B") and v.comparison_id in truth]
    first = sum((v.choice == "A") == (v.ab_order == "AB") for v in chose)
    labelled = [(p, truth[c]) for c, (p, lab) in labels.items() if c in truth and p is not None]
    cats = categories or {}
    by_cat: dict[str, dict[str, str]] = defaultdict(dict)
    for cid, cat in cats.items():
        if cid in truth:
            by_cat[cat or "-"][cid] = truth[cid]
    longer_rate, gold_longer_rate = _longer(labels, truth, lengths or {})
    return {
        **acc,
        "longer_rate": longer_rate, "gold_longer_rate": gold_longer_rate,
        "n_verdicts": len(verdicts),
        "n_unparsed": sum(v.choice is None for v in verdicts),
        "accuracy_by_order": _single(verdicts, truth, lambda v: v.ab_order),
        "accuracy_by_position": _single(verdicts, truth, lambda v: "first" if (
            (truth[v.comparison_id] == "A") == (v.ab_order == "AB")) else "second"),
        "flip_rate": flips / paired if paired else None,
        "flips": flips, "paired": paired,
        "first_shown_rate": first / len(chose) if chose else None,
        "brier": _mean(((p if c == "A" else 1 - p) - 1) ** 2 for p, c in labelled),
        "reliability": _reliability(labels, truth),
        "by_principle": _by(verdicts, truth, lambda v: v.principle_id),
        "by_category": {k: _accuracy(labels, t) for k, t in sorted(by_cat.items())},
    }


def judge_warnings(validation: Mapping[str, Any] | None) -> list[str]:
    """Why labels from this judge configuration should not be trusted (empty: none known)."""
    if validation is None:
        return ["not validated: its accuracy against gold labels is unknown (`cai judge validate`)"]
    out = []
    ci = validation.get("accuracy_ci") or (validation.get("ci_lo"), validation.get("ci_hi"))
    acc = validation.get("accuracy")
    if acc is None or ci is None or ci[0] is None:
        out.append("no gold pairs were judged: its accuracy is unknown")
    elif ci[1] < CHANCE:
        out.append(f"worse than chance on gold pairs: accuracy {acc:.0%} [{ci[0]:.0%}, {ci[1]:.0%}]")
    elif ci[0] <= CHANCE:
        out.append(f"no better than chance on gold pairs: accuracy {acc:.0%} [{ci[0]:.0%}, {ci[1]:.0%}] includes 50 %")
    flip = validation.get("flip_rate")
    if flip is not None and flip > MAX_FLIP_RATE:
        out.append(f"follows position: {flip:.0%} of its verdicts flip when the answers swap places")
    return out
