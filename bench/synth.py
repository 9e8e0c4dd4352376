"""Synthetic records at scale for the store benchmark: prompts, comparisons, verdicts, audits.

Everything is generated inside DuckDB (``INSERT ... SELECT FROM range(n)``) through the
project's :class:`~cai_core.store.Store` (rule 6: only ``store/`` imports duckdb), so a
million verdicts take seconds, not minutes of Python loops. Values come from ``hash()`` of
the row number and a salt, so the same sizes always give the same database.

Shape (per comparison, ``verdicts / comparisons`` verdicts, 10 by default):

* principles drawn from the shipped ``harmless`` constitution (16 ids), both A/B orders;
* one judge run (``synth-judge``, an ensemble of two judges): judge 1 (log-prob mode) gives
  most verdicts; on every 10th comparison a second judge (CoT mode) gives the last few, so
  "judges disagree" happens;
* each comparison has a hidden preference; verdicts follow it with noise and a small
  position bias (so flips happen), about 2 % of verdicts are unparsed (``choice`` NULL);
* audits on about 2 % of comparisons by three authors, with some skips and undos.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from cai_core.store import Store

__all__ = ["SynthSizes", "generate", "PRINCIPLES", "JUDGES"]

PRINCIPLES = (
    "harmful-unethical-toxic", "harmful-advice", "socially-inappropriate", "point-out-danger",
    "child-appropriate", "controversial-objectionable", "thoughtful-ethical-person",
    "helpful-not-endorsing-harm", "legality", "empathy", "honesty-misinformation", "explain-why",
    "privacy", "manipulation", "violence-weapons", "self-harm-care",
)
JUDGES = ("embedded:SmolLM2-135M-Instruct", "hf:/runs/sft-0001/checkpoint")
PROMPT_SET = "synthetic"


@dataclass(frozen=True, slots=True)
class SynthSizes:
    verdicts: int = 1_000_000
    comparisons: int | None = None
    """Default: verdicts // 10 (10 verdicts per comparison: 5 principles x 2 orders)."""
    prompts: int = 2_000
    audit_share: float = 0.02
    """Share of comparisons with a human audit."""

    def n_comparisons(self) -> int:
        return max(1, self.comparisons if self.comparisons is not None else self.verdicts // 10)


def _u(expr: str, salt: str) -> str:
    """SQL for a deterministic uniform number in [0, 1) from ``expr`` and a salt."""
    return f"((hash({expr}::VARCHAR || '{salt}') % 1000003) / 1000003.0)"


def generate(store: Store, sizes: SynthSizes = SynthSizes(), *, log=None) -> dict[str, float]:
    """Fill ``store`` (normally an empty temp database); returns seconds per table."""
    timings: dict[str, float] = {}
    n_cmp = sizes.n_comparisons()
    per = max(1, sizes.verdicts // n_cmp)
    n_ver = sizes.verdicts
    principles = "[" + ", ".join(f"'{p}'" for p in PRINCIPLES) + "]"

    def step(name: str, sql: str, params=None) -> None:
        t = time.perf_counter()
        store.execute(sql, params)
        timings[name] = time.perf_counter() - t
        if log:
            log(f"synth: {name} {timings[name]:.1f}s")

    store.execute("INSERT OR IGNORE INTO prompt_sets (id, name, source) VALUES ('synth-set', ?, 'bench/synth.py')",
                  [PROMPT_SET])
    store.execute("INSERT OR IGNORE INTO constitutions (version, name, title, source) "
                  "VALUES ('synthv1', 'harmless', 'synthetic', '')")
    for rid, kind, model in (("synth-pairs", "pairs", JUDGES[0]), ("synth-judge", "judge", ",".join(JUDGES))):
        store.execute("INSERT OR IGNORE INTO runs (id, kind, config_hash, config, model, seed, status) "
                      "VALUES (?, ?, ?, '{}', ?, 0, 'finished')", [rid, kind, rid, model])
    step("prompts", f"""
        INSERT INTO prompts (id, set_id, position, text, category)
        SELECT 'p' || lpad(i::VARCHAR, 7, '0'), 'synth-set', i,
               'Synthetic red-team prompt number ' || i || ': how would someone ' ||
               ['pick a lock', 'hack a router', 'cheat on a test', 'make a weapon', 'stalk a person'][1 + i % 5] || '?',
               ['hacking', 'violence', 'fraud', 'privacy', 'other'][1 + i % 5]
        FROM range({sizes.prompts}) t(i)
    """)
    step("comparisons", f"""
        INSERT INTO comparisons (id, run_id, prompt_id, source, answer_a, answer_b, model_a, model_b, created_at)
        SELECT 'c' || lpad(i::VARCHAR, 8, '0'), 'synth-pairs', 'p' || lpad((i % {sizes.prompts})::VARCHAR, 7, '0'),
               ['samples', 'sl', 'compare'][1 + (i % 10 = 0)::INT + (i % 10 = 1)::INT * 2],
               'Answer A ' || i || ': ' || repeat('I cannot help with that, but here is some context. ', 1 + i % 4),
               'Answer B ' || i || ': ' || repeat('Sure, here are the steps you asked for in detail. ', 1 + (i // 3) % 4),
               '{JUDGES[0]}', '{JUDGES[0]}',
               TIMESTAMP '2026-10-01' + to_seconds(i * 7)
        FROM range({n_cmp}) t(i)
    """)
    # Verdict k of comparison c: principle slot k // 2, order k % 2; the last few slots of
    # every 10th comparison come from the second (CoT) judge.
    step("verdicts", f"""
        INSERT INTO verdicts (id, run_id, comparison_id, principle_id, constitution_version, judge, mode,
                              ab_order, raw, choice, p_first, p_a, created_at)
        WITH base AS (
            SELECT i, i // {per} AS c, i % {per} AS k FROM range({n_ver}) t(i) WHERE i // {per} < {n_cmp}
        ), v AS (
            SELECT i, c, k,
                   (c % 10 = 0 AND k >= {max(per - 4, 1)}) AS second,
                   {principles}[1 + ((hash(c::VARCHAR || 'p') + k // 2 * 7) % 16)::INT] AS principle,
                   CASE WHEN k % 2 = 0 THEN 'AB' ELSE 'BA' END AS ab_order,
                   {_u('c', 'q')} AS q,
                   {_u('i', 'n')} AS noise,
                   {_u('i', 'u')} AS unparsed
            FROM base
        ), s AS (
            SELECT *, greatest(0.0, least(1.0, q + (noise - 0.5) * 0.6 + 0.05)) AS p_shown_a  -- + position bias
            FROM v
        ), f AS (
            SELECT *, CASE WHEN ab_order = 'AB' THEN p_shown_a ELSE 1 - p_shown_a END AS p_first FROM s
        )
        SELECT 'v' || lpad(i::VARCHAR, 9, '0'),
               'synth-judge',
               'c' || lpad(c::VARCHAR, 8, '0'), principle, 'synthv1',
               CASE WHEN second THEN '{JUDGES[1]}' ELSE '{JUDGES[0]}' END,
               CASE WHEN second THEN 'cot' ELSE 'logprob' END,
               ab_order,
               CASE WHEN second THEN 'Let''s think step by step: both answers address the request; one of them '
                                     || 'refuses and explains why. Therefore, the answer is ('
                                     || CASE WHEN p_first > 0.5 THEN 'A' ELSE 'B' END || ').'
                    ELSE '{{"A": ' || round(ln(greatest(p_first, 1e-6)), 4) || ', "B": '
                         || round(ln(greatest(1 - p_first, 1e-6)), 4) || '}}' END,
               CASE WHEN unparsed < 0.02 OR p_first = 0.5 THEN NULL
                    WHEN (ab_order = 'AB') = (p_first > 0.5) THEN 'A' ELSE 'B' END,
               CASE WHEN unparsed < 0.02 THEN NULL
                    WHEN second THEN CASE WHEN p_first > 0.5 THEN 0.6 ELSE 0.4 END ELSE p_first END,
               CASE WHEN unparsed < 0.02 THEN NULL
                    WHEN second THEN CASE WHEN (ab_order = 'AB') = (p_first > 0.5) THEN 0.6 ELSE 0.4 END
                    WHEN ab_order = 'AB' THEN p_first ELSE 1 - p_first END,
               TIMESTAMP '2026-10-01' + to_seconds(i * 0.7)
        FROM f
    """)
    n_aud = max(1, int(n_cmp * sizes.audit_share))
    step_c = max(1, n_cmp // n_aud)
    # One decision per audited comparison, a second author on every 7th, a skip on every
    # 11th and an undo (of that author's decision) on every 13th; ids are time-ordered.
    step("audits", f"""
        INSERT INTO audits (id, comparison_id, author, action, reason, created_at)
        WITH a AS (SELECT j, j * {step_c} AS c FROM range({n_aud}) t(j))
        SELECT lpad((j * 10 + 0)::VARCHAR, 20, '0') || '-a', 'c' || lpad(c::VARCHAR, 8, '0'),
               ['ana', 'ben', 'chen'][1 + j % 3],
               ['accept', 'A', 'B', 'tie', 'accept'][1 + (hash(j::VARCHAR || 'x') % 5)::INT], NULL,
               TIMESTAMP '2026-10-05' + to_seconds(j * 60)
        FROM a
        UNION ALL
        SELECT lpad((j * 10 + 1)::VARCHAR, 20, '0') || '-b', 'c' || lpad(c::VARCHAR, 8, '0'),
               ['ben', 'chen', 'ana'][1 + j % 3], ['A', 'B'][1 + (j % 2)::INT], 'second opinion',
               TIMESTAMP '2026-10-05' + to_seconds(j * 60 + 5)
        FROM a WHERE j % 7 = 0
        UNION ALL
        SELECT lpad((j * 10 + 2)::VARCHAR, 20, '0') || '-c', 'c' || lpad((c + 1)::VARCHAR, 8, '0'),
               ['chen', 'ana', 'ben'][1 + j % 3], 'skip', NULL, TIMESTAMP '2026-10-05' + to_seconds(j * 60 + 9)
        FROM a WHERE j % 11 = 0 AND c + 1 < {n_cmp}
        UNION ALL
        SELECT lpad((j * 10 + 3)::VARCHAR, 20, '0') || '-d', 'c' || lpad(c::VARCHAR, 8, '0'),
               ['ana', 'ben', 'chen'][1 + j % 3], 'undo', NULL, TIMESTAMP '2026-10-05' + to_seconds(j * 60 + 30)
        FROM a WHERE j % 13 = 0
    """)
    store.execute("CHECKPOINT")
    return timings
