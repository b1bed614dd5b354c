-- Support features. See purchases.sql for `target` and the shared parameters.

-- name: support_features
SELECT
    t.target_id AS target_id,
    -- support_ticket_count: support interactions in the window; integer; 0 when none
    COUNT(s.event_time_us) FILTER (
        WHERE :window_us IS NULL OR s.event_time_us >= t.as_of_us - :window_us
    ) AS support_ticket_count,
    -- average_response_time_hours: mean response time over tickets in the window that have one; hours; NULL when none has one
    AVG(s.response_time_hours) FILTER (
        WHERE :window_us IS NULL OR s.event_time_us >= t.as_of_us - :window_us
    ) AS average_response_time_hours,
    -- escalation_count: escalated tickets in the window; integer; 0 when none
    COUNT(s.event_time_us) FILTER (
        WHERE s.escalated = 1 AND (:window_us IS NULL OR s.event_time_us >= t.as_of_us - :window_us)
    ) AS escalation_count,
    -- escalation_ratio: escalated / all tickets in the window; ratio 0..1; 0.0 when none
    COALESCE(AVG(s.escalated * 1.0) FILTER (
        WHERE :window_us IS NULL OR s.event_time_us >= t.as_of_us - :window_us
    ), 0.0) AS escalation_ratio,
    -- support_ticket_count_short: tickets in the 30 days up to as_of; integer
    COUNT(s.event_time_us) FILTER (WHERE s.event_time_us >= t.as_of_us - :short_window_us) AS support_ticket_count_short,
    -- escalation_ratio_short: escalated / all tickets in the 30 days up to as_of; ratio 0..1; 0.0 when none
    COALESCE(AVG(s.escalated * 1.0) FILTER (
        WHERE s.event_time_us >= t.as_of_us - :short_window_us
    ), 0.0) AS escalation_ratio_short
FROM target AS t
LEFT JOIN support_interactions AS s
    ON s.shop_id = :shop_id
   AND s.customer_id = t.customer_id
   AND s.event_time_us <= t.as_of_us
GROUP BY t.target_id
