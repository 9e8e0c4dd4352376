"""Training's records: snapshots (the data a run trains on, with the prompts in it),
checkpoints, metrics mirrored from run folders, and evaluation reports."""
from __future__ import annotations

import json
from typing import Any, Sequence

from ..types import Checkpoint
from .db import Store
from .records import insert, load, load_one

__all__ = ["register_snapshot", "snapshot", "set_snapshot_path", "snapshot_prompt_keys", "trained_on",
           "checkpoints", "checkpoint", "checkpoint_by_path", "latest_checkpoint", "add_checkpoint",
           "metric_rows", "stored_metrics", "store_metrics", "save_report", "reports", "latest_report", "report"]


def register_snapshot(store: Store, *, kind: str, content_hash: str, path: str, records: int, overrides: int = 0,
                      config: dict | None = None, prompt_keys: Sequence[str] = ()) -> None:
    """Record a written snapshot and the prompts it trains on (idempotent per hash)."""
    store.insert("snapshots", [{"hash": content_hash, "kind": kind, "path": str(path), "records": records,
                                "overrides": overrides, "config": config or {}}])
    store.insert("snapshot_prompts", [{"snapshot_hash": content_hash, "text_key": k} for k in sorted(set(prompt_keys))])


def snapshot(store: Store, content_hash: str) -> dict[str, Any] | None:
    rows = store.query("SELECT hash, kind, path, records, overrides, config, created_at FROM snapshots WHERE hash = ?",
                       [content_hash])
    if not rows:
        return None
    row = rows[0]
    row["config"] = json.loads(row["config"]) if isinstance(row["config"], str) else (row["config"] or {})
    return row


def set_snapshot_path(store: Store, content_hash: str, path: str) -> None:
    store.execute("UPDATE snapshots SET path = ? WHERE hash = ?", [str(path), content_hash])


def snapshot_prompt_keys(store: Store, content_hash: str) -> set[str]:
    return {r["text_key"] for r in store.query("SELECT text_key FROM snapshot_prompts WHERE snapshot_hash = ?",
                                              [content_hash])}


def trained_on(store: Store, snapshot_hashes: Sequence[str], text_keys: Sequence[str]) -> set[str]:
    """Which of ``text_keys`` appear in any of these snapshots."""
    if not snapshot_hashes or not text_keys:
        return set()
    rows = store.query("SELECT DISTINCT text_key FROM snapshot_prompts WHERE snapshot_hash IN (SELECT unnest(?)) "
                       "AND text_key IN (SELECT unnest(?))", [list(snapshot_hashes), list(text_keys)])
    return {r["text_key"] for r in rows}


# -- checkpoints -----------------------------------------------------------------------------------
def checkpoints(store: Store) -> list[dict[str, Any]]:
    """Every checkpoint with its snapshot's human-override count, oldest first."""
    return store.query(
        "SELECT c.id, c.kind, c.run_id, c.path, c.base_model, c.snapshot_hash, c.created_at, "
        "s.overrides FROM checkpoints c LEFT JOIN snapshots s ON s.hash = c.snapshot_hash ORDER BY c.created_at")


def checkpoint(store: Store, id_or_run: str) -> Checkpoint | None:
    """A checkpoint by its id or by the training run that made it (the newest)."""
    return load_one(store, Checkpoint, id=id_or_run) or next(
        iter(load(store, Checkpoint, run_id=id_or_run, order_by=("created_at DESC",), limit=1)), None)


def checkpoint_by_path(store: Store, path: str) -> Checkpoint | None:
    return next(iter(load(store, Checkpoint, path=path, order_by=("created_at DESC",), limit=1)), None)


def latest_checkpoint(store: Store, kinds: Sequence[str]) -> Checkpoint | None:
    return next(iter(load(store, Checkpoint, kind=list(kinds), order_by=("created_at DESC", "id DESC"), limit=1)), None)


def add_checkpoint(store: Store, ckpt: Checkpoint) -> None:
    insert(store, [ckpt])


# -- metrics ---------------------------------------------------------------------------------------
def metric_rows(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The run's logged metrics, in step order."""
    return [json.loads(r["metrics"]) for r in store.query(
        "SELECT metrics FROM train_metrics WHERE run_id = ? ORDER BY step", [run_id])]


def stored_metrics(store: Store, run_id: str) -> dict[int, dict]:
    return {r["step"]: json.loads(r["metrics"]) for r in store.query(
        "SELECT step, CAST(metrics AS VARCHAR) AS metrics FROM train_metrics WHERE run_id = ?", [run_id])}


def store_metrics(store: Store, rows: list[dict[str, Any]]) -> None:
    """{run_id, step, time, metrics} rows; a step stored before is replaced (the run folder is the record)."""
    store.insert("train_metrics", rows, replace=True)


# -- evaluation reports ----------------------------------------------------------------------------
def save_report(store: Store, run_id: str, judge_run: str, report: dict, markdown: str) -> None:
    store.insert("eval_reports", [{"run_id": run_id, "judge_run": judge_run, "report": report, "markdown": markdown}],
                 replace=True)


def reports(store: Store) -> list[dict[str, Any]]:
    return store.query("SELECT run_id, judge_run, report, markdown, created_at FROM eval_reports ORDER BY created_at DESC")


def latest_report(store: Store) -> dict[str, Any] | None:
    """The newest report as {run_id, report (decoded), markdown}, or None."""
    rows = reports(store)
    if not rows:
        return None
    return {"run_id": rows[0]["run_id"], "report": json.loads(rows[0]["report"]), "markdown": rows[0]["markdown"]}


def report(store: Store, run_id: str) -> dict[str, Any] | None:
    rows = store.query("SELECT run_id, judge_run, report, markdown, created_at FROM eval_reports WHERE run_id = ?",
                       [run_id])
    return rows[0] if rows else None
