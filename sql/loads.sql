-- File loads (store/loaders.py): the loads table, rejections with their
-- source row, the staging of preset rows and their aggregation.
-- Parameters: :shop_id the store's shop, :load_id the loads.id being run,
-- :received_at ISO-8601 UTC text of the moment.

-- name: find_load
-- The load of these bytes with this kind and options, if any (at most one row: unique index).
SELECT
    id,              -- loads.id; integer
    status,          -- 'running' (in progress or interrupted) or 'completed'
    rows_read,       -- input rows consumed and committed; integer
    rows_accepted,   -- integer
    rows_rejected,   -- integer
    rows_duplicate,  -- integer
    rows_pending,    -- staged rows awaiting aggregation; integer
    tables,          -- JSON {table: rows inserted}
    started_at,      -- ISO-8601 UTC text
    finished_at,     -- ISO-8601 UTC text; NULL while running
    seconds          -- wall-clock seconds so far; REAL; NULL before the first batch
FROM loads
WHERE shop_id = :shop_id AND kind = :kind AND source_sha256 = :sha256 AND options = :options;

-- name: insert_load
INSERT INTO loads (shop_id, kind, source_name, source_size, source_sha256, options, status, started_at)
VALUES (:shop_id, :kind, :source_name, :source_size, :sha256, :options, 'running', :started_at);

-- name: delete_unstarted_load
-- The record of a load stopped before it committed any row (a file-level
-- error found in its first batch): nothing to resume, so nothing is kept.
DELETE FROM loads WHERE id = :load_id AND rows_read = 0 AND status = 'running';

-- name: update_load
UPDATE loads SET
    rows_read = :read, rows_accepted = :accepted, rows_rejected = :rejected,
    rows_duplicate = :duplicates, rows_pending = :pending, tables = :tables,
    seconds = :seconds, status = :status, finished_at = :finished_at,
    source_name = :source_name
WHERE id = :load_id;

-- name: list_loads
-- The loads of a shop, newest first (bounded by :limit; -1 = all, streamed).
SELECT
    id AS load_id,   -- integer
    kind,            -- kind or preset name
    source_name,     -- file name as given; '-' = standard input
    source_size,     -- bytes; integer
    source_sha256,   -- hex text
    options,         -- JSON text: format, mapping, date_format, timezone
    status,          -- 'running' (in progress or interrupted) or 'completed'
    rows_read,       -- integer
    rows_accepted,   -- integer
    rows_rejected,   -- integer
    rows_duplicate,  -- integer
    rows_pending,    -- integer; 0 once completed
    tables,          -- JSON {table: rows inserted}
    started_at,      -- ISO-8601 UTC text
    finished_at,     -- ISO-8601 UTC text; NULL while running
    seconds          -- REAL; NULL before the first batch
FROM loads
WHERE shop_id = :shop_id
ORDER BY id DESC
LIMIT :limit;

-- name: load_rejections_by_reason
-- Rejected rows of one load per reason (one row per distinct reason).
SELECT
    reason,          -- 'field: why'
    COUNT(*) AS n    -- rejected rows; integer
FROM rejected_events
WHERE load_id = :load_id
GROUP BY reason
ORDER BY n DESC, reason;

-- name: insert_load_rejection
-- A rejected input row; (load_id, source_row) is unique, so a resumed load never records it twice.
INSERT OR IGNORE INTO rejected_events (shop_id, kind, payload, reason, received_at, load_id, source_row)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: upsert_customer_if_changed
-- Metadata replaces what was stored; created_at_us (migration 0004) replaces
-- it only when given (NULL keeps the stored creation time, as upsert_customer
-- does). A row that changes neither is not rewritten (counted as a duplicate).
INSERT INTO customers (shop_id, customer_id, metadata, updated_at, created_at_us)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (shop_id, customer_id) DO UPDATE SET
    metadata = excluded.metadata,
    updated_at = excluded.updated_at,
    created_at_us = COALESCE(excluded.created_at_us, customers.created_at_us)
WHERE customers.metadata IS NOT excluded.metadata
   OR (excluded.created_at_us IS NOT NULL AND customers.created_at_us IS NOT excluded.created_at_us);

-- name: stage_online_retail
INSERT OR IGNORE INTO load_staging_online_retail
    (load_id, source_row, line_hash, invoice, customer_id, event_time_us, amount)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: stage_rees46
INSERT OR IGNORE INTO load_staging_rees46
    (load_id, source_row, line_hash, user_session, customer_id, event_time_us, event_type,
     product_id, category_id, category_code, brand, price)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: stage_incidents
INSERT OR IGNORE INTO load_staging_incidents
    (load_id, source_row, line_hash, incident, customer_id, state, opened_us, updated_us,
     resolved_us, reassignment_count, priority)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: create_load_groups
-- One row per output group of a preset (an invoice, a user's session, an
-- incident), with what becomes of it. Temporary: gone with the connection.
CREATE TEMP TABLE IF NOT EXISTS load_groups (
    group_key      TEXT NOT NULL,   -- invoice / user_session + user / incident number
    customer_id    TEXT NOT NULL,
    event_id       TEXT NOT NULL,   -- the id of the stored event(s)
    event_time_us  INTEGER NOT NULL,
    value          REAL,            -- invoice total (online-retail)
    row_count      INTEGER NOT NULL,-- staged input rows of the group
    outcome        TEXT NOT NULL,   -- purchase, refund, session, support, duplicate, 'rejected: <reason>'
    session_key    TEXT,            -- rees46: user_session
    end_us         INTEGER,         -- rees46: last event; incidents: response instant
    cart_count     INTEGER,         -- rees46: 'cart' events
    first_cart_us  INTEGER,
    last_cart_us   INTEGER,
    cart_value     REAL,
    purchase_count INTEGER,         -- rees46: 'purchase' events
    first_purchase_us INTEGER,
    last_purchase_us  INTEGER,
    purchase_value REAL,
    escalated      INTEGER,         -- incidents
    PRIMARY KEY (group_key, customer_id)
);

-- name: clear_load_groups
DELETE FROM temp.load_groups;

-- name: load_group_outcomes
-- Input rows per outcome of the groups (a handful of rows).
SELECT
    outcome,                      -- purchase, refund, session, support, duplicate or 'rejected: <reason>'
    TOTAL(row_count) AS n_rows,   -- staged input rows; REAL (whole number)
    COUNT(*) AS n_groups          -- groups; integer
FROM temp.load_groups
GROUP BY outcome;

-- ---------------------------------------------------------------- online-retail
-- name: online_retail_groups
-- One group per invoice, whatever the order of its lines. Cancellation
-- invoices (C...) become refunds of minus their total; others purchases.
INSERT INTO temp.load_groups (group_key, customer_id, event_id, event_time_us, value, row_count, outcome)
SELECT invoice, customer_id, invoice, event_time_us, total, row_count,
    CASE
        WHEN is_cancel AND total > 0 THEN 'rejected: invoice: cancellation (C) invoice with a positive total'
        WHEN NOT is_cancel AND total < 0 THEN 'rejected: invoice: negative total on a non-cancellation invoice'
        WHEN is_cancel AND EXISTS (SELECT 1 FROM refunds AS r WHERE r.shop_id = :shop_id AND r.event_id = invoice) THEN 'duplicate'
        WHEN NOT is_cancel AND EXISTS (SELECT 1 FROM purchases AS p WHERE p.shop_id = :shop_id AND p.event_id = invoice) THEN 'duplicate'
        WHEN is_cancel THEN 'refund'
        ELSE 'purchase'
    END
FROM (
    SELECT invoice,
           MIN(customer_id) AS customer_id,
           MIN(event_time_us) AS event_time_us,
           ROUND(TOTAL(amount), 6) + 0.0 AS total,
           COUNT(*) AS row_count,
           substr(invoice, 1, 1) = 'C' AS is_cancel
    FROM load_staging_online_retail
    WHERE load_id = :load_id
    GROUP BY invoice
);

-- name: online_retail_rejections
-- Every staged line of a rejected invoice becomes a rejection (the reason follows 'rejected: ').
INSERT OR IGNORE INTO rejected_events (shop_id, kind, payload, reason, received_at, load_id, source_row)
SELECT :shop_id, 'online-retail',
       json_object('InvoiceNo', s.invoice, 'CustomerID', s.customer_id,
                   'InvoiceDate', strftime('%Y-%m-%dT%H:%M:%SZ', s.event_time_us / 1000000, 'unixepoch'),
                   'amount', s.amount),
       substr(g.outcome, 11), :received_at, :load_id, s.source_row
FROM temp.load_groups AS g
CROSS JOIN load_staging_online_retail AS s  -- CROSS JOIN: the few rejected groups drive the loop
WHERE g.outcome LIKE 'rejected: %' AND s.load_id = :load_id AND s.invoice = g.group_key;

-- name: online_retail_purchases
INSERT OR IGNORE INTO purchases (shop_id, customer_id, event_time_us, event_id, order_value)
SELECT :shop_id, customer_id, event_time_us, event_id, value
FROM temp.load_groups WHERE outcome = 'purchase';

-- name: online_retail_refunds
INSERT OR IGNORE INTO refunds (shop_id, customer_id, event_time_us, event_id, refund_value, order_id)
SELECT :shop_id, customer_id, event_time_us, event_id, ABS(value), NULL
FROM temp.load_groups WHERE outcome = 'refund';

-- ---------------------------------------------------------------- rees46
-- name: rees46_groups
-- One group per (user_session, user_id). A session id used by several users
-- in the file is split: each user's part is its own session, with event id
-- 'user_session/user_id'; otherwise the event id is the session id.
INSERT INTO temp.load_groups (group_key, customer_id, event_id, event_time_us, row_count, outcome,
    session_key, end_us, cart_count, first_cart_us, last_cart_us, cart_value,
    purchase_count, first_purchase_us, last_purchase_us, purchase_value)
SELECT user_session, customer_id, event_id, start_us, row_count,
    CASE WHEN EXISTS (SELECT 1 FROM sessions AS x WHERE x.shop_id = :shop_id AND x.event_id = g.event_id)
         THEN 'duplicate' ELSE 'session' END,
    user_session, end_us, cart_count, first_cart_us, last_cart_us, cart_value,
    purchase_count, first_purchase_us, last_purchase_us, purchase_value
FROM (
    SELECT user_session, customer_id,
        CASE WHEN COUNT(*) OVER (PARTITION BY user_session) > 1
             THEN user_session || '/' || customer_id ELSE user_session END AS event_id,
        MIN(event_time_us) AS start_us,
        MAX(event_time_us) AS end_us,
        COUNT(*) AS row_count,
        COUNT(*) FILTER (WHERE event_type = 'cart') AS cart_count,
        MIN(event_time_us) FILTER (WHERE event_type = 'cart') AS first_cart_us,
        MAX(event_time_us) FILTER (WHERE event_type = 'cart') AS last_cart_us,
        TOTAL(price) FILTER (WHERE event_type = 'cart') AS cart_value,
        COUNT(*) FILTER (WHERE event_type = 'purchase') AS purchase_count,
        MIN(event_time_us) FILTER (WHERE event_type = 'purchase') AS first_purchase_us,
        MAX(event_time_us) FILTER (WHERE event_type = 'purchase') AS last_purchase_us,
        TOTAL(price) FILTER (WHERE event_type = 'purchase') AS purchase_value
    FROM load_staging_rees46
    WHERE load_id = :load_id
    GROUP BY user_session, customer_id
) AS g;

-- name: rees46_sessions
-- A session: starts at its first event; duration = last - first event; device unknown.
INSERT OR IGNORE INTO sessions (shop_id, customer_id, event_time_us, event_id, duration_seconds, device_type)
SELECT :shop_id, customer_id, event_time_us, event_id, (end_us - event_time_us) / 1000000.0, 'unknown'
FROM temp.load_groups WHERE outcome = 'session';

-- name: rees46_carts
-- A session with 'cart' events: converted when a purchase happens at or after
-- its first cart addition, else abandoned; value = sum of the cart prices;
-- time = its last cart addition; cart id = the session's event id.
INSERT OR IGNORE INTO cart_events (shop_id, customer_id, event_time_us, event_id, event_type, cart_value)
SELECT :shop_id, customer_id, last_cart_us, event_id,
       CASE WHEN last_purchase_us >= first_cart_us THEN 'converted' ELSE 'abandoned' END,
       ROUND(cart_value, 6) + 0.0
FROM temp.load_groups WHERE outcome = 'session' AND cart_count > 0;

-- name: rees46_purchases
-- One purchase per session with 'purchase' events: value = sum of their
-- prices; time = the first of them; order id = the session's event id.
INSERT OR IGNORE INTO purchases (shop_id, customer_id, event_time_us, event_id, order_value)
SELECT :shop_id, customer_id, first_purchase_us, event_id, ROUND(purchase_value, 6) + 0.0
FROM temp.load_groups WHERE outcome = 'session' AND purchase_count > 0;

-- ---------------------------------------------------------------- incidents
-- name: incidents_groups
-- One group per incident number (customer: the smallest caller id seen on it).
-- Response instant: the earliest sys_updated_at of a row whose state is not
-- 'New'; when there is none, resolved_at. Escalated: a reassignment_count
-- above 0 or a '1 - Critical' priority on any row.
INSERT INTO temp.load_groups (group_key, customer_id, event_id, event_time_us, row_count, outcome, end_us, escalated)
SELECT incident, customer_id, incident, opened_us, row_count,
    CASE WHEN EXISTS (SELECT 1 FROM support_interactions AS x WHERE x.shop_id = :shop_id AND x.event_id = incident)
         THEN 'duplicate' ELSE 'support' END,
    response_us, escalated
FROM (
    SELECT incident,
        MIN(customer_id) AS customer_id,
        MIN(opened_us) AS opened_us,
        COUNT(*) AS row_count,
        COALESCE(MIN(updated_us) FILTER (WHERE state <> 'New'), MIN(resolved_us)) AS response_us,
        MAX(reassignment_count > 0 OR priority LIKE '1 %') AS escalated
    FROM load_staging_incidents
    WHERE load_id = :load_id
    GROUP BY incident
);

-- name: incidents_support
-- response_time_hours: response instant - opened_at in hours; NULL when
-- unknown or negative (a response before opening is not credible).
INSERT OR IGNORE INTO support_interactions (shop_id, customer_id, event_time_us, event_id, response_time_hours, escalated)
SELECT :shop_id, customer_id, event_time_us, event_id,
       CASE WHEN end_us >= event_time_us THEN (end_us - event_time_us) / 3600000000.0 END,
       escalated
FROM temp.load_groups WHERE outcome = 'support';
