-- Migration 0002_rl_phase.
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

