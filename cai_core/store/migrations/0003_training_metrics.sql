-- Migration 0003_training_metrics.
CREATE TABLE train_metrics (
    run_id   VARCHAR NOT NULL,
    step     INTEGER NOT NULL,
    time     DOUBLE,
    metrics  JSON NOT NULL,
    PRIMARY KEY (run_id, step)
);

