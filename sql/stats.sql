-- Store statistics and inspection queries, used by `caf stats`, `caf rejected`
-- and `caf features` (store/stats.py). Every query is scoped to one shop
-- (:shop_id). Times are shown as ISO-8601 UTC text.

-- name: stats_event_tables
-- One row per event table; a full scan of each table (statistics, not a hot path).
SELECT
    -- table_name: the event table; never NULL
    'purchases' AS table_name,
    -- row_count: rows of this shop in the table; count; 0 when empty
    count(*) AS row_count,
    -- customer_count: distinct customers with a row in the table; count; 0 when empty
    count(DISTINCT customer_id) AS customer_count,
    -- first_event_time: earliest event time; ISO-8601 UTC text; NULL when the table is empty
    strftime('%Y-%m-%dT%H:%M:%SZ', min(event_time_us) / 1000000.0, 'unixepoch') AS first_event_time,
    -- last_event_time: latest event time; ISO-8601 UTC text; NULL when the table is empty
    strftime('%Y-%m-%dT%H:%M:%SZ', max(event_time_us) / 1000000.0, 'unixepoch') AS last_event_time
FROM purchases WHERE shop_id = :shop_id
UNION ALL
SELECT 'sessions', count(*), count(DISTINCT customer_id),
       strftime('%Y-%m-%dT%H:%M:%SZ', min(event_time_us) / 1000000.0, 'unixepoch'),
       strftime('%Y-%m-%dT%H:%M:%SZ', max(event_time_us) / 1000000.0, 'unixepoch')
FROM sessions WHERE shop_id = :shop_id
UNION ALL
SELECT 'cart_events', count(*), count(DISTINCT customer_id),
       strftime('%Y-%m-%dT%H:%M:%SZ', min(event_time_us) / 1000000.0, 'unixepoch'),
       strftime('%Y-%m-%dT%H:%M:%SZ', max(event_time_us) / 1000000.0, 'unixepoch')
FROM cart_events WHERE shop_id = :shop_id
UNION ALL
SELECT 'support_interactions', count(*), count(DISTINCT customer_id),
       strftime('%Y-%m-%dT%H:%M:%SZ', min(event_time_us) / 1000000.0, 'unixepoch'),
       strftime('%Y-%m-%dT%H:%M:%SZ', max(event_time_us) / 1000000.0, 'unixepoch')
FROM support_interactions WHERE shop_id = :shop_id
UNION ALL
SELECT 'refunds', count(*), count(DISTINCT customer_id),
       strftime('%Y-%m-%dT%H:%M:%SZ', min(event_time_us) / 1000000.0, 'unixepoch'),
       strftime('%Y-%m-%dT%H:%M:%SZ', max(event_time_us) / 1000000.0, 'unixepoch')
FROM refunds WHERE shop_id = :shop_id
UNION ALL
SELECT 'interactions', count(*), count(DISTINCT customer_id),
       strftime('%Y-%m-%dT%H:%M:%SZ', min(event_time_us) / 1000000.0, 'unixepoch'),
       strftime('%Y-%m-%dT%H:%M:%SZ', max(event_time_us) / 1000000.0, 'unixepoch')
FROM interactions WHERE shop_id = :shop_id
UNION ALL
SELECT 'purchase_attributions', count(*), count(DISTINCT customer_id),
       strftime('%Y-%m-%dT%H:%M:%SZ', min(event_time_us) / 1000000.0, 'unixepoch'),
       strftime('%Y-%m-%dT%H:%M:%SZ', max(event_time_us) / 1000000.0, 'unixepoch')
FROM purchase_attributions WHERE shop_id = :shop_id;

-- name: stats_other_tables
SELECT
    -- table_name: a bookkeeping table; never NULL
    'customers' AS table_name,
    -- row_count: rows of this shop in the table; count; 0 when empty
    count(*) AS row_count
FROM customers WHERE shop_id = :shop_id
UNION ALL
SELECT 'rejected_events', count(*) FROM rejected_events WHERE shop_id = :shop_id
UNION ALL
SELECT 'loads', count(*) FROM loads WHERE shop_id = :shop_id;

-- name: stats_customer_count
SELECT
    -- customer_count: distinct customers of the shop (with metadata or any event); count; 0 when none
    count(*) AS customer_count
FROM all_customers
WHERE shop_id = :shop_id;

-- name: stats_rejections_by_reason
-- Bounded by :limit (the reasons are a small set of 'field: why' texts).
SELECT
    -- kind: the kind of the rejected record (purchase, session, cart_event, support_interaction, customer); never NULL
    kind,
    -- reason: why it was rejected, 'field: why'; never NULL
    reason,
    -- rejected_count: stored rejections of this kind and reason (one per distinct rejected offer of
    --   add_*/bulk/load_history, one per rejected input row of a file load); count; at least 1
    count(*) AS rejected_count
FROM rejected_events
WHERE shop_id = :shop_id
GROUP BY kind, reason
ORDER BY rejected_count DESC, kind, reason
LIMIT :limit;

-- name: customer_known
-- Each EXISTS probes the (shop_id, customer_id, ...) primary key of one table.
SELECT
    -- known: 1 when the customer has metadata or any event in this shop, else 0; never NULL
    EXISTS (SELECT 1 FROM customers WHERE shop_id = :shop_id AND customer_id = :customer_id)
    OR EXISTS (SELECT 1 FROM purchases WHERE shop_id = :shop_id AND customer_id = :customer_id)
    OR EXISTS (SELECT 1 FROM sessions WHERE shop_id = :shop_id AND customer_id = :customer_id)
    OR EXISTS (SELECT 1 FROM cart_events WHERE shop_id = :shop_id AND customer_id = :customer_id)
    OR EXISTS (SELECT 1 FROM support_interactions WHERE shop_id = :shop_id AND customer_id = :customer_id)
    OR EXISTS (SELECT 1 FROM refunds WHERE shop_id = :shop_id AND customer_id = :customer_id)
    OR EXISTS (SELECT 1 FROM interactions WHERE shop_id = :shop_id AND customer_id = :customer_id)
    OR EXISTS (SELECT 1 FROM purchase_attributions WHERE shop_id = :shop_id AND customer_id = :customer_id)
    AS known;

-- name: rejected_events_list
-- :reason matches a whole reason or its beginning ('order_value' matches
-- 'order_value: negative'); NULL matches every reason. Same for :kind (exact).
SELECT
    -- id: the rejection's row id, in the order records were offered; never NULL
    id,
    -- kind: the kind of the rejected record; never NULL
    kind,
    -- reason: why it was rejected, 'field: why'; never NULL
    reason,
    -- received_at: when the record was offered; ISO-8601 UTC text; never NULL
    received_at,
    -- payload: the offered record as JSON text; never NULL
    payload,
    -- load_id: the file load (loads.id) that offered it; NULL for add_* calls
    load_id,
    -- source_row: its 1-based input row number within that load; NULL for add_* calls
    source_row
FROM rejected_events
WHERE shop_id = :shop_id
  AND (:reason IS NULL OR substr(reason, 1, length(:reason)) = :reason)
  AND (:kind IS NULL OR kind = :kind)
ORDER BY id
LIMIT :limit;

-- name: stats_last_materialization
SELECT
    -- id: the run's id (materializations.id); never NULL
    id,
    -- kind: 'full' (materialize) or 'refresh'; never NULL
    kind,
    -- as_of: the snapshot's point in time; ISO-8601 UTC text; never NULL
    as_of,
    -- windows: the window lengths in days; JSON array text; never NULL
    windows,
    -- rows: rows of the shop in customer_features after the run; count; never NULL
    rows,
    -- recomputed: customers computed by the run; count; never NULL
    recomputed,
    -- started_at: when the run started; ISO-8601 UTC text; never NULL
    started_at,
    -- finished_at: when the run finished; ISO-8601 UTC text; never NULL
    finished_at
FROM materializations
WHERE shop_id = :shop_id
ORDER BY id DESC
LIMIT 1;

-- name: table_exists
SELECT
    -- present: 1 when a table or view of that name exists in the main schema, else 0; never NULL
    EXISTS (SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = :name) AS present;
