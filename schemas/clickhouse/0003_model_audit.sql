-- Every change of the model assignment (CLI or automatic failover): who, when, what.
-- One row per model-control revision; a change re-written after a crash replaces its row.
CREATE TABLE IF NOT EXISTS ${db}.model_audit
(
    ts_ms UInt64,
    ts ${ts_ms},
    revision UInt64,
    action ${str_lc},
    changed_by String,
    model String,
    primary_model String,
    previous_primary String,
    reason String,
    assignment String
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (revision, ts_ms)
;
