-- Migration 0005_splits_lineage: honest experiments.
-- Every prompt set gets a recorded train / held-out split; a snapshot records the prompts it
-- trains on (by the hash of their normalised text, so the same prompt in another set is
-- recognised); an accept records the AI label it confirmed, exactly as training uses it.

CREATE TABLE split_specs (
    set_id      VARCHAR PRIMARY KEY,
    held_out    DOUBLE NOT NULL,       -- share of prompts held out (by a seeded hash of the text)
    seed        BIGINT NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE prompt_splits (
    set_id      VARCHAR NOT NULL,
    prompt_id   VARCHAR NOT NULL,
    split       VARCHAR NOT NULL,      -- train | held-out
    PRIMARY KEY (set_id, prompt_id)
);

CREATE TABLE snapshot_prompts (
    snapshot_hash  VARCHAR NOT NULL,
    text_key       VARCHAR NOT NULL,   -- prompt_sets.text_key(text): hash of the normalised text
    PRIMARY KEY (snapshot_hash, text_key)
);

ALTER TABLE audits ADD COLUMN label VARCHAR;        -- accept: the AI label confirmed (A | B | tie)
ALTER TABLE audits ADD COLUMN p_a DOUBLE;           -- accept: its P(answer_a is better)
ALTER TABLE audits ADD COLUMN judge_runs VARCHAR[]; -- accept: the judge runs behind that label

-- What-if re-judgements of a draft constitution: kept (auditable, reproducible) but apart from
-- the verdicts, so they never become labels.
CREATE TABLE what_if_verdicts (
    id                    VARCHAR PRIMARY KEY,
    run_id                VARCHAR NOT NULL,  -- the what-if run
    comparison_id         VARCHAR NOT NULL,
    principle_id          VARCHAR NOT NULL,
    constitution_version  VARCHAR NOT NULL,  -- the draft's version
    judge                 VARCHAR NOT NULL,
    mode                  VARCHAR NOT NULL,
    ab_order              VARCHAR NOT NULL,
    raw                   VARCHAR NOT NULL,
    choice                VARCHAR,
    p_first               DOUBLE,
    p_a                   DOUBLE,
    created_at            TIMESTAMP NOT NULL DEFAULT current_timestamp
);
