"""The queries behind the Hugging Face Constitutional AI dataset export: the SL chain behind a
final revision, where a preference pair came from, and the recorded split of each prompt."""
from __future__ import annotations

from typing import Any, Sequence

from .db import Store

__all__ = ["sl_chains", "comparison_origins", "prompt_splits", "trained_text_keys"]


def sl_chains(store: Store, revision_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """revision id -> the SL record that made it: ``init_response`` (the run's first answer to
    the prompt), ``critic_prompt`` / ``critic_response`` (the request and critique of the
    revision's round), ``revision_prompt`` / ``revision_response`` (the request and the revision)."""
    if not revision_ids:
        return {}
    rows = store.query(
        """
        SELECT r.id AS revision_id, g.text AS init_response, c.request AS critic_prompt, c.text AS critic_response,
               r.request AS revision_prompt, r.text AS revision_response
        FROM revisions r
        JOIN critiques c ON c.id = r.critique_id
        LEFT JOIN generations g ON g.run_id = r.run_id AND g.prompt_id = r.prompt_id
        WHERE r.id IN (SELECT unnest(?))
        QUALIFY row_number() OVER (PARTITION BY r.id ORDER BY g.id) = 1
        """, [list(revision_ids)])
    return {r.pop("revision_id"): r for r in rows}


def comparison_origins(store: Store, comparison_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """comparison id -> {prompt_id, revision_id}: ``revision_id`` is the SL revision one of its
    answers is (pairs made from an SL run, first answer vs final revision), else None."""
    if not comparison_ids:
        return {}
    rows = store.query(
        """
        SELECT c.id, c.prompt_id, any_value(r.id) AS revision_id
        FROM comparisons c
        LEFT JOIN revisions r ON c.source = 'sl' AND r.id IN (c.parent_a, c.parent_b)
        WHERE c.id IN (SELECT unnest(?))
        GROUP BY c.id, c.prompt_id
        """, [list(comparison_ids)])
    return {r.pop("id"): r for r in rows}


def prompt_splits(store: Store, prompt_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """prompt id -> {set_id, split}: the prompt's recorded split in its set (None before the set
    is split)."""
    if not prompt_ids:
        return {}
    rows = store.query(
        """
        SELECT p.id, p.set_id, x.split
        FROM prompts p LEFT JOIN prompt_splits x ON x.set_id = p.set_id AND x.prompt_id = p.id
        WHERE p.id IN (SELECT unnest(?))
        """, [list(prompt_ids)])
    return {r.pop("id"): r for r in rows}


def trained_text_keys(store: Store, text_keys: Sequence[str]) -> set[str]:
    """Those of ``text_keys`` (prompts by normalised text) that some registered training snapshot holds."""
    if not text_keys:
        return set()
    rows = store.query("SELECT DISTINCT text_key FROM snapshot_prompts WHERE text_key IN (SELECT unnest(?))",
                       [list(text_keys)])
    return {r["text_key"] for r in rows}
