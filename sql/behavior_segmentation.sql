-- Behaviour features: segmentation family. See purchases.sql for `target`,
-- docs/behavior.md for every definition and constant.
-- Parameters (documented constants of store.behavior):
--   :shop_id
--   :rfm_bins               number of score classes (5: scores 1..5)
--   :new_customer_us        'new': first purchase at most this long before as_of (30 days)
--   :recency_concern_days   recency_risk: last purchase more than this many days ago (60, the seed constant)
--   :risk_points            points per raised flag in risk_score (25; 4 flags -> 0..100)
-- Reads the CTEs behavior_purchase (first/last purchase) and all_features
-- (the seed retention flags, computed with the seed's default parameters).

-- name: behavior_rfm_population
-- One row per (as_of of the targets, shop customer with a purchase at or
-- before it): the population the RFM scores are ranked in.
SELECT
    a.as_of_us AS as_of_us,
    p.customer_id AS customer_id,
    -- recency_us: as_of - last purchase; microseconds
    a.as_of_us - MAX(p.event_time_us) AS recency_us,
    -- frequency: purchases at or before as_of; integer
    COUNT(*) AS frequency,
    -- monetary: sum of order values at or before as_of; currency units
    TOTAL(p.order_value) AS monetary
FROM (SELECT DISTINCT as_of_us FROM target) AS a
JOIN purchases AS p
    ON p.shop_id = :shop_id
   AND p.event_time_us <= a.as_of_us
GROUP BY a.as_of_us, p.customer_id

-- name: behavior_rfm_scores
-- Score of a value = 1 + floor(:rfm_bins * (customers of the population with a
-- strictly worse value) / (population size)): quantile classes by rank, ties
-- share a score, 1..:rfm_bins. Worse = longer recency, fewer purchases, less value.
SELECT
    as_of_us,
    customer_id,
    -- recency_score: 1..rfm_bins, higher = more recent; integer
    1 + (:rfm_bins * (RANK() OVER (PARTITION BY as_of_us ORDER BY recency_us DESC) - 1))
        / COUNT(*) OVER (PARTITION BY as_of_us) AS recency_score,
    -- frequency_score: 1..rfm_bins, higher = more purchases; integer
    1 + (:rfm_bins * (RANK() OVER (PARTITION BY as_of_us ORDER BY frequency) - 1))
        / COUNT(*) OVER (PARTITION BY as_of_us) AS frequency_score,
    -- monetary_score: 1..rfm_bins, higher = more value; integer
    1 + (:rfm_bins * (RANK() OVER (PARTITION BY as_of_us ORDER BY monetary) - 1))
        / COUNT(*) OVER (PARTITION BY as_of_us) AS monetary_score
FROM behavior_rfm_population

-- name: behavior_segmentation
SELECT
    t.target_id AS target_id,
    -- recency_score, frequency_score, monetary_score: RFM scores (behavior_rfm_scores); integer 1..5; NULL when no purchase
    sc.recency_score AS recency_score,
    sc.frequency_score AS frequency_score,
    sc.monetary_score AS monetary_score,
    -- customer_segment: the first rule that holds, in this order; text, never NULL:
    --   no_purchases (no purchase at or before as_of), new (first purchase within :new_customer_us),
    --   champions (R >= 4, F >= 4, M >= 4), loyal (R >= 3, F >= 4), at_risk (R <= 2, F >= 3),
    --   hibernating (R <= 2), needs_attention (everything else)
    CASE
        WHEN bp.first_purchase_us IS NULL THEN 'no_purchases'
        WHEN bp.first_purchase_us >= t.as_of_us - :new_customer_us THEN 'new'
        WHEN sc.recency_score >= 4 AND sc.frequency_score >= 4 AND sc.monetary_score >= 4 THEN 'champions'
        WHEN sc.recency_score >= 3 AND sc.frequency_score >= 4 THEN 'loyal'
        WHEN sc.recency_score <= 2 AND sc.frequency_score >= 3 THEN 'at_risk'
        WHEN sc.recency_score <= 2 THEN 'hibernating'
        ELSE 'needs_attention'
    END AS customer_segment,
    -- recency_risk: last purchase more than :recency_concern_days whole days before as_of; 0/1 (boolean); 0 when no purchase
    COALESCE(af.purchase_recency_days > :recency_concern_days, 0) AS recency_risk,
    -- declining_engagement, support_risk, cart_abandonment_risk, retention_concern: the seed retention flags (all_features.sql); 0/1 (boolean)
    af.declining_engagement AS declining_engagement,
    af.support_risk AS support_risk,
    af.cart_abandonment_risk AS cart_abandonment_risk,
    af.retention_concern AS retention_concern,
    -- risk_score: :risk_points x (recency_risk + declining_engagement + support_risk + cart_abandonment_risk); rule-based, NOT a probability; integer 0..100
    :risk_points * (COALESCE(af.purchase_recency_days > :recency_concern_days, 0)
                    + af.declining_engagement + af.support_risk + af.cart_abandonment_risk) AS risk_score,
    -- account_age_days: whole days (floor) from customers.created_at to as_of; integer; NULL when unknown or after as_of
    CASE WHEN cu.created_at_us <= t.as_of_us THEN (t.as_of_us - cu.created_at_us) / 86400000000 END
        AS account_age_days
FROM target AS t
JOIN behavior_purchase AS bp ON bp.target_id = t.target_id
JOIN all_features AS af ON af.target_id = t.target_id
LEFT JOIN behavior_rfm_scores AS sc
    ON sc.as_of_us = t.as_of_us
   AND sc.customer_id = t.customer_id
LEFT JOIN customers AS cu
    ON cu.shop_id = :shop_id
   AND cu.customer_id = t.customer_id
