-- Migration 0008_revision_candidates: an SL run may sample several revisions per (prompt,
-- round) and keep the best by a scorer; every candidate is kept here with its scores and
-- whether it became the round's revision (revisions.text is the kept one's).
CREATE TABLE revision_candidates (
    id             VARCHAR PRIMARY KEY,
    run_id         VARCHAR NOT NULL,
    prompt_id      VARCHAR NOT NULL,
    round          INTEGER NOT NULL,
    revision_id    VARCHAR NOT NULL,
    idx            INTEGER NOT NULL,   -- 0 = greedy, 1.. = samples
    temperature    DOUBLE NOT NULL,
    text           VARCHAR NOT NULL,
    finish_reason  VARCHAR NOT NULL,
    flags          VARCHAR[] NOT NULL,
    kind           VARCHAR NOT NULL,   -- the response classifier's kind
    relevance      DOUBLE,             -- share of the request's content words used
    score          DOUBLE NOT NULL,
    acceptable     BOOLEAN NOT NULL,
    kept           BOOLEAN NOT NULL,
    created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE INDEX revision_candidates_run ON revision_candidates (run_id, prompt_id, round);
