"""The per-comparison summary of verdicts, in ONE query: what the label rule
(:mod:`cai_core.labels.rule`) turns into a comparison's AI label, and what the audit queue, the
Preferences tab, agreement and snapshots read.

Scope: the verdicts of a comparison that count are those of one judge configuration. A judge
run is one configuration (its judge model(s), mode and constitution version), so by default a
comparison's label comes from the *latest* judge run that judged it (older runs, other judges,
other modes are not pooled in); given ``runs``, exactly the verdicts of those runs count (an
ensemble the user asked for).

The SQL returns statistics only (counts, the mean P(answer_a)); turning the mean into a label
is the label rule's job, in Python. Two diagnostics are decided here with the same rule applied
to smaller groups, mirrored by ``LABEL_SQL`` (tests check it against ``rule.decide``):
``flips`` (per principle, judge and mode, the AB and BA verdicts chose different answers) and
``judges_disagree`` (two judges' own labels differ) and ``principles_disagree`` (two principles'
own labels differ).
"""
from __future__ import annotations

from typing import Any, Sequence

from .db import Store

__all__ = ["TIE_TOLERANCE", "LABEL_SQL", "SUMMARY_COLUMNS", "summary_rows", "overall_stats", "scope_clause",
           "judged_by", "label_counts_ai"]

TIE_TOLERANCE = 1e-9
"""|P(A) - 0.5| below this is a tie (floating means of symmetric verdicts land a hair off 0.5)."""

LABEL_SQL = ("CASE WHEN {p} IS NULL OR isnan({p}) THEN NULL WHEN abs({p} - 0.5) < " + repr(TIE_TOLERANCE) +
             " THEN 'tie' WHEN {p} > 0.5 THEN 'A' ELSE 'B' END")
"""The label rule on a mean P(answer_a) column, in SQL (for the per-group diagnostics)."""

SUMMARY_COLUMNS = ("comparison_id", "n_verdicts", "n_unparsed", "n_a", "n_b", "p_a", "principles", "judge_runs",
                   "flips", "judges_disagree", "principles_disagree")


def scope_clause(runs: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
    """SQL for the verdicts in scope (a CTE body) and its parameters: the latest judge run of
    each comparison, or exactly the verdicts of ``runs``."""
    if runs is not None:
        return ("SELECT * FROM verdicts WHERE run_id IN (SELECT unnest($runs::VARCHAR[]))", {"runs": list(runs)})
    return ("""SELECT v.* FROM verdicts v
               JOIN (SELECT comparison_id, arg_max(coalesce(run_id, ''), created_at) AS run
                     FROM verdicts GROUP BY comparison_id) latest
                 ON latest.comparison_id = v.comparison_id AND latest.run = coalesce(v.run_id, '')""", {})


def _side(order: str) -> str:
    """The answer the verdicts shown in ``order`` chose more often (None on a tie or nothing parsed)."""
    a = f"count(*) FILTER (WHERE ab_order = '{order}' AND choice = 'A')"
    b = f"count(*) FILTER (WHERE ab_order = '{order}' AND choice = 'B')"
    return f"CASE WHEN {a} > {b} THEN 'A' WHEN {b} > {a} THEN 'B' END"


def _summary_sql(scope: str) -> str:
    vote = LABEL_SQL.format(p="avg(p_a) FILTER (WHERE p_a IS NOT NULL AND NOT isnan(p_a))")
    return f"""
WITH v AS ({scope}),
per_cmp AS (
    SELECT comparison_id,
           count(*) AS n_verdicts,
           count(*) FILTER (WHERE choice IS NULL) AS n_unparsed,
           count(*) FILTER (WHERE choice = 'A') AS n_a,
           count(*) FILTER (WHERE choice = 'B') AS n_b,
           avg(p_a) FILTER (WHERE p_a IS NOT NULL AND NOT isnan(p_a)) AS p_a,
           list(DISTINCT principle_id ORDER BY principle_id) AS principles,
           list(DISTINCT run_id ORDER BY run_id) FILTER (WHERE run_id IS NOT NULL) AS judge_runs
    FROM v GROUP BY comparison_id
),
grp AS (  -- each order's choice within one (principle, judge, mode): did position decide?
    SELECT comparison_id,
           {_side("AB")} AS ab,
           {_side("BA")} AS ba
    FROM v GROUP BY comparison_id, principle_id, judge, mode
),
flips AS (
    SELECT comparison_id, count(*) FILTER (WHERE ab IS NOT NULL AND ba IS NOT NULL AND ab <> ba) AS flips
    FROM grp GROUP BY comparison_id
),
per_judge AS (SELECT comparison_id, {vote} AS label FROM v GROUP BY comparison_id, judge),
judges AS (
    SELECT comparison_id, count(DISTINCT label) > 1 AS judges_disagree FROM per_judge GROUP BY comparison_id
),
per_principle AS (SELECT comparison_id, {vote} AS label FROM v GROUP BY comparison_id, principle_id),
principles AS (
    SELECT comparison_id, count(DISTINCT label) > 1 AS principles_disagree FROM per_principle GROUP BY comparison_id
)
SELECT p.comparison_id, p.n_verdicts, p.n_unparsed, p.n_a, p.n_b, p.p_a, p.principles,
       coalesce(p.judge_runs, []) AS judge_runs,
       coalesce(f.flips, 0) AS flips, coalesce(j.judges_disagree, false) AS judges_disagree,
       coalesce(pr.principles_disagree, false) AS principles_disagree
FROM per_cmp p
LEFT JOIN flips f USING (comparison_id)
LEFT JOIN judges j USING (comparison_id)
LEFT JOIN principles pr USING (comparison_id)
WHERE p.comparison_id IN (SELECT id FROM comparisons)  -- orphan verdicts have nothing to show
"""


def summary_rows(store: Store, *, runs: Sequence[str] | None = None,
                 comparison_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One row per judged comparison in scope (``SUMMARY_COLUMNS``), in comparison id order."""
    scope, params = scope_clause(runs)
    if comparison_ids is not None:
        scope = f"SELECT * FROM ({scope}) WHERE comparison_id IN (SELECT unnest($ids::VARCHAR[]))"
        params = {**params, "ids": list(comparison_ids)}
    return store.query(_summary_sql(scope) + " ORDER BY p.comparison_id", params or None)


def overall_stats(store: Store, *, runs: Sequence[str] | None = None) -> dict[str, int]:
    """Over every verdict in scope: verdicts, unparsed, parsed, first_won (the first shown answer
    won), paired ((comparison, principle, judge, mode) groups with an A/B choice in both orders)
    and flips (of those, groups whose orders chose different answers)."""
    scope, params = scope_clause(runs)
    sql = f"""
WITH v AS ({scope}),
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
    return {k: int(v or 0) for k, v in store.query(sql, params or None)[0].items()}


def judged_by(store: Store, *, runs: Sequence[str] | None, principle: str | None, judge: str | None) -> set[str]:
    """Comparisons with a verdict in scope by ``judge`` under ``principle`` (None = any);
    both must hold for the same verdict."""
    scope, params = scope_clause(runs)
    picks = ["TRUE"]
    if principle is not None:
        picks.append("principle_id = $principle")
        params = {**params, "principle": principle}
    if judge is not None:
        picks.append("judge = $judge")
        params = {**params, "judge": judge}
    rows = store.query(f"WITH v AS ({scope}) SELECT DISTINCT comparison_id FROM v WHERE {' AND '.join(picks)}",
                       params or None)
    return {r["comparison_id"] for r in rows}


def label_counts_ai(store: Store, bucket: str, *, runs: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Verdicts per time bucket and label (A / B / unparsed): every verdict ever given (or of ``runs``)."""
    where, params = ("WHERE run_id IN (SELECT unnest(?))", [bucket, list(runs)]) if runs is not None else ("", [bucket])
    return store.query(
        "SELECT date_trunc(?, created_at) AS time, coalesce(choice, 'unparsed') AS label, count(*) AS count "
        f"FROM verdicts {where} GROUP BY ALL", params)
