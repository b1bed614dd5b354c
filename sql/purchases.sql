-- Purchase features.
--
-- Every feature query reads a relation named `target` with columns
-- (target_id, customer_id, as_of_us): one row per customer to answer for,
-- each with its own point in time. The store supplies it as a one-row CTE for
-- a single customer, or as a temporary table for a cohort.
-- Shared parameters:
--   :shop_id          the store's shop
--   :window_us        window length in microseconds; NULL = all time up to as_of
--   :frequency_us     length of the frequency window in microseconds
--   :frequency_days   the same in days (frequency = count / (days / 30))
--   :short_window_us  30 days, :long_window_us 90 days (retention rules)
-- An event counts only when event_time_us <= as_of_us; a window keeps events
-- with event_time_us >= as_of_us - length (both ends inclusive).

-- family: purchase_features
-- order: 10
-- tables: purchases
-- edges days: 30, 90
-- helpers: purchase_count_short, purchase_count_long
-- table only: purchase_count, last_purchase_us
-- derived: purchase_recency_days = (as_of_us - last_purchase_us) / 86400000000
SELECT
    t.target_id AS target_id,
    -- purchase_count: Number of purchases in the window.; integer, count; 0 when none
    COUNT(p.event_time_us) FILTER (
        WHERE :window_us IS NULL OR p.event_time_us >= t.as_of_us - :window_us
    ) AS purchase_count,
    -- purchase_frequency: Purchases in the window divided by the window length in 30-day months.; real, purchases per 30 days; 0.0 when none; window: frequency
    CASE WHEN :frequency_days > 0 THEN
        COUNT(p.event_time_us) FILTER (WHERE p.event_time_us >= t.as_of_us - :frequency_us)
        / (:frequency_days / 30.0)
    ELSE 0.0 END AS purchase_frequency,
    -- average_order_value: Mean order value of the purchases in the window.; real, currency units; 0.0 when none
    COALESCE(AVG(p.order_value) FILTER (
        WHERE :window_us IS NULL OR p.event_time_us >= t.as_of_us - :window_us
    ), 0.0) AS average_order_value,
    -- purchase_recency_days: Whole days (floor) from the last purchase at or before as_of to as_of.; integer, days; NULL when no purchase; window: all time
    --   (derived: the derived line above is its definition, computed after this query's
    --   columns from last_purchase_us and the target's as_of_us, and when customer_features is read)
    -- total_purchase_value: Sum of the order values of the purchases in the window.; real, currency units; 0.0 when none
    TOTAL(p.order_value) FILTER (
        WHERE :window_us IS NULL OR p.event_time_us >= t.as_of_us - :window_us
    ) AS total_purchase_value,
    -- purchase_count_short: Purchases in the 30 days up to as_of (read by the retention rules).; integer, count; 0 when none
    COUNT(p.event_time_us) FILTER (WHERE p.event_time_us >= t.as_of_us - :short_window_us) AS purchase_count_short,
    -- purchase_count_long: Purchases in the 90 days up to as_of (read by the retention rules).; integer, count; 0 when none
    COUNT(p.event_time_us) FILTER (WHERE p.event_time_us >= t.as_of_us - :long_window_us) AS purchase_count_long,
    -- last_purchase_us: Time of the last purchase at or before as_of.; integer, microseconds since 1970-01-01 UTC; NULL when no purchase; window: all time
    MAX(p.event_time_us) AS last_purchase_us
FROM target AS t
LEFT JOIN purchases AS p
    ON p.shop_id = :shop_id
   AND p.customer_id = t.customer_id
   AND p.event_time_us <= t.as_of_us
GROUP BY t.target_id
