-- Support features. See purchases.sql for `target` and the shared parameters.

-- family: support_features
-- order: 60
-- tables: support_interactions
-- edges days: 30
-- helpers: support_ticket_count_short, escalation_ratio_short
SELECT
    t.target_id AS target_id,
    -- support_ticket_count: Number of support interactions in the window.; integer, count; 0 when none
    COUNT(s.event_time_us) FILTER (
        WHERE :window_us IS NULL OR s.event_time_us >= t.as_of_us - :window_us
    ) AS support_ticket_count,
    -- average_response_time_hours: Mean response time of the tickets in the window that have one.; real, hours; NULL when no ticket in the window has a response time
    AVG(s.response_time_hours) FILTER (
        WHERE :window_us IS NULL OR s.event_time_us >= t.as_of_us - :window_us
    ) AS average_response_time_hours,
    -- escalation_count: Number of escalated tickets in the window.; integer, count; 0 when none
    COUNT(s.event_time_us) FILTER (
        WHERE s.escalated = 1 AND (:window_us IS NULL OR s.event_time_us >= t.as_of_us - :window_us)
    ) AS escalation_count,
    -- escalation_ratio: Escalated tickets divided by all tickets in the window.; real, ratio 0..1; 0.0 when no ticket
    COALESCE(AVG(s.escalated * 1.0) FILTER (
        WHERE :window_us IS NULL OR s.event_time_us >= t.as_of_us - :window_us
    ), 0.0) AS escalation_ratio,
    -- support_ticket_count_short: Tickets in the 30 days up to as_of (read by the retention rules).; integer, count; 0 when none
    COUNT(s.event_time_us) FILTER (WHERE s.event_time_us >= t.as_of_us - :short_window_us) AS support_ticket_count_short,
    -- escalation_ratio_short: Escalated / all tickets in the 30 days up to as_of (read by the retention rules).; real, ratio 0..1; 0.0 when none
    COALESCE(AVG(s.escalated * 1.0) FILTER (
        WHERE s.event_time_us >= t.as_of_us - :short_window_us
    ), 0.0) AS escalation_ratio_short
FROM target AS t
LEFT JOIN support_interactions AS s
    ON s.shop_id = :shop_id
   AND s.customer_id = t.customer_id
   AND s.event_time_us <= t.as_of_us
   -- only the events some column counts (the window and the 30-day helpers; every
   -- event when the window is all time): a range of the primary key
   AND s.event_time_us >= IFNULL(t.as_of_us - MAX(:window_us, :short_window_us), -9223372036854775808)
GROUP BY t.target_id
