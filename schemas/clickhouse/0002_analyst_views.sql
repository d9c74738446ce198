-- Views for analysts: they apply FINAL (the latest version of each window), so nobody
-- querying counts needs to know about ReplacingMergeTree.

CREATE VIEW IF NOT EXISTS ${db}.counts_latest AS
SELECT camera_id, rule, class_name, direction, window_start, window_end, count, version, final
FROM ${db}.counts FINAL;

CREATE VIEW IF NOT EXISTS ${db}.counts_hourly AS
SELECT camera_id, rule, class_name, direction, toStartOfHour(window_start) AS hour, sum(count) AS count
FROM ${db}.counts FINAL
GROUP BY camera_id, rule, class_name, direction, hour;

CREATE VIEW IF NOT EXISTS ${db}.counts_daily AS
SELECT camera_id, rule, class_name, direction, toDate(window_start) AS day, sum(count) AS count
FROM ${db}.counts FINAL
GROUP BY camera_id, rule, class_name, direction, day;

CREATE VIEW IF NOT EXISTS ${db}.occupancy_hourly AS
SELECT camera_id, rule, class_name, toStartOfHour(window_start) AS hour,
       max(occupancy_max) AS occupancy_max,
       sum(occupancy_mean * samples) / sum(samples) AS occupancy_mean
FROM ${db}.occupancy FINAL
GROUP BY camera_id, rule, class_name, hour;
