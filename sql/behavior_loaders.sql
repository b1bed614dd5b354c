-- Loader outputs for the behaviour event kinds (issue 5). Run by
-- store.loaders after the preset's groups are built (see sql/loads.sql);
-- parameters :shop_id, :load_id.

-- name: rees46_interactions
-- Every staged REES46 event of a new session (group outcome 'session')
-- becomes one interaction: view -> product_view, cart -> add_to_cart,
-- remove_from_cart and purchase as they are; session_id = the stored session's
-- event id; product_id as given; category = category_code, else category_id;
-- page_type 'product'; event id = '<session event id>#<n>', n = 1, 2, ... in
-- (time, line hash) order within the session, so a reload (the session is then a
-- duplicate) inserts nothing and ids never collide across sessions.
INSERT OR IGNORE INTO interactions (shop_id, customer_id, event_time_us, event_id, session_id, event_type,
                                    page_type, product_id, category, search_query, view_duration_seconds, device_type)
SELECT :shop_id, s.customer_id, s.event_time_us,
       g.event_id || '#' || ROW_NUMBER() OVER (PARTITION BY g.event_id ORDER BY s.event_time_us, s.line_hash),
       g.event_id,
       CASE s.event_type WHEN 'view' THEN 'product_view' WHEN 'cart' THEN 'add_to_cart' ELSE s.event_type END,
       'product', s.product_id, COALESCE(s.category_code, s.category_id), NULL, NULL, NULL
FROM temp.load_groups AS g
JOIN load_staging_rees46 AS s
    ON s.load_id = :load_id
   AND s.user_session = g.session_key
   AND s.customer_id = g.customer_id
WHERE g.outcome = 'session'
