-- Migration 0007_response_labels: people label evaluation answers (comply / objection /
-- evasive / incoherent), so a report can show human-labelled rates next to the classifier's.
-- Appended, never updated: an answer's newest label counts.
CREATE TABLE response_labels (
    id             VARCHAR PRIMARY KEY,
    generation_id  VARCHAR NOT NULL,   -- the answer (a compare run's generation)
    run_id         VARCHAR NOT NULL,   -- the compare run
    model_name     VARCHAR NOT NULL,   -- the name it was compared under
    author         VARCHAR NOT NULL,
    label          VARCHAR NOT NULL,   -- comply | objection | evasive | incoherent
    reason         VARCHAR,
    created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE INDEX response_labels_run ON response_labels (run_id, generation_id);
