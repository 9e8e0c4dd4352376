-- Migration 0001_initial. Every record names its parent; ids are deterministic hashes where a
-- rerun must find the same row (prompts, generations, critiques, revisions), so an
-- INSERT OR IGNORE of a resumed run never writes a row twice.

CREATE TABLE prompt_sets (
    id          VARCHAR PRIMARY KEY,
    name        VARCHAR NOT NULL UNIQUE,
    source      VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE prompts (
    id          VARCHAR PRIMARY KEY,
    set_id      VARCHAR NOT NULL,
    position    INTEGER NOT NULL,
    text        VARCHAR NOT NULL,
    category    VARCHAR,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE INDEX prompts_set ON prompts (set_id, position);

CREATE TABLE constitutions (
    version     VARCHAR PRIMARY KEY,
    name        VARCHAR NOT NULL,
    title       VARCHAR,
    source      VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE runs (
    id                    VARCHAR PRIMARY KEY,
    kind                  VARCHAR NOT NULL,
    config_hash           VARCHAR NOT NULL,
    config                JSON NOT NULL,
    model                 VARCHAR,
    constitution_version  VARCHAR,
    prompt_set_id         VARCHAR,
    seed                  BIGINT,
    status                VARCHAR NOT NULL,
    error                 VARCHAR,
    created_at            TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at            TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE INDEX runs_config ON runs (kind, config_hash);

CREATE TABLE generations (
    id                 VARCHAR PRIMARY KEY,
    run_id             VARCHAR NOT NULL,
    prompt_id          VARCHAR NOT NULL,
    text               VARCHAR NOT NULL,
    finish_reason      VARCHAR NOT NULL,
    flags              VARCHAR[] NOT NULL,
    model              VARCHAR NOT NULL,
    params             JSON,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    created_at         TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE INDEX generations_run ON generations (run_id);

CREATE TABLE critiques (
    id                    VARCHAR PRIMARY KEY,
    run_id                VARCHAR NOT NULL,
    prompt_id             VARCHAR NOT NULL,
    parent_id             VARCHAR NOT NULL,
    round                 INTEGER NOT NULL,
    principle_id          VARCHAR NOT NULL,
    constitution_version  VARCHAR NOT NULL,
    cot                   BOOLEAN NOT NULL,
    request               VARCHAR NOT NULL,
    text                  VARCHAR NOT NULL,
    finish_reason         VARCHAR NOT NULL,
    flags                 VARCHAR[] NOT NULL,
    model                 VARCHAR NOT NULL,
    created_at            TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE INDEX critiques_run ON critiques (run_id);

CREATE TABLE revisions (
    id             VARCHAR PRIMARY KEY,
    run_id         VARCHAR NOT NULL,
    prompt_id      VARCHAR NOT NULL,
    critique_id    VARCHAR NOT NULL,
    round          INTEGER NOT NULL,
    principle_id   VARCHAR NOT NULL,
    request        VARCHAR NOT NULL,
    text           VARCHAR NOT NULL,
    finish_reason  VARCHAR NOT NULL,
    flags          VARCHAR[] NOT NULL,
    model          VARCHAR NOT NULL,
    created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE INDEX revisions_run ON revisions (run_id);

-- Items a backend failed on (after its retries). Kept as history; a rerun retries the item
-- because its record is still missing.
CREATE TABLE failures (
    id          VARCHAR PRIMARY KEY,
    run_id      VARCHAR NOT NULL,
    item        VARCHAR NOT NULL,
    stage       VARCHAR NOT NULL,
    error       VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- RL phase (filled by the pairs / judge stages).
CREATE TABLE comparisons (
    id          VARCHAR PRIMARY KEY,
    run_id      VARCHAR,
    prompt_id   VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    answer_a    VARCHAR NOT NULL,
    answer_b    VARCHAR NOT NULL,
    model_a     VARCHAR,
    model_b     VARCHAR,
    parent_a    VARCHAR,
    parent_b    VARCHAR,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE verdicts (
    id                    VARCHAR PRIMARY KEY,
    run_id                VARCHAR,
    comparison_id         VARCHAR NOT NULL,
    principle_id          VARCHAR NOT NULL,
    constitution_version  VARCHAR NOT NULL,
    judge                 VARCHAR NOT NULL,
    mode                  VARCHAR NOT NULL,
    ab_order              VARCHAR NOT NULL,
    raw                   VARCHAR NOT NULL,
    choice                VARCHAR,
    p_first               DOUBLE,
    created_at            TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE INDEX verdicts_comparison ON verdicts (comparison_id);

-- Human audits are appended, never updated (the AI's original verdict stays).
CREATE TABLE audits (
    id             VARCHAR PRIMARY KEY,
    comparison_id  VARCHAR NOT NULL,
    verdict_id     VARCHAR,
    author         VARCHAR NOT NULL,
    action         VARCHAR NOT NULL,
    reason         VARCHAR,
    created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE checkpoints (
    id             VARCHAR PRIMARY KEY,
    run_id         VARCHAR NOT NULL,
    path           VARCHAR NOT NULL,
    base_model     VARCHAR NOT NULL,
    snapshot_hash  VARCHAR,
    config         JSON,
    created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
);
