-- Core tables of the warehouse. Placeholders: ${db}; ${str_lc} is LowCardinality(String)
-- where the server has it (else String); ${ts_ms} is DateTime64(3, 'UTC') where the server
-- has it (else DateTime('UTC'): the *_ms UInt64 columns keep milliseconds on every server).
-- A line starting with "--@ttl " is kept (without the marker) only where the server has TTL.

-- Counts per event-time window. A window re-emitted by a late event carries a higher
-- version; ReplacingMergeTree keeps the highest, and replays after a crash replace rows
-- instead of adding to them. Read with FINAL, or through counts_latest / counts_hourly.
CREATE TABLE IF NOT EXISTS ${db}.counts
(
    camera_id ${str_lc},
    rule ${str_lc},
    class_name ${str_lc},
    direction ${str_lc},
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    count UInt64,
    version UInt64,
    final UInt8,
    inserted_at DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (camera_id, rule, class_name, direction, window_start);

-- Every line crossing and zone enter/exit. event_id is deterministic, so a replayed event
-- replaces its first copy.
CREATE TABLE IF NOT EXISTS ${db}.count_events
(
    event_id String,
    camera_id ${str_lc},
    stream_id String,
    seq UInt64,
    capture_ts_ms UInt64,
    capture_time ${ts_ms},
    rule ${str_lc},
    rule_kind ${str_lc},
    class_name ${str_lc},
    direction ${str_lc},
    track_id UInt64,
    dwell_ms Nullable(UInt64),
    model_name ${str_lc},
    model_version ${str_lc}
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(capture_time)
ORDER BY (camera_id, capture_ts_ms, event_id)
--@ttl TTL toDateTime(capture_time) + INTERVAL 180 DAY
;

-- Zone occupancy per event-time window (samples = frames seen in the window).
CREATE TABLE IF NOT EXISTS ${db}.occupancy
(
    camera_id ${str_lc},
    rule ${str_lc},
    class_name ${str_lc},
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    samples UInt64,
    occupancy_max UInt32,
    occupancy_mean Float64,
    version UInt64,
    final UInt8,
    inserted_at DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (camera_id, rule, class_name, window_start);

-- A candidate model against the primary, per window and camera; per-class figures are
-- parallel arrays (ARRAY JOIN them).
CREATE TABLE IF NOT EXISTS ${db}.model_comparison
(
    camera_id ${str_lc},
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    primary_model ${str_lc},
    primary_version ${str_lc},
    candidate_model ${str_lc},
    candidate_version ${str_lc},
    frames_compared UInt64,
    class_name Array(String),
    matched Array(UInt64),
    candidate_boxes Array(UInt64),
    primary_boxes Array(UInt64),
    precision Array(Float64),
    recall Array(Float64),
    count_diff Int64,
    primary_latency_p50_ms Float64,
    primary_latency_p95_ms Float64,
    candidate_latency_p50_ms Float64,
    candidate_latency_p95_ms Float64,
    inserted_at DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (candidate_model, candidate_version, camera_id, window_start);

-- Inference worker statistics, one row per worker and model per reporting interval.
CREATE TABLE IF NOT EXISTS ${db}.inference_stats
(
    ts_ms UInt64,
    ts ${ts_ms},
    worker_id String,
    model_name ${str_lc},
    model_version ${str_lc},
    batches UInt64,
    frames UInt64,
    errors UInt64,
    batch_size_mean Float64,
    batch_size_max UInt32,
    queue_wait_ms_p50 Float64,
    queue_wait_ms_p95 Float64,
    inference_ms_p50 Float64,
    inference_ms_p95 Float64,
    frames_per_s Float64,
    lag_ms_max Float64
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (model_name, model_version, worker_id, ts_ms)
--@ttl TTL toDateTime(ts) + INTERVAL 30 DAY
;

-- Alerts as published on the alerts topic (firing, then resolved).
CREATE TABLE IF NOT EXISTS ${db}.alerts
(
    alert_id String,
    rule ${str_lc},
    kind ${str_lc},
    camera_id Nullable(String),
    severity ${str_lc},
    state ${str_lc},
    message String,
    value Nullable(Float64),
    threshold Nullable(Float64),
    ts_ms UInt64,
    ts ${ts_ms}
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (alert_id, ts_ms, state);
