-- Session features. See purchases.sql for `target` and the shared parameters.

-- family: session_features
-- order: 30
-- tables: sessions
-- edges days: 30
-- helpers: session_count_short
-- table only: session_count
SELECT
    t.target_id AS target_id,
    -- session_count: Number of sessions in the window.; integer, count; 0 when none
    COUNT(s.event_time_us) FILTER (
        WHERE :window_us IS NULL OR s.event_time_us >= t.as_of_us - :window_us
    ) AS session_count,
    -- session_frequency: Sessions in the window divided by the window length in 30-day months.; real, sessions per 30 days; 0.0 when none; window: frequency
    CASE WHEN :frequency_days > 0 THEN
        COUNT(s.event_time_us) FILTER (WHERE s.event_time_us >= t.as_of_us - :frequency_us)
        / (:frequency_days / 30.0)
    ELSE 0.0 END AS session_frequency,
    -- average_session_duration: Mean duration of the sessions in the window.; real, seconds; 0.0 when none
    COALESCE(AVG(s.duration_seconds) FILTER (
        WHERE :window_us IS NULL OR s.event_time_us >= t.as_of_us - :window_us
    ), 0.0) AS average_session_duration,
    -- session_count_short: Sessions in the 30 days up to as_of (read by the retention rules).; integer, count; 0 when none
    COUNT(s.event_time_us) FILTER (WHERE s.event_time_us >= t.as_of_us - :short_window_us) AS session_count_short
FROM target AS t
LEFT JOIN sessions AS s
    ON s.shop_id = :shop_id
   AND s.customer_id = t.customer_id
   AND s.event_time_us <= t.as_of_us
   -- only the events some column counts (the window, the frequency window, the 30-day
   -- helper; every event when the window is all time): a range of the primary key
   AND s.event_time_us >= IFNULL(t.as_of_us - MAX(:window_us, :frequency_us, :short_window_us), -9223372036854775808)
GROUP BY t.target_id

-- name: session_devices
-- order: 35
-- object: device_usage_pattern: Number of sessions per device in the window, most used first.; object, {device: session count}; {} when none; window: windowed
-- One row per (target, device) with sessions in the window, most used first.
-- The device tie rule is written here only: most sessions, then the device seen
-- first, then the device name (device_rank); primary_device (materialize.sql)
-- keeps the rows of rank 1.
SELECT
    t.target_id AS target_id,
    -- device_type: the session's device; text; 'unknown' when none was given
    s.device_type AS device_type,
    -- session_count: sessions on this device in the window; integer
    COUNT(*) AS session_count,
    -- first_seen_us: first session on this device in the window; microseconds since the epoch
    MIN(s.event_time_us) AS first_seen_us,
    -- device_rank: the device's place among the target's devices, 1 = most used; integer
    ROW_NUMBER() OVER (PARTITION BY t.target_id
                       ORDER BY COUNT(*) DESC, MIN(s.event_time_us), s.device_type) AS device_rank
FROM target AS t
-- CROSS JOIN (SQLite keeps its left side the outer loop): one primary key seek per
-- target, whatever the planner guesses; a scan of the shop's sessions with a target
-- lookup per session cost twice as much for every customer, and far more for a few
CROSS JOIN sessions AS s
WHERE s.shop_id = :shop_id
  AND s.customer_id = t.customer_id
  AND s.event_time_us <= t.as_of_us
  AND (:window_us IS NULL OR s.event_time_us >= t.as_of_us - :window_us)
GROUP BY t.target_id, s.device_type
-- in device_rank's order, written as its keys so that SQLite sorts once for both
ORDER BY t.target_id, session_count DESC, first_seen_us, device_type
