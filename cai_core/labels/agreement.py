"""How far people agree with the AI judge, computed from the store.

Two granularities, because they answer different questions:

* **per comparison** (``n``, ``agreement``, ``kappa``, ``confusion``, ``calibration``): the
  AI *label* (the label rule of :mod:`.rule`: the mean P(A) of the verdicts in scope, exactly
  as training uses it) against the standing human decision. This is the number that says
  whether the preference data can be trusted.
* **per verdict** (``by_principle``, ``by_judge``): each single verdict's choice against the
  human label of its comparison. This is what tells *which* principle or judge is off.

``accept`` stores the AI label the person confirmed, so it counts as a human label equal to
that label (agreement by construction, unless a later judge run changed the AI label).
Comparisons whose verdicts all failed to parse have no AI label and are counted in
``no_ai_label``, not compared.

Cohen's kappa corrects raw agreement for chance: a judge that always says "A" agrees with
people 70 % of the time on a set where people chose A 70 % of the time, and gets κ = 0.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Literal, Sequence

from ..store import Store
from ..store.audits import human_label_counts
from ..store.cache import cached, data_version
from ..store.summary import label_counts_ai, overall_stats
from ..store.verdicts import verdicts_of
from ..types import DECISIVE_ACTIONS
from .audits import HumanDecision, human_decisions, standing_audits
from .rule import AILabel
from .summary import ai_labels, scope_key

__all__ = [
    "LABELS",
    "BUCKETS",
    "cohen_kappa",
    "AgreementRow",
    "CalibrationBin",
    "AgreementReport",
    "agreement",
    "label_counts_over_time",
]

LABELS: tuple[str, ...] = ("A", "B", "tie")
"""The categories kappa is computed over."""
BUCKETS: tuple[str, ...] = ("minute", "hour", "day", "week")
"""Time buckets :func:`label_counts_over_time` accepts (DuckDB ``date_trunc`` parts)."""


def cohen_kappa(pairs: Iterable[tuple[str, str]]) -> float | None:
    """Cohen's κ of two raters over paired categorical labels.

    κ = (p_o - p_e) / (1 - p_e), with p_o the observed agreement and p_e the agreement
    expected by chance from each rater's label frequencies. None when undefined: no pairs,
    or p_e == 1 (both raters always used the same single category, so there is no
    variation to agree on beyond chance).
    """
    return _kappa(Counter(pairs))


def _kappa(counts: Counter) -> float | None:
    """:func:`cohen_kappa` from a Counter of (a, b) pairs (the same arithmetic, on counts)."""
    n = sum(counts.values())
    if n == 0:
        return None
    agree = sum(c for (a, b), c in counts.items() if a == b)
    left: Counter[str] = Counter()
    right: Counter[str] = Counter()
    for (a, b), c in counts.items():
        left[a] += c
        right[b] += c
    p_o = agree / n
    p_e = sum(left[k] * right[k] for k in left) / (n * n)
    if math.isclose(p_e, 1.0, rel_tol=0, abs_tol=1e-12):
        return None
    return (p_o - p_e) / (1 - p_e)


@dataclass(frozen=True, slots=True)
class AgreementRow:
    """Per-verdict agreement of one principle or one judge with the human labels."""

    key: str
    """The principle id or judge id."""
    n: int
    """Parsed verdicts on comparisons with a human label."""
    agree: int
    agreement: float | None
    """agree / n; None when n == 0."""
    kappa: float | None


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    """Audited comparisons whose AI p_a falls in [lo, hi) (the last bin includes 1.0)."""

    lo: float
    hi: float
    n: int
    """Comparisons with a human A or B decision (ties excluded) and an AI p_a in the bin."""
    mean_predicted: float | None
    """Mean AI p_a of those comparisons; None when n == 0."""
    observed: float | None
    """Share the human labelled "A"; None when n == 0. Calibrated: observed ≈ mean_predicted."""


@dataclass(frozen=True, slots=True)
class AgreementReport:
    """AI judge vs human audits (see the module docstring for the two granularities)."""

    judge_runs: tuple[str, ...] | None
    """The verdicts in scope: these judge runs; None = each comparison's latest judge run."""
    audited: int
    """Comparisons with a standing human decision (accept / A / B / tie)."""
    n: int
    """Audited comparisons that have an AI label: the pairs agreement and kappa are over."""
    no_ai_label: int
    """Audited comparisons without an AI label (no verdicts in scope, or none parsed)."""
    agree: int
    agreement: float | None
    """agree / n; None when n == 0."""
    kappa: float | None
    """Cohen's κ over A/B/tie between the AI label and the human label; None when undefined."""
    confusion: tuple[tuple[str, str, int], ...]
    """(AI label, human label, count) for every combination that occurs, sorted."""
    by_principle: tuple[AgreementRow, ...]
    by_judge: tuple[AgreementRow, ...]
    verdicts: int
    """Verdicts in scope (all of them, audited or not)."""
    unparsed: int
    """Verdicts in scope without a choice."""
    flip_groups: int
    """(comparison, principle, judge, mode) groups with a parsed verdict in both orders."""
    flips: int
    """Of those, groups whose AB and BA verdicts chose different answers (position, not content)."""
    flip_rate: float | None
    """flips / flip_groups over all verdicts in scope; None when no group was judged both ways."""
    position_bias: float | None
    """Share of parsed verdicts in which the first shown answer won (0.5 = none)."""
    calibration: tuple[CalibrationBin, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (tuples become lists)."""
        d = asdict(self)
        d["confusion"] = [list(c) for c in self.confusion]
        return d


def _human_labels(decisions: dict[str, HumanDecision], labels: dict[str, AILabel]) -> tuple[dict[str, str], int]:
    """comparison -> human label (A/B/tie; accept: the label it confirmed), and how many
    standing decisions had no AI label to compare with."""
    out: dict[str, str] = {}
    missing = 0
    for cid, d in decisions.items():
        ai = labels.get(cid)
        if ai is None or ai.choice is None:
            missing += 1
            continue
        out[cid] = (d.label or ai.choice) if d.action == "accept" else d.action
    return out, missing


def _rows(pairs_by_key: dict[str, Counter]) -> tuple[AgreementRow, ...]:
    """Rows from (ai choice, human label) pair counts per key."""
    rows = []
    for key in sorted(pairs_by_key):
        counts = pairs_by_key[key]
        n = sum(counts.values())
        agree = sum(c for (a, b), c in counts.items() if a == b)
        rows.append(AgreementRow(key, n, agree, agree / n if n else None, _kappa(counts)))
    return tuple(rows)


def _calibration(labels: dict[str, AILabel], human: dict[str, str], bins: int) -> tuple[CalibrationBin, ...]:
    members: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for cid, h in human.items():
        p = labels[cid].p_a
        if h == "tie" or p is None or math.isnan(p):
            continue
        i = min(max(int(p * bins), 0), bins - 1)  # p == 1.0 belongs to the last bin
        members[i].append((p, h == "A"))
    out = []
    for i, m in enumerate(members):
        n = len(m)
        out.append(CalibrationBin(
            lo=i / bins, hi=(i + 1) / bins, n=n,
            mean_predicted=sum(p for p, _ in m) / n if n else None,
            observed=sum(a for _, a in m) / n if n else None,
        ))
    return tuple(out)


def _audited_verdicts(store: Store, runs: tuple[str, ...] | None, labels: dict[str, AILabel],
                      todo: list[str]) -> dict[str, tuple[Counter, Counter]]:
    """Per audited comparison: its parsed verdicts in scope counted by (principle, choice) and
    (judge, choice)."""
    scope: dict[str, set[str]] = {cid: set(labels[cid].judge_runs) if cid in labels else set() for cid in todo}
    wanted = sorted({r for s in scope.values() for r in s})
    out: dict[str, tuple[Counter, Counter]] = {cid: (Counter(), Counter()) for cid in todo}
    for v in verdicts_of(store, run_ids=wanted, comparison_ids=todo) if wanted else []:
        if v.choice is not None and v.run_id in scope.get(v.comparison_id, ()):
            out[v.comparison_id][0][(v.principle_id, v.choice)] += 1
            out[v.comparison_id][1][(v.judge, v.choice)] += 1
    return out


def agreement(store: Store, *, runs: Sequence[str] | None = None, bins: int = 5) -> AgreementReport:
    """AI vs human agreement over every comparison with a standing human decision.

    ``runs`` sets the AI side's scope (default: each comparison's latest judge run; human
    decisions are about the pair, so they apply whichever run judged it); ``bins`` equal-width
    calibration bins over [0, 1].
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    key = scope_key(runs)
    decisions = human_decisions(store)
    version = data_version(store)  # read once: each read is a query
    # The AI labels of audited comparisons, kept per data version like the verdict counts below:
    # an audit click builds the label of the one comparison it added, not of every audited one.
    known: dict[str, AILabel | None] = cached(store, ("agreement_labels", key), dict, version=version)
    new = [cid for cid in decisions if cid not in known]
    if new:
        found = ai_labels(store, new, runs=key)
        known.update({cid: found.get(cid) for cid in new})
    labels = {cid: lab for cid in decisions if (lab := known[cid]) is not None}
    # Per audited comparison, its verdicts counted, kept per data version (verdicts are
    # append-only): an audit click adds one comparison to load, not the whole set again.
    memo: dict[str, tuple[Counter, Counter]] = cached(store, ("agreement_verdicts", key), dict, version=version)
    todo = [cid for cid in sorted(decisions) if cid not in memo]
    if todo:
        memo.update(_audited_verdicts(store, key, labels, todo))
    human, missing = _human_labels(decisions, labels)
    pairs = [(labels[cid].choice, h) for cid, h in sorted(human.items())]
    agree = sum(a == b for a, b in pairs)

    by_principle: dict[str, Counter] = defaultdict(Counter)
    by_judge: dict[str, Counter] = defaultdict(Counter)
    for cid, h in human.items():
        per_principle, per_judge = memo[cid]
        for (k, choice), c in per_principle.items():
            by_principle[k][(choice, h)] += c
        for (k, choice), c in per_judge.items():
            by_judge[k][(choice, h)] += c

    overall = cached(store, ("agreement_overall", key), lambda: overall_stats(store, runs=key), version=version)
    paired, flips, parsed = overall["paired"], overall["flips"], overall["parsed"]
    return AgreementReport(
        judge_runs=key, audited=len(decisions), n=len(pairs), no_ai_label=missing, agree=agree,
        agreement=agree / len(pairs) if pairs else None, kappa=cohen_kappa(pairs),  # type: ignore[arg-type]
        confusion=tuple(sorted((a, h, c) for (a, h), c in Counter(pairs).items())),  # type: ignore[misc]
        by_principle=_rows(by_principle), by_judge=_rows(by_judge),
        verdicts=overall["verdicts"], unparsed=overall["unparsed"], flip_groups=paired, flips=flips,
        flip_rate=flips / paired if paired else None,
        position_bias=overall["first_won"] / parsed if parsed else None,
        calibration=_calibration(labels, human, bins),
    )


def label_counts_over_time(store: Store, bucket: Literal["minute", "hour", "day", "week"] = "hour", *,
                           runs: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Labels given per time bucket: ``{"time", "source", "label", "count"}`` rows sorted by
    time, source, label.

    ``source="ai"``: one per verdict (every verdict given, or those of ``runs``), label A / B /
    ``unparsed``, at the verdict's ``created_at``. ``source="human"``: one per *standing* audit
    action (undone ones do not count, skips are not labels), label accept / A / B / tie, at the
    action's ``created_at``; every author's standing action counts, not only the latest one per
    comparison, so the chart shows the auditing work done.
    """
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, not {bucket!r}")
    key = scope_key(runs)
    ai = cached(store, ("label_counts_ai", bucket, key), lambda: label_counts_ai(store, bucket, runs=key))
    standing = [r["id"] for r in standing_audits(store) if r["action"] in DECISIVE_ACTIONS]
    human = human_label_counts(store, bucket, standing)
    rows = [{"time": r["time"], "source": "ai", "label": r["label"], "count": int(r["count"])} for r in ai]
    rows += [{"time": r["time"], "source": "human", "label": r["label"], "count": int(r["count"])} for r in human]
    return sorted(rows, key=lambda r: (r["time"], r["source"], r["label"]))
