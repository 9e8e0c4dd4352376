"""Prompt sets, their prompts and their recorded train / held-out splits."""
from __future__ import annotations

from typing import Sequence

from ..types import Prompt, PromptSet, Split
from .db import Store
from .records import insert, load, load_one

__all__ = [
    "prompt_set_by_name", "prompt_set_names", "add_prompt_set", "add_prompts", "prompt_ids", "next_position",
    "count_prompts", "list_prompt_sets", "prompts_of", "prompts_by_id", "prompt_texts",
    "split_spec", "set_split_spec", "unsplit_prompts", "assign_splits", "replace_splits", "split_counts",
]


def prompt_set_by_name(store: Store, name: str) -> PromptSet | None:
    return load_one(store, PromptSet, name=name)


def prompt_set_names(store: Store) -> list[str]:
    return [r["name"] for r in store.query("SELECT name FROM prompt_sets ORDER BY name")]


def add_prompt_set(store: Store, ps: PromptSet) -> None:
    insert(store, [ps])


def add_prompts(store: Store, prompts: Sequence[Prompt]) -> None:
    insert(store, prompts)


def prompt_ids(store: Store, set_id: str) -> set[str]:
    return {r["id"] for r in store.query("SELECT id FROM prompts WHERE set_id = ?", [set_id])}


def next_position(store: Store, set_id: str) -> int:
    return int(store.scalar("SELECT coalesce(max(position) + 1, 0) FROM prompts WHERE set_id = ?", [set_id]))


def count_prompts(store: Store, set_id: str) -> int:
    return store.count("prompts", "WHERE set_id = ?", [set_id])


def list_prompt_sets(store: Store) -> list[dict]:
    """name, prompts, train, held_out (counts; None before the set is split), source, created_at."""
    return store.query(
        "SELECT s.name, count(p.id) AS prompts, "
        "count(p.id) FILTER (WHERE x.split = 'train') AS train, "
        "count(p.id) FILTER (WHERE x.split = 'held-out') AS held_out, "
        "any_value(sp.held_out) AS held_out_share, any_value(sp.seed) AS split_seed, s.source, s.created_at "
        "FROM prompt_sets s LEFT JOIN prompts p ON p.set_id = s.id "
        "LEFT JOIN prompt_splits x ON x.set_id = s.id AND x.prompt_id = p.id "
        "LEFT JOIN split_specs sp ON sp.set_id = s.id GROUP BY s.name, s.source, s.created_at ORDER BY s.name")


def prompts_of(store: Store, set_id: str, *, split: Split | None = None, limit: int | None = None,
               offset: int = 0) -> list[Prompt]:
    """The set's prompts in position order, optionally only one split; then ``offset`` / ``limit``."""
    where, params = "WHERE p.set_id = ?", [set_id]
    if split is not None:
        where += " AND p.id IN (SELECT prompt_id FROM prompt_splits WHERE set_id = ? AND split = ?)"
        params += [set_id, split]
    rows = store.query(
        f"SELECT p.id, p.set_id, p.position, p.text, p.category FROM prompts p {where} ORDER BY p.position "
        "LIMIT ? OFFSET ?", [*params, int(limit) if limit is not None else 2**62, int(offset)])
    return [Prompt(**r) for r in rows]


def prompts_by_id(store: Store, ids: Sequence[str]) -> dict[str, Prompt]:
    return {p.id: p for p in load(store, Prompt, id=list(ids))}


def prompt_texts(store: Store, ids: Sequence[str] | None = None) -> dict[str, str]:
    """prompt id -> text (``ids`` None: every prompt that some comparison is about)."""
    if ids is None:
        rows = store.query("SELECT id, text FROM prompts WHERE id IN (SELECT prompt_id FROM comparisons)")
    else:
        rows = store.query("SELECT id, text FROM prompts WHERE id IN (SELECT unnest(?))", [list(ids)])
    return {r["id"]: r["text"] for r in rows}


# -- splits ----------------------------------------------------------------------------------------
def split_spec(store: Store, set_id: str) -> tuple[float, int] | None:
    """(held-out share, seed) of the set's recorded split, or None before it is split."""
    rows = store.query("SELECT held_out, seed FROM split_specs WHERE set_id = ?", [set_id])
    return (float(rows[0]["held_out"]), int(rows[0]["seed"])) if rows else None


def set_split_spec(store: Store, set_id: str, held_out: float, seed: int) -> None:
    store.insert("split_specs", [{"set_id": set_id, "held_out": float(held_out), "seed": int(seed)}], replace=True)


def unsplit_prompts(store: Store, set_id: str) -> list[Prompt]:
    """The set's prompts that have no split yet (new ones, or all before the first split)."""
    rows = store.query(
        "SELECT id, set_id, position, text, category FROM prompts WHERE set_id = ? AND id NOT IN "
        "(SELECT prompt_id FROM prompt_splits WHERE set_id = ?) ORDER BY position", [set_id, set_id])
    return [Prompt(**r) for r in rows]


def assign_splits(store: Store, set_id: str, splits: dict[str, Split]) -> None:
    store.insert("prompt_splits", [{"set_id": set_id, "prompt_id": pid, "split": s} for pid, s in splits.items()])


def replace_splits(store: Store, set_id: str, splits: dict[str, Split]) -> None:
    """A new split of the whole set (the old assignment is dropped)."""
    store.execute("DELETE FROM prompt_splits WHERE set_id = ?", [set_id])
    assign_splits(store, set_id, splits)


def split_counts(store: Store, set_id: str) -> dict[str, int]:
    rows = store.query("SELECT split, count(*) AS n FROM prompt_splits WHERE set_id = ? GROUP BY split", [set_id])
    return {r["split"]: int(r["n"]) for r in rows}
