-- Migration 0004_eval_reports.
CREATE TABLE eval_reports (
    run_id      VARCHAR PRIMARY KEY,
    judge_run   VARCHAR,
    report      JSON NOT NULL,
    markdown    VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

