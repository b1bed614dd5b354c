-- A user's own feature family (docs/feature_store.md, "Your own families").
-- Register it with: caf --features docs/examples/ materialize
-- (or CustomerActivityFeatures(db, feature_paths=["docs/examples/"])).
-- The store binds :shop_id, :window_us (NULL = all time) and :as_of_us, and supplies
-- target(target_id, customer_id, as_of_us): one row per customer to answer for.

-- family: big_order_features
-- order: 1000
-- tables: purchases, refunds
SELECT
    t.target_id AS target_id,
    -- big_order_count: Orders above 100 in the window.; integer, count; 0 when none
    COUNT(p.event_time_us) FILTER (
        WHERE p.order_value > 100
          AND (:window_us IS NULL OR p.event_time_us >= t.as_of_us - :window_us)
    ) AS big_order_count,
    -- big_order_value: Sum of the order values of the orders above 100 in the window.; real, currency units; 0.0 when none
    TOTAL(p.order_value) FILTER (
        WHERE p.order_value > 100
          AND (:window_us IS NULL OR p.event_time_us >= t.as_of_us - :window_us)
    ) AS big_order_value,
    -- refunded_order_share: Share of the orders up to as_of with a refund of that order id recorded up to as_of.; real, ratio 0..1; 0.0 when no order; window: all time
    COALESCE(AVG(EXISTS (
        SELECT 1 FROM refunds AS r
        WHERE r.shop_id = :shop_id
          AND r.customer_id = t.customer_id
          AND r.order_id = p.event_id
          AND r.event_time_us <= t.as_of_us
    )) FILTER (WHERE p.event_time_us IS NOT NULL), 0.0) AS refunded_order_share
FROM target AS t
LEFT JOIN purchases AS p
    ON p.shop_id = :shop_id
   AND p.customer_id = t.customer_id
   AND p.event_time_us <= t.as_of_us
GROUP BY t.target_id
