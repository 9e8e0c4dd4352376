"""The SL phase's records per run: first answers, critiques, revisions; the final revisions an
SFT snapshot is made of; the per-prompt chain the Critique -> Revision tab shows."""
from __future__ import annotations

from typing import Any, Sequence

from ..types import Critique, Generation, Revision, RevisionCandidate
from .db import Store
from .records import load

__all__ = ["sl_texts", "sl_critiques", "sl_counts", "search_counts", "final_revisions", "answers_of_runs", "first_answers_of", "sl_prompts", "sl_chain",
           "generations_of_run"]

_SL_TABLES = ("generations", "critiques", "revisions")


def sl_texts(store: Store, run_id: str, table: str) -> dict[str, dict[str, Any]]:
    """id -> {id, text} of a run's generations or revisions (what the next wave builds on)."""
    if table not in ("generations", "revisions"):
        raise ValueError(table)
    return {r["id"]: r for r in store.query(f"SELECT id, text FROM {table} WHERE run_id = ?", [run_id])}


def sl_critiques(store: Store, run_id: str) -> dict[str, Critique]:
    return {c.id: c for c in load(store, Critique, run_id=run_id)}


def sl_counts(store: Store, run_id: str) -> dict[str, int]:
    """generations, critiques, revisions stored for the run."""
    return {t: store.count(t, "WHERE run_id = ?", [run_id]) for t in _SL_TABLES}


def search_counts(store: Store, run_id: str) -> dict[str, int]:
    """The run's revision search: rounds searched, candidates made, rounds whose kept candidate
    was acceptable, and prompts whose final revision had none (left out of SFT)."""
    row = store.query(
        """
        SELECT count(DISTINCT revision_id) AS rounds, count(*) AS candidates,
               count(DISTINCT revision_id) FILTER (WHERE kept AND acceptable) AS acceptable,
               (SELECT count(*) FROM revisions r WHERE r.run_id = ? AND list_contains(r.flags, 'no_acceptable_candidate')
                  AND r.round = (SELECT max(round) FROM revisions x WHERE x.run_id = r.run_id AND x.prompt_id = r.prompt_id))
                 AS final_unacceptable
        FROM revision_candidates WHERE run_id = ?
        """, [run_id, run_id])[0]
    return {k: int(v or 0) for k, v in row.items()}


def generations_of_run(store: Store, run_id: str) -> list[Generation]:
    return load(store, Generation, run_id=run_id)


def first_answers_of(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    """prompt id -> {id, prompt_id, text, model} of the run's first answers."""
    return {r["prompt_id"]: r for r in store.query(
        "SELECT id, prompt_id, text, model FROM generations WHERE run_id = ?", [run_id])}


def final_revisions(store: Store, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """For each prompt of each run, its highest-round revision with the prompt's text, in run
    then prompt order: {prompt, prompt_id, revision, revision_id, run_id, round, flags}."""
    if not run_ids:
        return []
    return store.query(
        """
        SELECT p.text AS prompt, r.text AS revision, r.run_id, r.prompt_id, r.id AS revision_id, r.round, r.flags
        FROM revisions r JOIN prompts p ON p.id = r.prompt_id
        WHERE r.run_id IN (SELECT unnest(?))
        QUALIFY row_number() OVER (PARTITION BY r.run_id, r.prompt_id ORDER BY r.round DESC) = 1
        ORDER BY r.run_id, p.position
        """, [list(run_ids)])


def answers_of_runs(store: Store, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The first answers of the given runs with their prompts' text, in run then prompt order:
    {prompt, answer, run_id, prompt_id, generation_id, flags} (helpful samples for SFT)."""
    if not run_ids:
        return []
    return store.query(
        """
        SELECT p.text AS prompt, g.text AS answer, g.run_id, g.prompt_id, g.id AS generation_id, g.flags
        FROM generations g JOIN prompts p ON p.id = g.prompt_id
        WHERE g.run_id IN (SELECT unnest(?))
        ORDER BY g.run_id, p.position
        """, [list(run_ids)])


def sl_prompts(store: Store, run_id: str) -> list[dict]:
    """Prompts of an SL run with how far each got and how many of its outputs were flagged."""
    return store.query(
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


def sl_chain(store: Store, run_id: str, prompt_id: str) -> dict[str, Any]:
    """The first answer, then each round's principle, critique and revision (with the revision
    candidates searched, when the run searched: kind, relevance, score, acceptable, kept)."""
    prompt = store.query("SELECT text FROM prompts WHERE id = ?", [prompt_id])
    first = store.query("SELECT id, text, flags, model FROM generations WHERE run_id = ? AND prompt_id = ?", [run_id, prompt_id])
    revs = {r.round: r for r in load(store, Revision, run_id=run_id, prompt_id=prompt_id, order_by=("round",))}
    cands: dict[int, list[dict]] = {}
    for x in load(store, RevisionCandidate, run_id=run_id, prompt_id=prompt_id, order_by=("round", "idx")):
        cands.setdefault(x.round, []).append({
            "idx": x.idx, "temperature": x.temperature, "text": x.text, "flags": list(x.flags), "kind": x.kind,
            "relevance": x.relevance, "score": x.score, "acceptable": x.acceptable, "kept": x.kept})
    rounds = []
    for c in load(store, Critique, run_id=run_id, prompt_id=prompt_id, order_by=("round",)):
        r = revs.get(c.round)
        rounds.append({
            "round": c.round, "principle_id": c.principle_id, "cot": c.cot,
            "critique_request": c.request, "critique": c.text, "critique_flags": list(c.flags),
            "revision_request": r.request if r else None, "revision": r.text if r else None,
            "revision_flags": list(r.flags) if r else [],
            "candidates": cands.get(c.round, []),
        })
    return {
        "prompt": prompt[0]["text"] if prompt else "",
        "first": first[0]["text"] if first else None,
        "first_flags": list(first[0]["flags"]) if first else [],
        "model": first[0]["model"] if first else None,
        "rounds": rounds,
    }
