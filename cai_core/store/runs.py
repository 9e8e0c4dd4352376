"""Runs: a stage's settings, seed, model and status, found again by the hash of its settings
so that re-issuing the same command resumes the same run."""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from ..ids import stable_id
from .db import Store
from ..types import Run

__all__ = ["config_hash", "find_or_create_run", "set_status", "get_run", "list_runs", "runs_of_kind", "run_kind"]


def config_hash(config: dict[str, Any]) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _row_to_run(r: dict) -> Run:
    return Run(
        id=r["id"], kind=r["kind"], config_hash=r["config_hash"], config=json.loads(r["config"]),
        model=r["model"], constitution_version=r["constitution_version"],
        prompt_set_id=r["prompt_set_id"], seed=r["seed"], status=r["status"],
    )


def get_run(store: Store, run_id: str) -> Run | None:
    rows = store.query("SELECT * FROM runs WHERE id = ?", [run_id])
    return _row_to_run(rows[0]) if rows else None


def list_runs(store: Store, kind: str | None = None) -> list[dict]:
    where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
    return store.query(f"SELECT id, kind, model, status, seed, created_at, updated_at, error FROM runs {where} ORDER BY created_at DESC", params)


def runs_of_kind(store: Store, kind: str | tuple[str, ...], *, status: str | None = None) -> list[Run]:
    """Runs of ``kind`` (one or several), newest first, optionally only those with ``status``."""
    kinds = [kind] if isinstance(kind, str) else list(kind)
    sql, params = "SELECT * FROM runs WHERE kind IN (SELECT unnest(?))", [kinds]
    if status is not None:
        sql += " AND status = ?"
        params.append(status)
    return [_row_to_run(r) for r in store.query(sql + " ORDER BY created_at DESC, id DESC", params)]


def run_kind(store: Store, run_id: str) -> str | None:
    return store.scalar("SELECT kind FROM runs WHERE id = ?", [run_id])


def find_or_create_run(
    store: Store, *, kind: str, config: dict[str, Any], model: str, seed: int,
    constitution_version: str | None = None, prompt_set_id: str | None = None, new: bool = False,
) -> tuple[Run, bool]:
    """The latest run with these exact settings, or a new one. Returns (run, created)."""
    h = config_hash({"kind": kind, "model": model, "seed": seed, **config})
    if not new:
        rows = store.query(
            "SELECT * FROM runs WHERE kind = ? AND config_hash = ? ORDER BY created_at DESC LIMIT 1", [kind, h]
        )
        if rows:
            return _row_to_run(rows[0]), False
    # The first run of a config gets an id derived from it; --new-run adds the time.
    rid = f"{kind}-{h[:10]}" if not store.count("runs", "WHERE id = ?", [f"{kind}-{h[:10]}"]) else f"{kind}-{stable_id(h, time.time_ns(), n=10)}"
    run = Run(
        id=rid, kind=kind, config_hash=h, config=config, model=model,
        constitution_version=constitution_version, prompt_set_id=prompt_set_id, seed=seed,
    )
    store.insert("runs", [{
        "id": run.id, "kind": kind, "config_hash": h, "config": config, "model": model,
        "constitution_version": constitution_version, "prompt_set_id": prompt_set_id,
        "seed": seed, "status": "running",
    }])
    return run, True


def set_status(store: Store, run_id: str, status: str, error: str | None = None) -> None:
    store.execute(
        "UPDATE runs SET status = ?, error = ?, updated_at = current_timestamp WHERE id = ?",
        [status, error, run_id],
    )
