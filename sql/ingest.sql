-- Statements that write events. Values are always bound parameters.
-- INSERT OR IGNORE: an event whose (shop_id, event_id) is already stored is a
-- duplicate and is counted as such, never written twice.

-- name: insert_purchase
INSERT OR IGNORE INTO purchases (shop_id, customer_id, event_time_us, event_id, order_value)
VALUES (?, ?, ?, ?, ?);

-- name: insert_session
INSERT OR IGNORE INTO sessions (shop_id, customer_id, event_time_us, event_id, duration_seconds, device_type,
                                session_start_us, session_end_us, page_views, browser, referrer, channel)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_cart_event
INSERT OR IGNORE INTO cart_events (shop_id, customer_id, event_time_us, event_id, event_type, cart_value)
VALUES (?, ?, ?, ?, ?, ?);

-- name: insert_support_interaction
INSERT OR IGNORE INTO support_interactions (shop_id, customer_id, event_time_us, event_id, response_time_hours, escalated)
VALUES (?, ?, ?, ?, ?, ?);

-- name: upsert_customer
-- Metadata replaces what was stored before; created_at_us (migration 0004)
-- replaces it only when given (NULL keeps the stored creation time).
INSERT INTO customers (shop_id, customer_id, metadata, updated_at, created_at_us)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (shop_id, customer_id) DO UPDATE SET
    metadata = excluded.metadata,
    updated_at = excluded.updated_at,
    created_at_us = COALESCE(excluded.created_at_us, customers.created_at_us);

-- name: insert_interaction
INSERT OR IGNORE INTO interactions (shop_id, customer_id, event_time_us, event_id, session_id, event_type,
                                    page_type, product_id, category, search_query, view_duration_seconds, device_type)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_attribution
INSERT OR IGNORE INTO purchase_attributions (shop_id, customer_id, event_time_us, event_id, source, medium)
VALUES (?, ?, ?, ?, ?, ?);

-- name: insert_rejected_event
-- A rejected offer of add_*, a bulk call or load_history. Recorded once: an
-- offer already stored with the same (shop_id, kind, reason, payload) is not
-- stored again (migration 0005's unique index; the first received_at is kept),
-- so re-running the same call stores nothing twice. The caller still counts it
-- as rejected. Any other constraint failure raises.
INSERT INTO rejected_events (shop_id, kind, payload, reason, received_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (shop_id, kind, reason, payload) WHERE load_id IS NULL DO NOTHING;

-- name: history_deferred_schema
-- The objects load_history builds after moving a first load into an empty event table:
-- its unique (shop_id, event_id) index and its changed_customers insert trigger.
-- Parameters: the index name, the trigger name.
SELECT name,  -- object name; text; never null
       type,  -- 'index' or 'trigger'; text; never null
       sql    -- the CREATE statement as the migration wrote it; text; never null (filtered)
FROM sqlite_master
WHERE name IN (?, ?) AND sql IS NOT NULL
ORDER BY type, name;
