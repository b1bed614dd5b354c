-- Every behaviour feature of a target in one statement (docs/behavior.md).
--
-- Reads `target` and the behaviour family queries as CTEs named after them;
-- store.behavior composes the statement (CTE order: the requires line below,
-- store.behavior.CTES) and binds the documented constants of store.behavior
-- and store.features.
--
-- Its select list is get_behavior_features' keys and their order (store.behavior
-- reads them from the cursor, and each key's type from the registry record of
-- the column of behavior_family, behavior_segments or all_features that
-- materialises it). It names the features a second time (their definitions are
-- those families' columns), in an order of its own: the segment scores sit
-- between loyalty_trend and risk_score, and behavior_family's
-- behavior_purchase_frequency is the key purchase_frequency.

-- name: behavior_features
-- requires: behavior_purchase_local, behavior_purchase_seasons, behavior_purchase_season_stats, behavior_purchase, behavior_engagement, behavior_interaction_stream, behavior_search, behavior_shopping, behavior_device, behavior_loyalty_counts, behavior_temporal, behavior_rfm_population, behavior_rfm_ranks, behavior_rfm_scores, behavior_segments, purchase_features, session_features, cart_features, support_features, all_features, behavior_retention
SELECT
    t.target_id AS target_id,
    -- purchase family (behavior_purchase.sql)
    pu.total_purchases, pu.avg_purchase_value, pu.purchase_frequency, pu.purchase_consistency,
    tm.seasonal_purchase_pattern,  -- with the local-time features (behavior_temporal.sql)
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

-- family: behavior_family
-- order: 90
-- tables: purchases, sessions, interactions, purchase_attributions, cart_events, support_interactions
-- requires: behavior_purchase_local, behavior_purchase_seasons, behavior_purchase_season_stats, behavior_purchase, behavior_engagement, behavior_interaction_stream, behavior_search, behavior_shopping, behavior_device, behavior_loyalty_counts, behavior_temporal, purchase_features, session_features, cart_features, support_features, all_features, behavior_retention
-- keyed: behavior_purchase, behavior_engagement, behavior_search, behavior_shopping, behavior_device, behavior_temporal, behavior_retention
-- edges days: 30, 61, 90, 180
-- edge tables: purchases, cart_events, support_interactions
-- reads windows: no
-- edge query: behavior_family_edges
-- edge requires: purchase_features, session_features, cart_features, support_features, all_features, behavior_retention, behavior_loyalty_counts
-- added by: issue 5 (behaviour features)
-- window: all events at or before as_of (no window); docs/behavior.md
-- The behaviour features materialized by store.materialize (catalog family
-- behavior_family, all FIXED columns): every feature of behavior_features
-- except the population-relative ones (family behavior_segments) and the seed
-- retention flags (already columns of customer_features). Column names are
-- the catalog names: purchase_frequency is behavior_purchase_frequency here.
-- Values depend on as_of only through the window edges 30, 61, 90 and 180 days.
SELECT
    t.target_id AS target_id,
    -- total_purchases: Number of purchases.; integer, count; 0 when none
    pu.total_purchases,
    -- avg_purchase_value: Mean order value.; real, currency units; NULL when no purchase
    pu.avg_purchase_value,
    -- behavior_purchase_frequency: get_behavior_features 'purchase_frequency': purchases * 30 / max(days from first to last purchase, 1).; real, purchases per 30 days; 0.0 when no purchase
    pu.purchase_frequency AS behavior_purchase_frequency,
    -- purchase_consistency: 1 / (1 + CV^2) of the gaps between consecutive purchases (1 = perfectly regular).; real, ratio 0..1; NULL with fewer than 2 purchases
    pu.purchase_consistency,
    -- seasonal_purchase_pattern: The local season with most purchases (ties: earliest first purchase, then name).; text, winter/spring/summer/autumn; NULL when no purchase
    tm.seasonal_purchase_pattern,
    -- total_sessions: Number of sessions.; integer, count; 0 when none
    en.total_sessions,
    -- avg_session_duration: Mean session duration.; real, seconds; NULL when no session
    en.avg_session_duration,
    -- page_views_per_session: Mean page views per session (sessions.page_views, else its page-type interactions).; real, page views; NULL when no session has known page views
    en.page_views_per_session,
    -- bounce_rate: Share of sessions with at most 1 page view.; real, ratio 0..1; NULL when no session has known page views
    en.bounce_rate,
    -- engagement_score: 0.4 min(sessions/20,1) + 0.3 min(mean duration/600 s,1) + 0.3 min(page views per session/10,1).; real, score 0..1; 0.0 when no session
    en.engagement_score,
    -- search_frequency: Searches * 30 / max(days from first to last interaction, 1).; real, searches per 30 days; 0.0 when no interaction
    se.search_frequency,
    -- search_query_diversity: Distinct normalized queries / searches with a query.; real, ratio 0..1; NULL when no search has a query
    se.search_query_diversity,
    -- product_discovery_method: Most common path to purchased products (interaction before first touch within 30 min), else most common attribution source.; text, search/category_browse/direct/attribution:<source>; NULL when no purchase interaction and no attribution
    se.product_discovery_method,
    -- category_exploration: Distinct categories over all interactions.; integer, count; 0 when none
    se.category_exploration,
    -- cart_abandonment_rate: Share of sessions with add_to_cart and no purchase (else abandoned share of cart_events).; real, ratio 0..1; NULL without cart sessions and cart events
    sh.cart_abandonment_rate,
    -- checkout_completion_rate: Share of sessions with a checkout that also have a purchase.; real, ratio 0..1; NULL when no checkout session
    sh.checkout_completion_rate,
    -- product_comparison_behavior: Share of product-viewing sessions with at least 2 distinct products viewed.; real, ratio 0..1; NULL when no session with product views
    sh.product_comparison_behavior,
    -- impulse_purchase_tendency: Share of product purchases made at most 10 minutes after the product's first touch.; real, ratio 0..1; NULL when no purchase interaction with a product
    sh.impulse_purchase_tendency,
    -- preferred_device: Most common session device other than 'unknown' (ties: seen first, then name).; text, device name; NULL when no session with a known device
    dv.preferred_device,
    -- channel_preference: Most common session channel (channel, else referrer; ties: seen first, then name).; text, channel or referrer; NULL when no session has one
    dv.channel_preference,
    -- mobile_usage_pattern: Share of sessions on mobile, tablet, smartphone or phone (ASCII case-insensitive).; real, ratio 0..1; NULL when no session
    dv.mobile_usage_pattern,
    -- desktop_usage_pattern: Share of sessions on desktop, laptop or pc (ASCII case-insensitive).; real, ratio 0..1; NULL when no session
    dv.desktop_usage_pattern,
    -- preferred_shopping_time: Local hour with most purchases, in the store's timezone (ties: earliest first purchase, then hour).; integer, local hour 0-23; NULL when no purchase
    tm.preferred_shopping_time,
    -- shopping_day_preference: Local weekday with most purchases, in the store's timezone (same tie rule).; integer, local weekday 0=Monday..6=Sunday; NULL when no purchase
    tm.shopping_day_preference,
    -- seasonal_behavior: (Share of purchases in the most common season - 0.25) / 0.75.; real, ratio 0..1; NULL when no purchase
    tm.seasonal_behavior,
    -- loyalty_trend: Purchase rate in the last 90 days minus that in the 90 days before.; real, purchases per 30 days (difference); 0.0 when none; window: purchases in the 180 days up to as_of, split at as_of - 90 days
    tm.loyalty_trend,
    -- risk_score: 25 x raised flags among recency_risk and the seed's declining, support and cart risks; rule-based, NOT a probability: in place of churn_probability, which is not built (no predictive models).; integer, points 0..100; 0 when no flag is raised; window: the seed's 30- and 90-day rule windows and the last purchase
    rt.risk_score,
    -- historical_value: Sum of order values to date: in place of lifetime_value_prediction, which is not built (no predictive models).; real, currency units; 0.0 when no purchase
    pu.historical_value,
    -- recency_risk: The last purchase is more than 60 whole days before as_of.; boolean, 0/1; 0 when no purchase; window: the last purchase at or before as_of
    rt.recency_risk
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
-- behavior_retention (behavior_segmentation.sql, over all_features)
-- and behavior_loyalty_counts (behavior_temporal.sql).
-- Reads the rules of behavior_loyalty_counts (loyalty_trend) and behavior_retention
-- (tests/test_refresh.py checks refresh equals a full materialize).
SELECT
    t.target_id AS target_id,
    -- loyalty_trend: as in behavior_temporal (behavior_loyalty_counts); purchases per 30 days; 0.0 when none
    COALESCE(lt.loyalty_trend, 0.0) AS loyalty_trend,
    -- risk_score: as in behavior_retention; integer 0..100
    rt.risk_score AS risk_score,
    -- recency_risk: as in all_features; 0/1
    rt.recency_risk AS recency_risk
FROM target AS t
JOIN behavior_retention AS rt ON rt.target_id = t.target_id
LEFT JOIN behavior_loyalty_counts AS lt ON lt.target_id = t.target_id

-- name: behavior_family_edges_all_features
-- The relation all_features of behavior_family_edges in a refresh (store.refresh,
-- in place of the family all_features): the columns behavior_retention reads,
-- from the row the same refresh computed for the target (temp.all_features,
-- staged when all_features was recomputed for it) or else from the target's
-- stored row, whose all_features values still hold at the new as_of (refresh
-- recomputes a family for every customer whose events crossed one of its
-- edges). recency_risk, a helper of all_features, is stored as a column of
-- behavior_family. So the edge query does not compute all_features and the
-- four seed families a second time (0.41 s of a 2.8 s refresh at 100,000
-- customers, 4.5-8.1 s at 1,000,000).
SELECT
    t.target_id AS target_id,
    -- recency_risk, declining_engagement, support_risk, cart_abandonment_risk, retention_concern: as in all_features; 0/1
    CASE WHEN a.target_id IS NULL THEN o.recency_risk ELSE a.recency_risk END AS recency_risk,
    CASE WHEN a.target_id IS NULL THEN o.declining_engagement ELSE a.declining_engagement END AS declining_engagement,
    CASE WHEN a.target_id IS NULL THEN o.support_risk ELSE a.support_risk END AS support_risk,
    CASE WHEN a.target_id IS NULL THEN o.cart_abandonment_risk ELSE a.cart_abandonment_risk END AS cart_abandonment_risk,
    CASE WHEN a.target_id IS NULL THEN o.retention_concern ELSE a.retention_concern END AS retention_concern
FROM target AS t
LEFT JOIN temp.all_features AS a ON a.target_id = t.target_id
LEFT JOIN main.customer_features_stored AS o ON o.shop_id = :shop_id AND o.customer_id = t.customer_id

