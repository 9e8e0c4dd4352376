"""Named, ordered migrations. A migration is applied once and recorded in ``_migrations``;
append new ones at the end, never edit an applied one."""
from __future__ import annotations

from pathlib import Path

__all__ = ["MIGRATIONS"]

_HERE = Path(__file__).resolve().parent

MIGRATIONS: list[tuple[str, str]] = [
    ("0001_initial", (_HERE / "schema.sql").read_text()),
]

MIGRATIONS.append((
    "0002_rl_phase",
    """
    ALTER TABLE verdicts ADD COLUMN p_a DOUBLE;
    ALTER TABLE checkpoints ADD COLUMN kind VARCHAR;
    CREATE TABLE snapshots (
        hash        VARCHAR PRIMARY KEY,
        kind        VARCHAR NOT NULL,      -- sft | preferences
        path        VARCHAR NOT NULL,
        records     INTEGER NOT NULL,
        overrides   INTEGER NOT NULL DEFAULT 0,
        config      JSON,
        created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE INDEX audits_comparison ON audits (comparison_id, created_at);
    """,
))

MIGRATIONS.append((
    "0003_training_metrics",
    """
    CREATE TABLE train_metrics (
        run_id   VARCHAR NOT NULL,
        step     INTEGER NOT NULL,
        time     DOUBLE,
        metrics  JSON NOT NULL,
        PRIMARY KEY (run_id, step)
    );
    """,
))

MIGRATIONS.append((
    "0004_eval_reports",
    """
    CREATE TABLE eval_reports (
        run_id      VARCHAR PRIMARY KEY,
        judge_run   VARCHAR,
        report      JSON NOT NULL,
        markdown    VARCHAR NOT NULL,
        created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    """,
))
