-- Session features. See purchases.sql for `target` and the shared parameters.

-- name: session_features
SELECT
    t.target_id AS target_id,
    -- session_count: sessions in the window; integer; 0 when none
    COUNT(s.event_time_us) FILTER (
        WHERE :window_us IS NULL OR s.event_time_us >= t.as_of_us - :window_us
    ) AS session_count,
    -- session_frequency: sessions in the frequency window per 30 days; float; 0.0 when none or when frequency_days <= 0
    CASE WHEN :frequency_days > 0 THEN
        COUNT(s.event_time_us) FILTER (WHERE s.event_time_us >= t.as_of_us - :frequency_us)
        / (:frequency_days / 30.0)
    ELSE 0.0 END AS session_frequency,
    -- average_session_duration: mean session duration in the window; seconds; 0.0 when none
    COALESCE(AVG(s.duration_seconds) FILTER (
        WHERE :window_us IS NULL OR s.event_time_us >= t.as_of_us - :window_us
    ), 0.0) AS average_session_duration,
    -- session_count_short: sessions in the 30 days up to as_of; integer
    COUNT(s.event_time_us) FILTER (WHERE s.event_time_us >= t.as_of_us - :short_window_us) AS session_count_short
FROM target AS t
LEFT JOIN sessions AS s
    ON s.shop_id = :shop_id
   AND s.customer_id = t.customer_id
   AND s.event_time_us <= t.as_of_us
GROUP BY t.target_id

-- name: session_devices
-- One row per (target, device) with sessions in the window, most used first;
-- a tie goes to the device seen first, then to the device name.
SELECT
    t.target_id AS target_id,
    -- device_type: the session's device; text; 'unknown' when none was given
    s.device_type AS device_type,
    -- session_count: sessions on this device in the window; integer
    COUNT(*) AS session_count,
    -- first_seen_us: first session on this device in the window; microseconds since the epoch
    MIN(s.event_time_us) AS first_seen_us
FROM target AS t
JOIN sessions AS s
    ON s.shop_id = :shop_id
   AND s.customer_id = t.customer_id
   AND s.event_time_us <= t.as_of_us
   AND (:window_us IS NULL OR s.event_time_us >= t.as_of_us - :window_us)
GROUP BY t.target_id, s.device_type
ORDER BY t.target_id, session_count DESC, first_seen_us, device_type
