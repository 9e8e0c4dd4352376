"""How far people agree with the AI judge, computed from the store.

Two granularities, because they answer different questions:

* **per comparison** (``n``, ``agreement``, ``kappa``, ``confusion``, ``calibration``): the
  AI *label* (majority vote of all the comparison's verdicts, as training uses it) against
  the standing human decision. This is the number that says whether the preference data
  can be trusted.
* **per verdict** (``by_principle``, ``by_judge``): each single verdict's choice against the
  human label of its comparison. This is what tells *which* principle or judge is off.

``accept`` means the person confirmed the AI vote, so it counts as a human label equal to
that vote (agreement by construction). Comparisons whose verdicts all failed to parse have
no AI vote and are counted in ``no_ai_vote``, not compared.

Cohen's kappa corrects raw agreement for chance: a judge that always says "A" agrees with
people 70 % of the time on a set where people chose A 70 % of the time, and gets κ = 0.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Literal

from .audits import HumanDecision, human_decisions
from .queue import standing_audits
from ..store.cache import cached, data_version
from ..stages.judge import Label, aggregate
from ..store import Store
from ..types import Verdict

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

    judge_run_id: str | None
    """Verdicts restricted to this judging run; None = all verdicts."""
    audited: int
    """Comparisons with a standing human decision (accept / A / B / tie)."""
    n: int
    """Audited comparisons that have an AI vote: the pairs agreement and kappa are over."""
    no_ai_vote: int
    """Audited comparisons without an AI vote (no verdicts in scope, or none parsed)."""
    agree: int
    agreement: float | None
    """agree / n; None when n == 0."""
    kappa: float | None
    """Cohen's κ over A/B/tie between the AI vote and the human label; None when undefined."""
    confusion: tuple[tuple[str, str, int], ...]
    """(ai vote, human label, count) for every combination that occurs, sorted."""
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


def _load(store: Store, judge_run_id: str | None, comparison_ids: list[str]) -> list[Verdict]:
    # Like audit.load_verdicts, without the raw text (CoT verdicts can be long and nothing
    # here reads them), and only for the audited comparisons: the AI labels of the rest are
    # not needed, and aggregating every verdict in Python is what would make this slow.
    params: list[Any] = [comparison_ids]
    where = "WHERE comparison_id IN (SELECT unnest(?))"
    if judge_run_id is not None:
        where += " AND run_id = ?"
        params.append(judge_run_id)
    rows = store.query(
        "SELECT id, run_id, comparison_id, principle_id, constitution_version, judge, mode, ab_order, "
        f"'' AS raw, choice, p_first, p_a FROM verdicts {where} ORDER BY id", params)
    return [Verdict(**r) for r in rows]


# Statistics over ALL verdicts in scope, in DuckDB (thousands of comparisons stay fast).
# Flips: the rule of judge.aggregate's `flips`, each order's majority of parsed choices, a
# group counting when both orders have an A/B majority (a tie within one order, or nothing
# parsed, carries no position signal). Position bias: the formula of judge.position_bias.
# The tests check both against those Python functions.
_OVERALL_SQL = """
WITH v AS (SELECT * FROM verdicts WHERE $run::VARCHAR IS NULL OR run_id = $run),
grp AS (
    SELECT count(*) FILTER (WHERE ab_order = 'AB' AND choice = 'A') AS ab_a,
           count(*) FILTER (WHERE ab_order = 'AB' AND choice = 'B') AS ab_b,
           count(*) FILTER (WHERE ab_order = 'BA' AND choice = 'A') AS ba_a,
           count(*) FILTER (WHERE ab_order = 'BA' AND choice = 'B') AS ba_b
    FROM v GROUP BY comparison_id, principle_id, judge, mode
)
SELECT (SELECT count(*) FROM v) AS verdicts,
       (SELECT count(*) FROM v WHERE choice IS NULL) AS unparsed,
       (SELECT count(*) FROM v WHERE choice IN ('A', 'B')) AS parsed,
       (SELECT count(*) FROM v WHERE (ab_order = 'AB' AND choice = 'A') OR (ab_order = 'BA' AND choice = 'B')) AS first_won,
       (SELECT count(*) FROM grp WHERE ab_a <> ab_b AND ba_a <> ba_b) AS paired,
       (SELECT count(*) FROM grp WHERE ab_a <> ab_b AND ba_a <> ba_b AND (ab_a > ab_b) <> (ba_a > ba_b)) AS flips
"""


def _human_labels(decisions: dict[str, HumanDecision], labels: dict[str, Label]) -> tuple[dict[str, str], int]:
    """comparison -> human label (A/B/tie; accept resolved to the AI vote it confirmed), and
    how many standing decisions had no AI vote to compare with."""
    out: dict[str, str] = {}
    missing = 0
    for cid, d in decisions.items():
        ai = labels.get(cid)
        vote = ai.vote if ai else None
        if vote is None:
            missing += 1
            continue
        out[cid] = vote if d.action == "accept" else d.action
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


def _calibration(labels: dict[str, Label], human: dict[str, str], bins: int) -> tuple[CalibrationBin, ...]:
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


def agreement(store: Store, *, judge_run_id: str | None = None, bins: int = 5) -> AgreementReport:
    """AI vs human agreement over every comparison with a standing human decision.

    ``judge_run_id`` restricts the AI side to one judging run (human decisions are about the
    pair, so they apply whichever run judged it); ``bins`` equal-width calibration bins over
    [0, 1].
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    decisions = human_decisions(store)
    # The audited comparisons' verdicts and AI labels, kept per data version (verdicts are
    # append-only): an audit click adds one comparison to load, not the whole set again.
    # Per audited comparison: its AI label and its parsed verdicts counted by (principle,
    # choice) and (judge, choice), kept per data version (verdicts are append-only): an audit
    # click adds one comparison to load, not the whole set again.
    version = data_version(store)  # read once: each read is a query
    memo: dict[str, tuple[Label | None, Counter, Counter]] = cached(store, ("agreement_verdicts", judge_run_id), dict,
                                                                    version=version)
    todo = [cid for cid in sorted(decisions) if cid not in memo]
    if todo:
        loaded = _load(store, judge_run_id, todo)
        by_cid: dict[str, list[Verdict]] = defaultdict(list)
        for v in loaded:
            by_cid[v.comparison_id].append(v)
        new_labels = aggregate(loaded)
        for cid in todo:
            vs = [v for v in by_cid.get(cid, []) if v.choice is not None]
            memo[cid] = (new_labels.get(cid), Counter((v.principle_id, v.choice) for v in vs),
                         Counter((v.judge, v.choice) for v in vs))
    labels = {cid: memo[cid][0] for cid in decisions if memo[cid][0] is not None}
    human, missing = _human_labels(decisions, labels)  # type: ignore[arg-type]

    pairs = [(labels[cid].vote, h) for cid, h in sorted(human.items())]
    agree = sum(a == b for a, b in pairs)
    confusion = Counter(pairs)

    by_principle: dict[str, Counter] = defaultdict(Counter)
    by_judge: dict[str, Counter] = defaultdict(Counter)
    for cid, h in human.items():
        _, per_principle, per_judge = memo[cid]
        for (key, choice), c in per_principle.items():
            by_principle[key][(choice, h)] += c
        for (key, choice), c in per_judge.items():
            by_judge[key][(choice, h)] += c

    overall = cached(store, ("agreement_overall", judge_run_id), lambda: store.query(_OVERALL_SQL, {"run": judge_run_id})[0],
                     version=version)
    paired, flips, parsed = int(overall["paired"]), int(overall["flips"]), int(overall["parsed"])
    return AgreementReport(
        judge_run_id=judge_run_id,
        audited=len(decisions),
        n=len(pairs),
        no_ai_vote=missing,
        agree=agree,
        agreement=agree / len(pairs) if pairs else None,
        kappa=cohen_kappa(pairs),  # type: ignore[arg-type]
        confusion=tuple(sorted((a, h, c) for (a, h), c in confusion.items())),  # type: ignore[misc]
        by_principle=_rows(by_principle),
        by_judge=_rows(by_judge),
        verdicts=int(overall["verdicts"]),
        unparsed=int(overall["unparsed"]),
        flip_groups=paired,
        flips=flips,
        flip_rate=flips / paired if paired else None,
        position_bias=int(overall["first_won"]) / parsed if parsed else None,
        calibration=_calibration(labels, human, bins),
    )


def label_counts_over_time(store: Store, bucket: Literal["minute", "hour", "day", "week"] = "hour", *,
                           judge_run_id: str | None = None) -> list[dict[str, Any]]:
    """Labels given per time bucket: ``{"time", "source", "label", "count"}`` rows sorted by
    time, source, label.

    ``source="ai"``: one per verdict, label A / B / ``unparsed``, at the verdict's
    ``created_at``. ``source="human"``: one per *standing* audit action (undone ones do not
    count, skips are not labels), label accept / A / B / tie, at the action's ``created_at``;
    every author's standing action counts, not only the latest one per comparison, so the
    chart shows the auditing work done.
    """
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, not {bucket!r}")
    where, params = ("WHERE run_id = ?", [judge_run_id]) if judge_run_id is not None else ("", [])
    ai = cached(store, ("label_counts_ai", bucket, judge_run_id), lambda: store.query(
        "SELECT date_trunc(?, created_at) AS time, coalesce(choice, 'unparsed') AS label, count(*) AS count "
        f"FROM verdicts {where} GROUP BY ALL", [bucket, *params]))
    standing = [r["id"] for r in standing_audits(store) if r["action"] in ("accept", "A", "B", "tie")]
    human = store.query(
        "SELECT date_trunc(?, created_at) AS time, action AS label, count(*) AS count "
        "FROM audits WHERE id IN (SELECT unnest(?)) GROUP BY ALL", [bucket, standing]) if standing else []
    rows = [{"time": r["time"], "source": "ai", "label": r["label"], "count": int(r["count"])} for r in ai]
    rows += [{"time": r["time"], "source": "human", "label": r["label"], "count": int(r["count"])} for r in human]
    return sorted(rows, key=lambda r: (r["time"], r["source"], r["label"]))
