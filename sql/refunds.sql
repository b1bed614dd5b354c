-- Refunds and cancellations (credit notes). See purchases.sql for `target`
-- and the shared parameters (:shop_id, :window_us).

-- name: insert_refund
-- INSERT OR IGNORE: a refund whose (shop_id, event_id) is already stored is a duplicate.
INSERT OR IGNORE INTO refunds (shop_id, customer_id, event_time_us, event_id, refund_value, order_id)
VALUES (?, ?, ?, ?, ?, ?);

-- name: refund_features
SELECT
    t.target_id AS target_id,
    -- refund_count: refunds / cancellations in the window; integer; 0 when none
    COUNT(r.event_time_us) FILTER (
        WHERE :window_us IS NULL OR r.event_time_us >= t.as_of_us - :window_us
    ) AS refund_count,
    -- refund_value: sum of refunded values in the window; currency units; 0.0 when none
    TOTAL(r.refund_value) FILTER (
        WHERE :window_us IS NULL OR r.event_time_us >= t.as_of_us - :window_us
    ) AS refund_value
FROM target AS t
LEFT JOIN refunds AS r
    ON r.shop_id = :shop_id
   AND r.customer_id = t.customer_id
   AND r.event_time_us <= t.as_of_us
GROUP BY t.target_id
