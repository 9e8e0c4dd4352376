"""People's labels of evaluation answers: the queue of answers to label and the labels that count."""
from __future__ import annotations

from typing import Any

from .db import Store

__all__ = ["answers_to_label", "current_labels", "compare_answer_ids", "compare_runs_with_answers", "labels_of_answer"]


def answers_to_label(store: Store, run_id: str, *, limit: int = 20) -> list[dict[str, Any]]:
    """A compare run's answers nobody has labelled yet, models interleaved in a stable shuffled
    order (by the answer id's hash) so a person labels every model, blind to which is which:
    {id, model_name, prompt, text}."""
    return store.query(
        """
        SELECT g.id, g.params->>'$.model_name' AS model_name, p.text AS prompt, g.text
        FROM generations g JOIN prompts p ON p.id = g.prompt_id
        WHERE g.run_id = ? AND g.id NOT IN (SELECT generation_id FROM response_labels WHERE run_id = ?)
        ORDER BY hash(g.id) LIMIT ?
        """, [run_id, run_id, limit])


def current_labels(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Each labelled answer of a compare run with its newest label:
    {generation_id, model_name, prompt, text, label, author, reason}."""
    return store.query(
        """
        SELECT l.generation_id, l.model_name, p.text AS prompt, g.text, l.label, l.author, l.reason
        FROM response_labels l JOIN generations g ON g.id = l.generation_id JOIN prompts p ON p.id = g.prompt_id
        WHERE l.run_id = ?
        QUALIFY row_number() OVER (PARTITION BY l.generation_id ORDER BY l.created_at DESC, l.id DESC) = 1
        ORDER BY l.model_name, l.generation_id
        """, [run_id])


def compare_runs_with_answers(store: Store) -> list[dict[str, Any]]:
    """Compare runs, newest first, with how many answers they hold and how many are labelled:
    {id, models, prompt_set, answers, labelled}."""
    return store.query(
        """
        SELECT r.id, r.model AS models, s.name AS prompt_set,
               (SELECT count(*) FROM generations g WHERE g.run_id = r.id) AS answers,
               (SELECT count(DISTINCT generation_id) FROM response_labels l WHERE l.run_id = r.id) AS labelled
        FROM runs r LEFT JOIN prompt_sets s ON s.id = r.prompt_set_id
        WHERE r.kind = 'compare' ORDER BY r.created_at DESC
        """)


def compare_answer_ids(store: Store, ids: list[str]) -> set[str]:
    """Those of ``ids`` that are answers of a compare run (what a label may be attached to)."""
    if not ids:
        return set()
    rows = store.query(
        """
        SELECT g.id FROM generations g JOIN runs r ON r.id = g.run_id
        WHERE r.kind = 'compare' AND list_contains(?, g.id)
        """, [list(ids)])
    return {r["id"] for r in rows}


def labels_of_answer(store: Store, generation_id: str) -> int:
    """How many labels (by anyone, including replaced ones) an answer has."""
    return store.count("response_labels", "WHERE generation_id = ?", [generation_id])
