-- Behaviour features: shopping patterns family. See purchases.sql for
-- `target`, docs/behavior.md for every definition and constant.
-- Parameters (documented constants of store.behavior):
--   :shop_id
--   :impulse_window_us         a purchase within this time of the product's first touch is an impulse purchase (10 min)
--   :comparison_min_products   distinct products viewed in a session that make it a comparison session (2)
-- Reads the CTE behavior_interaction_stream (behavior_search.sql): the
-- target's interactions at or before as_of. Session-level features group
-- interactions by session_id; interactions without a session id are left out of them.

-- name: behavior_shopping
-- requires: behavior_interaction_stream
SELECT
    t.target_id AS target_id,
    -- cart_abandonment_rate: share of sessions with an add_to_cart that have no purchase; without
    --   such sessions, abandoned / all cart events (cart_events table) at or before as_of; ratio 0..1; NULL when neither exists
    COALESCE(ss.cart_sessions_abandoned * 1.0 / NULLIF(ss.cart_sessions, 0), ce.abandoned_share) AS cart_abandonment_rate,
    -- checkout_completion_rate: share of sessions with a checkout that also have a purchase; ratio 0..1; NULL when no session has a checkout
    ss.checkout_sessions_completed * 1.0 / NULLIF(ss.checkout_sessions, 0) AS checkout_completion_rate,
    -- product_comparison_behavior: share of sessions with a product_view (with product id) where at least :comparison_min_products distinct products were viewed; ratio 0..1; NULL when no such session
    ss.comparison_sessions * 1.0 / NULLIF(ss.viewing_sessions, 0) AS product_comparison_behavior,
    -- impulse_purchase_tendency: share of purchase interactions (with product id) made at most :impulse_window_us after the first interaction with that product; ratio 0..1; NULL when no such purchase
    ip.impulse * 1.0 / NULLIF(ip.purchases, 0) AS impulse_purchase_tendency
FROM target AS t
LEFT JOIN (
    SELECT target_id,
           SUM(has_cart) AS cart_sessions,
           SUM(has_cart AND NOT has_purchase) AS cart_sessions_abandoned,
           SUM(has_checkout) AS checkout_sessions,
           SUM(has_checkout AND has_purchase) AS checkout_sessions_completed,
           SUM(viewed_products > 0) AS viewing_sessions,
           SUM(viewed_products >= :comparison_min_products) AS comparison_sessions
    FROM (
        SELECT target_id, session_id,
               MAX(event_type = 'add_to_cart') AS has_cart,
               MAX(event_type = 'checkout') AS has_checkout,
               MAX(event_type = 'purchase') AS has_purchase,
               COUNT(DISTINCT product_id) FILTER (WHERE event_type = 'product_view') AS viewed_products
        FROM behavior_interaction_stream
        WHERE session_id IS NOT NULL
        GROUP BY target_id, session_id
    )
    GROUP BY target_id
) AS ss ON ss.target_id = t.target_id
LEFT JOIN (
    SELECT t2.target_id AS target_id, AVG(c.event_type = 'abandoned') AS abandoned_share
    FROM target AS t2
    CROSS JOIN cart_events AS c  -- the targets are the outer loop
    WHERE c.shop_id = :shop_id
      AND c.customer_id = t2.customer_id
      AND c.event_time_us <= t2.as_of_us
    GROUP BY t2.target_id
) AS ce ON ce.target_id = t.target_id
LEFT JOIN (
    SELECT target_id, COUNT(*) AS purchases,
           COUNT(*) FILTER (WHERE event_time_us - first_touch_us <= :impulse_window_us) AS impulse
    FROM behavior_interaction_stream
    WHERE event_type = 'purchase' AND product_id IS NOT NULL
    GROUP BY target_id
) AS ip ON ip.target_id = t.target_id
