-- Issue 15 item 2: the days on which each customer had events, per event table, so that
-- refresh() finds the customers whose events crossed a window edge by a range of days
-- (sql/materialize.sql, refresh_hits) instead of a walk of every event of the shop.
--
-- * event_days: one row per (shop, event table, day, customer) with at least one event of
--   that table on that day. It is a superset: every run (store.runs.finish) adds the days of
--   the customers logged in changed_customers before it consumes the log
--   (event_days_changed), and no row is removed when its events are deleted or moved, so a
--   day can be listed without events; refresh_hits checks each customer it finds against
--   the events themselves. Ingest is unchanged: the change log's triggers are its only
--   per-event cost.
CREATE TABLE event_days (
    shop_id       TEXT NOT NULL,
    events_table  TEXT NOT NULL,     -- the event table's name (purchases, sessions, ...)
    day           INTEGER NOT NULL,  -- event_time_us / 86400000000: whole days since 1970-01-01 UTC (SQLite's integer division)
    customer_id   TEXT NOT NULL,
    PRIMARY KEY (shop_id, events_table, day, customer_id)
) WITHOUT ROWID;

-- The days of the events already in the store, every event table (a store migrated here may
-- hold a snapshot whose change log is consumed), sorted into the key's order so that it appends.
INSERT OR IGNORE INTO event_days (shop_id, events_table, day, customer_id)
SELECT shop_id, events_table, event_time_us / 86400000000, customer_id FROM (
    SELECT shop_id, 'purchases' AS events_table, event_time_us, customer_id FROM purchases
    UNION ALL SELECT shop_id, 'sessions', event_time_us, customer_id FROM sessions
    UNION ALL SELECT shop_id, 'cart_events', event_time_us, customer_id FROM cart_events
    UNION ALL SELECT shop_id, 'support_interactions', event_time_us, customer_id FROM support_interactions
    UNION ALL SELECT shop_id, 'refunds', event_time_us, customer_id FROM refunds
    UNION ALL SELECT shop_id, 'interactions', event_time_us, customer_id FROM interactions
    UNION ALL SELECT shop_id, 'purchase_attributions', event_time_us, customer_id FROM purchase_attributions
) ORDER BY 1, 2, 3, 4;
