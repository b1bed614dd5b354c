-- Every behaviour feature of a target in one statement (docs/behavior.md).
--
-- Reads `target` and the behaviour family queries as CTEs named after them;
-- store.behavior composes the statement (CTE order: store.behavior.CTES) and
-- binds the documented constants of store.behavior and store.features.

-- name: behavior_features
SELECT
    t.target_id AS target_id,
    -- purchase family (behavior_purchase.sql)
    pu.total_purchases, pu.avg_purchase_value, pu.purchase_frequency, pu.purchase_consistency,
    pu.seasonal_purchase_pattern,
    -- engagement family (behavior_engagement.sql)
    en.total_sessions, en.avg_session_duration, en.page_views_per_session, en.bounce_rate, en.engagement_score,
    -- search and discovery family (behavior_search.sql)
    se.search_frequency, se.search_query_diversity, se.product_discovery_method, se.category_exploration,
    -- shopping patterns family (behavior_shopping.sql)
    sh.cart_abandonment_rate, sh.checkout_completion_rate, sh.product_comparison_behavior,
    sh.impulse_purchase_tendency,
    -- device and channel family (behavior_device.sql)
    dv.preferred_device, dv.channel_preference, dv.mobile_usage_pattern, dv.desktop_usage_pattern,
    -- temporal family (behavior_temporal.sql)
    tm.preferred_shopping_time, tm.shopping_day_preference, tm.seasonal_behavior, tm.loyalty_trend,
    -- segmentation family (behavior_segmentation.sql; historical_value from behavior_purchase)
    sg.customer_segment, sg.recency_score, sg.frequency_score, sg.monetary_score, rt.risk_score,
    pu.historical_value, sg.account_age_days,
    rt.recency_risk, rt.declining_engagement, rt.support_risk, rt.cart_abandonment_risk, rt.retention_concern
FROM target AS t
JOIN behavior_purchase AS pu ON pu.target_id = t.target_id
JOIN behavior_engagement AS en ON en.target_id = t.target_id
JOIN behavior_search AS se ON se.target_id = t.target_id
JOIN behavior_shopping AS sh ON sh.target_id = t.target_id
JOIN behavior_device AS dv ON dv.target_id = t.target_id
JOIN behavior_temporal AS tm ON tm.target_id = t.target_id
JOIN behavior_segments AS sg ON sg.target_id = t.target_id
JOIN behavior_retention AS rt ON rt.target_id = t.target_id
ORDER BY t.target_id

-- name: behavior_family
-- The behaviour features materialized by store.materialize (catalog family
-- behavior_family, all FIXED columns): every feature of behavior_features
-- except the population-relative ones (family behavior_segments) and the seed
-- retention flags (already columns of customer_features). Column names are
-- the catalog names: purchase_frequency is behavior_purchase_frequency here.
-- Values depend on as_of only through the window edges 30, 61, 90 and 180 days.
SELECT
    t.target_id AS target_id,
    pu.total_purchases, pu.avg_purchase_value, pu.purchase_frequency AS behavior_purchase_frequency,
    pu.purchase_consistency, pu.seasonal_purchase_pattern,
    en.total_sessions, en.avg_session_duration, en.page_views_per_session, en.bounce_rate, en.engagement_score,
    se.search_frequency, se.search_query_diversity, se.product_discovery_method, se.category_exploration,
    sh.cart_abandonment_rate, sh.checkout_completion_rate, sh.product_comparison_behavior,
    sh.impulse_purchase_tendency,
    dv.preferred_device, dv.channel_preference, dv.mobile_usage_pattern, dv.desktop_usage_pattern,
    tm.preferred_shopping_time, tm.shopping_day_preference, tm.seasonal_behavior, tm.loyalty_trend,
    rt.risk_score, pu.historical_value, rt.recency_risk
FROM target AS t
JOIN behavior_purchase AS pu ON pu.target_id = t.target_id
JOIN behavior_engagement AS en ON en.target_id = t.target_id
JOIN behavior_search AS se ON se.target_id = t.target_id
JOIN behavior_shopping AS sh ON sh.target_id = t.target_id
JOIN behavior_device AS dv ON dv.target_id = t.target_id
JOIN behavior_temporal AS tm ON tm.target_id = t.target_id
JOIN behavior_retention AS rt ON rt.target_id = t.target_id

-- name: behavior_family_edges
-- The columns of behavior_family that depend on as_of through its window
-- edges (catalog Family.edge_query): refresh() computes only these for a
-- customer whose only change is an event crossing one of the edges, and keeps
-- the customer's other behavior_family columns. Reads the CTEs
-- behavior_retention_flags and behavior_retention (behavior_segmentation.sql)
-- and behavior_loyalty_counts (behavior_temporal.sql).
-- Same formulas as behavior_temporal (loyalty_trend) and behavior_retention
-- (tests/test_refresh.py checks refresh equals a full materialize).
SELECT
    t.target_id AS target_id,
    -- loyalty_trend: as in behavior_temporal: purchases per 30 days in the recent half minus the earlier half; purchases per 30 days; 0.0 when none
    (COALESCE(lt.recent, 0) - COALESCE(lt.earlier, 0)) / (:loyalty_half_days / 30.0) AS loyalty_trend,
    -- risk_score: as in behavior_retention; integer 0..100
    rt.risk_score AS risk_score,
    -- recency_risk: as in behavior_retention_flags; 0/1
    rt.recency_risk AS recency_risk
FROM target AS t
JOIN behavior_retention AS rt ON rt.target_id = t.target_id
LEFT JOIN behavior_loyalty_counts AS lt ON lt.target_id = t.target_id
