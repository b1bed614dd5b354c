-- Behaviour features: purchase family. See purchases.sql for `target`,
-- docs/behavior.md for every definition and constant.
-- Parameters (documented constants of store.behavior):
--   :shop_id
--   :min_active_span_days   floor of the active span in purchase_frequency (1 day)
-- Every purchase at or before the target's as_of counts (no window).
-- Its season feature, seasonal_purchase_pattern, is computed with the other
-- local-time features by behavior_temporal (behavior_temporal.sql).

-- name: behavior_purchase
SELECT
    t.target_id AS target_id,
    -- total_purchases: purchases at or before as_of; integer; 0 when none
    COALESCE(agg.n, 0) AS total_purchases,
    -- avg_purchase_value: mean order value; currency units; NULL when no purchase
    agg.mean_value AS avg_purchase_value,
    -- purchase_frequency: total_purchases per 30 days over the active span (first .. last purchase, at least :min_active_span_days days); purchases per 30 days; 0.0 when none
    CASE WHEN agg.n IS NULL THEN 0.0
         ELSE agg.n * 30.0 / MAX((agg.last_us - agg.first_us) / 86400000000.0, :min_active_span_days)
    END AS purchase_frequency,
    -- purchase_consistency: 1 / (1 + CV^2) of the gaps between consecutive purchases (CV = population standard deviation / mean gap); 1.0 when every gap is 0; ratio 0..1; NULL with fewer than 2 purchases
    CASE WHEN gp.n_gaps IS NULL THEN NULL
         WHEN gp.mean_gap = 0 THEN 1.0
         ELSE gp.mean_gap * gp.mean_gap / (gp.mean_gap * gp.mean_gap + gp.var_gap)
    END AS purchase_consistency,
    -- historical_value: sum of order values at or before as_of (value to date; replaces lifetime_value_prediction); currency units; 0.0 when none
    COALESCE(agg.total_value, 0.0) AS historical_value,
    -- first_purchase_us: first purchase at or before as_of; microseconds since the epoch; NULL when none
    agg.first_us AS first_purchase_us,
    -- last_purchase_us: last purchase at or before as_of; microseconds since the epoch; NULL when none
    agg.last_us AS last_purchase_us
FROM target AS t
LEFT JOIN (
    SELECT t1.target_id AS target_id, COUNT(*) AS n, AVG(p.order_value) AS mean_value,
           TOTAL(p.order_value) AS total_value,
           MIN(p.event_time_us) AS first_us, MAX(p.event_time_us) AS last_us
    FROM target AS t1
    CROSS JOIN purchases AS p  -- the targets are the outer loop
    WHERE p.shop_id = :shop_id
      AND p.customer_id = t1.customer_id
      AND p.event_time_us <= t1.as_of_us
    GROUP BY t1.target_id
) AS agg ON agg.target_id = t.target_id
LEFT JOIN (
    -- gaps in days between consecutive purchases (ordered by time, then order id); two-pass variance
    SELECT target_id, COUNT(*) AS n_gaps, AVG(gap) AS mean_gap, AVG((gap - mean_all) * (gap - mean_all)) AS var_gap
    FROM (
        SELECT target_id, gap, AVG(gap) OVER (PARTITION BY target_id) AS mean_all
        FROM (
            SELECT t2.target_id AS target_id,
                   (p.event_time_us - LAG(p.event_time_us) OVER (
                        PARTITION BY t2.target_id ORDER BY p.event_time_us, p.event_id)) / 86400000000.0 AS gap
            FROM target AS t2
            CROSS JOIN purchases AS p  -- the targets are the outer loop
            WHERE p.shop_id = :shop_id
              AND p.customer_id = t2.customer_id
              AND p.event_time_us <= t2.as_of_us
        )
        WHERE gap IS NOT NULL
    )
    GROUP BY target_id
) AS gp ON gp.target_id = t.target_id
