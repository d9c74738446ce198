-- Frames an inference worker skipped as older than inference.max_lag_ms (no detections),
-- per interval and model, beside the frames it served: freshness bought with completeness.
ALTER TABLE ${db}.inference_stats ADD COLUMN skipped UInt64 DEFAULT 0 AFTER errors;
