-- Cart features. See purchases.sql for `target` and the shared parameters.

-- family: cart_features
-- order: 50
-- tables: cart_events
-- edges days: 30
-- helpers: abandoned_cart_count_short, cart_conversion_ratio_short
-- table only: cart_event_count
SELECT
    t.target_id AS target_id,
    -- cart_event_count: Number of cart events (abandoned or converted) in the window.; integer, count; 0 when none
    COUNT(c.event_time_us) FILTER (
        WHERE :window_us IS NULL OR c.event_time_us >= t.as_of_us - :window_us
    ) AS cart_event_count,
    -- abandoned_cart_count: Number of abandoned carts in the window.; integer, count; 0 when none
    COUNT(c.event_time_us) FILTER (
        WHERE c.event_type = 'abandoned'
          AND (:window_us IS NULL OR c.event_time_us >= t.as_of_us - :window_us)
    ) AS abandoned_cart_count,
    -- cart_conversion_ratio: Converted cart events divided by all cart events in the window.; real, ratio 0..1; 0.0 when no cart event
    COALESCE(AVG(c.event_type = 'converted') FILTER (
        WHERE :window_us IS NULL OR c.event_time_us >= t.as_of_us - :window_us
    ), 0.0) AS cart_conversion_ratio,
    -- abandoned_cart_value: Sum of the values of the abandoned carts in the window.; real, currency units; 0.0 when none; carts without a value are skipped
    TOTAL(c.cart_value) FILTER (
        WHERE c.event_type = 'abandoned'
          AND (:window_us IS NULL OR c.event_time_us >= t.as_of_us - :window_us)
    ) AS abandoned_cart_value,
    -- abandoned_cart_count_short: Abandoned carts in the 30 days up to as_of (read by the retention rules).; integer, count; 0 when none
    COUNT(c.event_time_us) FILTER (
        WHERE c.event_type = 'abandoned' AND c.event_time_us >= t.as_of_us - :short_window_us
    ) AS abandoned_cart_count_short,
    -- cart_conversion_ratio_short: Converted / all cart events in the 30 days up to as_of (read by the retention rules).; real, ratio 0..1; 0.0 when none
    COALESCE(AVG(c.event_type = 'converted') FILTER (
        WHERE c.event_time_us >= t.as_of_us - :short_window_us
    ), 0.0) AS cart_conversion_ratio_short
FROM target AS t
LEFT JOIN cart_events AS c
    ON c.shop_id = :shop_id
   AND c.customer_id = t.customer_id
   AND c.event_time_us <= t.as_of_us
   -- only the events some column counts (the window and the 30-day helpers; every
   -- event when the window is all time): a range of the primary key
   AND c.event_time_us >= IFNULL(t.as_of_us - MAX(:window_us, :short_window_us), -9223372036854775808)
GROUP BY t.target_id
