-- Queries of the feature browser (`caf serve`: Datasette's canned queries, store/browser.py) and
-- of the quality report (`caf report`, store/report.py). Datasette binds a canned query's
-- parameters from the URL (a missing one is ''): `:shop` is the shop ('' is the default shop).

-- name: browser_customer
-- One customer's row of customer_features: every feature column of the last materialisation.
-- An unknown customer (or one not in the snapshot) gives no row, never an error.
SELECT *
FROM customer_features
WHERE shop_id = :shop AND customer_id = :customer_id;

-- name: browser_top_customers
-- The shop's 100 customers with the largest total_purchase_value (sum of the order values of
-- all their purchases up to the snapshot's as_of; family purchase_features).
SELECT customer_id, total_purchase_value, purchase_count, average_order_value, purchase_recency_days, as_of
FROM customer_features
WHERE shop_id = :shop
ORDER BY total_purchase_value DESC, customer_id
LIMIT 100;

-- name: browser_rejections_by_reason
-- Offered events that were not stored, counted per kind and reason (the 200 most frequent).
-- kind: the event kind; reason: 'field: why'; rejected: rows; first_at, last_at: ISO-8601 UTC
SELECT kind, reason, COUNT(*) AS rejected, MIN(received_at) AS first_at, MAX(received_at) AS last_at
FROM rejected_events
WHERE shop_id = :shop
GROUP BY kind, reason
ORDER BY rejected DESC, kind, reason
LIMIT 200;

-- name: browser_load_history
-- The shop's file loads, newest first (the last 200): what was read, accepted, rejected, when.
SELECT id, kind, source_name, status, rows_read, rows_accepted, rows_rejected, rows_duplicate,
       started_at, finished_at, seconds
FROM loads
WHERE shop_id = :shop
ORDER BY id DESC
LIMIT 200;

-- name: browser_materializations
-- The shop's materialisation and refresh runs, newest first (the last 200).
SELECT id, kind, as_of, rows, recomputed, started_at, finished_at, all_families
FROM materializations
WHERE shop_id = :shop
ORDER BY id DESC
LIMIT 200;
