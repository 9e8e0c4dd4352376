"""The compare stage's stored answers (generations of a compare run, per model name)."""
from __future__ import annotations

from .db import Store

__all__ = ["eval_answers"]


def eval_answers(store: Store, run_id: str, model_name: str) -> dict[str, str]:
    """prompt id -> the answer ``model_name`` gave in this compare run."""
    return {r["prompt_id"]: r["text"] for r in store.query(
        "SELECT prompt_id, text FROM generations WHERE run_id = ? AND params->>'$.model_name' = ?", [run_id, model_name])}
