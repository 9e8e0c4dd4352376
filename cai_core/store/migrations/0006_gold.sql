-- Migration 0006_gold: AI feedback you can measure.
-- A gold set is a set of labelled comparisons (imported files, the shipped set, people's
-- audits) with a recorded tune / test split; a validation run judges its pairs with one judge
-- configuration and records every verdict (apart from the training verdicts) and its metrics.

CREATE TABLE gold_sets (
    name           VARCHAR PRIMARY KEY,
    origin         VARCHAR NOT NULL,   -- the file it was read from, or 'audits'
    tune_fraction  DOUBLE NOT NULL,    -- share of pairs in the tune split (by a seeded hash)
    seed           BIGINT NOT NULL,
    created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE gold_pairs (
    id          VARCHAR PRIMARY KEY,
    set_name    VARCHAR NOT NULL,
    prompt      VARCHAR NOT NULL,
    answer_a    VARCHAR NOT NULL,
    answer_b    VARCHAR NOT NULL,
    correct     VARCHAR NOT NULL,      -- A | B: which answer is the better one
    category    VARCHAR NOT NULL,
    note        VARCHAR NOT NULL,
    source_id   VARCHAR NOT NULL,      -- the row's id in its file, or the audited comparison
    format      VARCHAR NOT NULL,      -- trl | hh-rlhf | multiple-choice | audit
    split       VARCHAR NOT NULL,      -- tune | test
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE gold_verdicts (
    id                    VARCHAR PRIMARY KEY,
    run_id                VARCHAR NOT NULL,  -- the validation run
    comparison_id         VARCHAR NOT NULL,  -- the gold pair
    principle_id          VARCHAR NOT NULL,
    constitution_version  VARCHAR NOT NULL,
    judge                 VARCHAR NOT NULL,
    mode                  VARCHAR NOT NULL,
    ab_order              VARCHAR NOT NULL,
    raw                   VARCHAR NOT NULL,
    choice                VARCHAR,
    p_first               DOUBLE,
    p_a                   DOUBLE,
    created_at            TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE judge_validations (
    run_id                VARCHAR PRIMARY KEY,  -- the validation run
    gold                  VARCHAR NOT NULL,     -- gold set name
    split                 VARCHAR NOT NULL,     -- tune | test | all
    judge                 VARCHAR NOT NULL,     -- the judge model's backend id
    mode                  VARCHAR NOT NULL,
    constitution_version  VARCHAR NOT NULL,
    n                     INTEGER NOT NULL,
    accuracy              DOUBLE,
    ci_lo                 DOUBLE,
    ci_hi                 DOUBLE,
    flip_rate             DOUBLE,
    brier                 DOUBLE,
    metrics               JSON NOT NULL,        -- everything else (per order, principle, category, reliability)
    created_at            TIMESTAMP NOT NULL DEFAULT current_timestamp
);
