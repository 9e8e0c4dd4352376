"""Read-side queries the app's tabs show: runs, SL chains, comparisons with their verdicts.
Pure reads over the store (no duckdb import: SQL through Store)."""
from __future__ import annotations

import json
from typing import Any

from .store import Store

__all__ = [
    "runs_table",
    "prompts_page",
    "sl_prompts",
    "sl_chain",
    "comparisons_page",
    "comparison_detail",
    "COMPARISON_FILTERS",
]

COMPARISON_FILTERS = ("all", "disagreement", "low confidence", "unparsed", "audited", "not audited")


def runs_table(store: Store, kind: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    where, params = ("WHERE r.kind = ?", [kind]) if kind else ("", [])
    return store.query(
        f"""
        SELECT r.id, r.kind, r.status, r.model, r.created_at, r.updated_at, r.error,
               (SELECT count(*) FROM generations g WHERE g.run_id = r.id) AS generations,
               (SELECT count(*) FROM critiques c WHERE c.run_id = r.id) AS critiques,
               (SELECT count(*) FROM revisions v WHERE v.run_id = r.id) AS revisions,
               (SELECT count(*) FROM verdicts v WHERE v.run_id = r.id) AS verdicts
        FROM runs r {where} ORDER BY r.created_at DESC LIMIT {int(limit)}
        """, params)


def prompts_page(store: Store, set_name: str, *, search: str = "", limit: int = 100, offset: int = 0) -> list[dict]:
    return store.query(
        "SELECT p.position, p.category, p.text, p.id FROM prompts p JOIN prompt_sets s ON s.id = p.set_id "
        "WHERE s.name = ? AND (? = '' OR p.text ILIKE '%' || ? || '%') ORDER BY p.position LIMIT ? OFFSET ?",
        [set_name, search, search, int(limit), int(offset)])


def sl_prompts(store: Store, run_id: str, *, principle: str | None = None, flagged_only: bool = False) -> list[dict]:
    """Prompts of an SL run with how far each got and whether anything was flagged."""
    rows = store.query(
        """
        SELECT p.id, p.position, p.text,
               (SELECT max(round) FROM revisions v WHERE v.run_id = ? AND v.prompt_id = p.id) AS rounds,
               (SELECT string_agg(DISTINCT principle_id, ', ') FROM critiques c WHERE c.run_id = ? AND c.prompt_id = p.id) AS principles,
               (SELECT count(*) FROM generations g WHERE g.run_id = ? AND g.prompt_id = p.id AND len(g.flags) > 0)
             + (SELECT count(*) FROM critiques c WHERE c.run_id = ? AND c.prompt_id = p.id AND len(c.flags) > 0)
             + (SELECT count(*) FROM revisions v WHERE v.run_id = ? AND v.prompt_id = p.id AND len(v.flags) > 0) AS flagged
        FROM prompts p WHERE p.id IN (SELECT prompt_id FROM generations WHERE run_id = ?)
        ORDER BY p.position
        """, [run_id] * 6)
    if principle:
        rows = [r for r in rows if principle in (r["principles"] or "").split(", ")]
    if flagged_only:
        rows = [r for r in rows if r["flagged"]]
    return rows


def sl_chain(store: Store, run_id: str, prompt_id: str) -> dict[str, Any]:
    """The first answer, then each round's principle, critique and revision."""
    prompt = store.query("SELECT text FROM prompts WHERE id = ?", [prompt_id])
    first = store.query("SELECT id, text, flags, model FROM generations WHERE run_id = ? AND prompt_id = ?", [run_id, prompt_id])
    crits = store.query("SELECT * FROM critiques WHERE run_id = ? AND prompt_id = ? ORDER BY round", [run_id, prompt_id])
    revs = {r["round"]: r for r in store.query(
        "SELECT * FROM revisions WHERE run_id = ? AND prompt_id = ? ORDER BY round", [run_id, prompt_id])}
    rounds = []
    for c in crits:
        r = revs.get(c["round"])
        rounds.append({
            "round": c["round"], "principle_id": c["principle_id"], "cot": c["cot"],
            "critique_request": c["request"], "critique": c["text"], "critique_flags": list(c["flags"]),
            "revision_request": r["request"] if r else None, "revision": r["text"] if r else None,
            "revision_flags": list(r["flags"]) if r else [],
        })
    return {
        "prompt": prompt[0]["text"] if prompt else "",
        "first": first[0]["text"] if first else None,
        "first_flags": list(first[0]["flags"]) if first else [],
        "model": first[0]["model"] if first else None,
        "rounds": rounds,
    }


def comparisons_page(store: Store, *, filter: str = "all", principle: str | None = None, judge: str | None = None,
                     source: str | None = None, low: float = 0.2, limit: int = 100, offset: int = 0) -> list[dict]:
    """Comparisons with their aggregated AI label and audit state, filtered as the
    Preferences tab offers: disagreement (AB/BA flips or judges disagree), low confidence,
    unparsed verdicts, audited / not audited."""
    from .audit import effective_labels, load_verdicts
    from .stages.judge import aggregate

    if filter not in COMPARISON_FILTERS:
        raise ValueError(f"unknown filter {filter!r}; one of {', '.join(COMPARISON_FILTERS)}")
    clauses, params = ["c.id IN (SELECT comparison_id FROM verdicts)"], []
    if principle:
        clauses.append("c.id IN (SELECT comparison_id FROM verdicts WHERE principle_id = ?)")
        params.append(principle)
    if judge:
        clauses.append("c.id IN (SELECT comparison_id FROM verdicts WHERE judge = ?)")
        params.append(judge)
    if source:
        clauses.append("c.source = ?")
        params.append(source)
    rows = store.query(
        f"SELECT c.id, c.source, c.answer_a, c.answer_b, p.text AS prompt FROM comparisons c "
        f"JOIN prompts p ON p.id = c.prompt_id WHERE {' AND '.join(clauses)} ORDER BY c.created_at, c.id", params)
    ids = [r["id"] for r in rows]
    labels = aggregate(load_verdicts(store, comparison_ids=ids))
    eff = effective_labels(store, comparison_ids=ids)
    out = []
    for r in rows:
        lab, e = labels.get(r["id"]), eff.get(r["id"])
        item = {
            **r, "ai_vote": lab.vote if lab else None, "ai_p_a": lab.p_a if lab else None,
            "confidence": lab.confidence if lab else None, "flips": lab.flips if lab else 0,
            "unparsed": lab.n_unparsed if lab else 0, "judges_disagree": bool(lab and lab.judges_disagree),
            "n_verdicts": lab.n if lab else 0, "label": e.choice if e else None,
            "label_source": e.source if e else "none",
        }
        keep = {
            "all": True,
            "disagreement": item["flips"] > 0 or item["judges_disagree"],
            "low confidence": item["confidence"] is not None and item["confidence"] < low,
            "unparsed": item["unparsed"] > 0,
            "audited": item["label_source"] == "human",
            "not audited": item["label_source"] != "human",
        }[filter]
        if keep:
            out.append(item)
    return out[offset : offset + limit]


def comparison_detail(store: Store, comparison_id: str) -> dict[str, Any]:
    from .audit import effective_labels

    c = store.query("SELECT c.*, p.text AS prompt FROM comparisons c JOIN prompts p ON p.id = c.prompt_id WHERE c.id = ?",
                    [comparison_id])
    if not c:
        raise KeyError(f"no comparison {comparison_id!r}")
    verdicts = store.query(
        "SELECT id, principle_id, judge, mode, ab_order, raw, choice, p_first, p_a, constitution_version, created_at "
        "FROM verdicts WHERE comparison_id = ? ORDER BY principle_id, judge, ab_order", [comparison_id])
    for v in verdicts:
        if v["mode"] == "logprob":
            try:
                v["logprobs"] = json.loads(v["raw"])
            except ValueError:
                v["logprobs"] = None
    audits = store.query("SELECT id, author, action, reason, created_at FROM audits WHERE comparison_id = ? ORDER BY id",
                         [comparison_id])
    label = effective_labels(store, comparison_ids=[comparison_id]).get(comparison_id)
    return {"comparison": c[0], "verdicts": verdicts, "audits": audits, "label": label}
