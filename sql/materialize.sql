-- Feature-store queries: materialisation, refresh, cohorts (docs/feature_store.md).
-- Family-style queries read `target(target_id, customer_id, as_of_us)` like
-- the queries of purchases.sql; see there for the shared parameters.

-- family: primary_device
-- order: 40
-- tables: sessions
-- requires: session_devices
-- Reads the session_devices query (sessions.sql) as a CTE: one row per target
-- with sessions, its device of rank 1 (the tie rule is session_devices').
SELECT
    d.target_id AS target_id,
    -- primary_device: The most used device; a tie goes to the device seen first, then to the name.; text, device name; NULL when no session; window: materialized over all time up to as_of; get_primary_device(days=N) uses the window
    d.device_type AS primary_device
FROM session_devices AS d
WHERE d.device_rank = 1

-- name: fill_targets_from_json
-- Fills a cohort's temporary target table in one statement from a JSON array
-- of [target_id, customer_id, as_of_us] triples bound as :targets.
SELECT
    -- target_id: the target's position; integer
    json_extract(j.value, '$[0]') AS target_id,
    -- customer_id: the normalized customer id; text
    json_extract(j.value, '$[1]') AS customer_id,
    -- as_of_us: the target's point in time; microseconds since the epoch
    json_extract(j.value, '$[2]') AS as_of_us
FROM json_each(:targets) AS j

-- name: fill_targets_from_json_ids
-- Fills a cohort's temporary target table in one statement from a JSON array
-- of customer ids bound as :ids, every target at the same :as_of_us; the
-- target of the id at position i of the array is :first_target_id + i. About
-- three times cheaper than fill_targets_from_json (no json_extract per value).
SELECT
    -- target_id: :first_target_id + the id's position in the array; integer
    :first_target_id + j.key AS target_id,
    -- customer_id: the normalized customer id; text
    j.value AS customer_id,
    -- as_of_us: the cohort's point in time; microseconds since the epoch
    :as_of_us AS as_of_us
FROM json_each(:ids) AS j

-- name: ids_from_json
-- The customer ids of a JSON array bound as :ids, one row each (the ids a
-- streamed iter_features has yielded, into its table of seen ids).
SELECT
    -- customer_id: a normalized customer id; text
    j.value AS customer_id
FROM json_each(:ids) AS j

-- name: fill_targets_all_customers
-- Every customer of the shop with :lo <= customer_id < :hi, one target each,
-- in customer id order, all at :as_of_us. For every customer pass :lo = ''
-- and :hi = NULL (no upper bound); a customer range is one partition of a
-- parallel materialisation. Portable (store/engines.py runs it on DuckDB and
-- Spark): the open bound is a NULL test, not an empty BLOB (which sorts after
-- every text only in SQLite), and the targets are numbered by ROW_NUMBER, not
-- by the rowid of SQLite's temp table. The same ids as the
-- all_customers view, read table by table: each arm walks its table's
-- (shop_id, customer_id, ...) key in order, so the arms merge without a sort
-- (tests/test_materialize_staged.py checks the tables match the view's).
SELECT
    -- target_id: 1, 2, ... in customer id order
    ROW_NUMBER() OVER (ORDER BY c.customer_id) AS target_id,
    -- customer_id: the customer; text
    c.customer_id AS customer_id,
    -- as_of_us: the snapshot's point in time; microseconds since the epoch
    :as_of_us AS as_of_us
FROM (
    SELECT customer_id FROM customers
        WHERE shop_id = :shop_id AND customer_id >= :lo AND (:hi IS NULL OR customer_id < :hi)
    UNION SELECT DISTINCT customer_id FROM purchases
        WHERE shop_id = :shop_id AND customer_id >= :lo AND (:hi IS NULL OR customer_id < :hi)
    UNION SELECT DISTINCT customer_id FROM sessions
        WHERE shop_id = :shop_id AND customer_id >= :lo AND (:hi IS NULL OR customer_id < :hi)
    UNION SELECT DISTINCT customer_id FROM cart_events
        WHERE shop_id = :shop_id AND customer_id >= :lo AND (:hi IS NULL OR customer_id < :hi)
    UNION SELECT DISTINCT customer_id FROM support_interactions
        WHERE shop_id = :shop_id AND customer_id >= :lo AND (:hi IS NULL OR customer_id < :hi)
    UNION SELECT DISTINCT customer_id FROM refunds
        WHERE shop_id = :shop_id AND customer_id >= :lo AND (:hi IS NULL OR customer_id < :hi)
    UNION SELECT DISTINCT customer_id FROM interactions
        WHERE shop_id = :shop_id AND customer_id >= :lo AND (:hi IS NULL OR customer_id < :hi)
    UNION SELECT DISTINCT customer_id FROM purchase_attributions
        WHERE shop_id = :shop_id AND customer_id >= :lo AND (:hi IS NULL OR customer_id < :hi)
    ORDER BY 1
) AS c

-- name: refresh_hits
-- Customers of one event table with an event that entered or left a window
-- between the old and the new as_of, one row per (customer, window edge). An
-- event at time t is in the interval of the edge e (days), [:lo_us - e days,
-- :hi_us - e days] (e = 0: between the two as_of themselves, where it enters
-- every window at its upper end). The table's edges are the rows of
-- temp.refresh_edges (events_table, edge_days; refresh() fills it, edge 0
-- included). The candidates are the customers event_days lists on the days
-- the interval spans (one range of its primary key per edge), each then
-- checked by one seek of its events in the interval (event_days may list a day
-- whose events were deleted or moved): a cost in proportion to the events of
-- those days, not a walk of the shop's events (which cost 0.48 s of a 2.8 s
-- refresh at 100,000 customers, 9.5 s of 57.7 s at 1,000,000). The event table
-- is the CTE refresh_events(shop_id, customer_id, event_time_us): refresh()
-- runs the query once per event table of the materialized families, with that
-- table (a name from their allowlist) as refresh_events
-- (store.refresh.refresh_hits_sql). CROSS JOIN keeps the edges the outer loop.
SELECT DISTINCT
    -- customer_id: the customer; text
    d.customer_id AS customer_id,
    -- events_table: the event table's name (bound as :events_table); text
    :events_table AS events_table,
    -- edge_days: the window edge whose interval holds the event, in days; 0 = between the two as_of; integer
    i.edge_days AS edge_days
FROM temp.refresh_edges AS i
CROSS JOIN event_days AS d
WHERE i.events_table = :events_table
  AND d.shop_id = :shop_id
  AND d.events_table = :events_table
  AND d.day BETWEEN (:lo_us - i.edge_days * 86400000000) / 86400000000
                AND (:hi_us - i.edge_days * 86400000000) / 86400000000
  AND EXISTS (
      SELECT 1 FROM refresh_events AS e
      WHERE e.shop_id = :shop_id
        AND e.customer_id = d.customer_id
        AND e.event_time_us BETWEEN :lo_us - i.edge_days * 86400000000
                                AND :hi_us - i.edge_days * 86400000000
  )

-- name: refresh_vanished
-- The customers logged in changed_customers that have no customers row: those
-- refresh() drops when no event table holds an event of theirs either
-- (refresh_vanished_keep, then refresh_vanished_delete): a full materialize
-- gives them no row (fill_targets_all_customers), so neither may a refresh.
INSERT INTO temp.refresh_vanished (customer_id)
SELECT c.customer_id
FROM changed_customers AS c
WHERE c.shop_id = :shop_id
  AND NOT EXISTS (SELECT 1 FROM customers AS m WHERE m.shop_id = :shop_id AND m.customer_id = c.customer_id)

-- name: refresh_vanished_keep
-- Keeps out of temp.refresh_vanished the customers with an event in one event
-- table (the CTE refresh_events, as in refresh_hits; run once per event table):
-- one seek each.
DELETE FROM temp.refresh_vanished
WHERE EXISTS (
    SELECT 1 FROM refresh_events AS e
    WHERE e.shop_id = :shop_id
      AND e.customer_id = refresh_vanished.customer_id
)

-- name: refresh_vanished_delete
-- Deletes the stored rows of the customers left in temp.refresh_vanished: no
-- customers row, no event left.
DELETE FROM main.customer_features_stored
WHERE shop_id = :shop_id
  AND customer_id IN (SELECT customer_id FROM temp.refresh_vanished)

-- name: event_days_changed
-- Adds to event_days (migration 0008) the days of the events of one event table
-- (the CTE refresh_events, as in refresh_hits) of the customers logged in
-- changed_customers: what every run does before it consumes the shop's change
-- log (store.runs.finish), so that event_days lists every day with events of
-- every customer whose events are not logged. Its cost is in proportion to
-- those customers' events; after a first load, where every customer is logged,
-- it is the whole shop once, sorted into the table's key order so that it
-- appends (no DISTINCT: the key drops repeats; 1.3 s instead of 4.0 s for the
-- 762,744 sessions of a 100,000-customer store).
INSERT OR IGNORE INTO event_days (shop_id, events_table, day, customer_id)
SELECT
    e.shop_id,
    :events_table,
    e.event_time_us / 86400000000,
    e.customer_id
FROM changed_customers AS c
CROSS JOIN refresh_events AS e  -- the log is the outer loop (else SQLite walks the shop's event-id index)
WHERE c.shop_id = :shop_id
  AND e.shop_id = c.shop_id
  AND e.customer_id = c.customer_id
ORDER BY 3, 4

-- name: refresh_targets
-- The customers refresh() recomputes, one target each at the new as_of, with
-- the families to recompute for it as a bit mask (:all_bits is the sum of
-- every family's bit; temp.refresh_family_edges lists each family's (bit,
-- event table, window edge)): every family for the customers logged in
-- changed_customers since the last run and for those with an event at as_of
-- itself (temp.refresh_hits with edge_days 0, any table); a family for those
-- with an event of one of its tables crossing one of its window edges. (UNION
-- ALL: the GROUP BY sums each bit once.)
SELECT
    -- target_id: 1, 2, ... in customer id order; integer
    ROW_NUMBER() OVER (ORDER BY b.customer_id) AS target_id,
    -- customer_id: the customer; text
    b.customer_id AS customer_id,
    -- as_of_us: the new point in time; microseconds since the epoch
    :as_of_us AS as_of_us,
    -- mask: the families to recompute, one bit each (a sum of distinct powers of two); integer > 0
    CASE WHEN MAX(b.every_family) THEN :all_bits ELSE SUM(DISTINCT b.bit) END AS mask,
    -- every_family: 1 when every family is recomputed because the customer's events changed
    -- (logged, or an event at as_of itself), 0 when it only has events crossing window edges
    -- (refresh_statement_targets reads it); integer, 0/1
    MAX(b.every_family) AS every_family
FROM (
    SELECT c.customer_id AS customer_id, 0 AS bit, 1 AS every_family
    FROM changed_customers AS c
    WHERE c.shop_id = :shop_id
    UNION ALL
    SELECT h.customer_id, 0, 1 FROM temp.refresh_hits AS h WHERE h.edge_days = 0
    UNION ALL
    SELECT h.customer_id, f.bit, 0
    FROM temp.refresh_hits AS h
    JOIN temp.refresh_family_edges AS f
        ON f.events_table = h.events_table
       AND f.edge_days = h.edge_days
) AS b
GROUP BY b.customer_id

-- name: refresh_statement_targets
-- The targets of one statement of a windowed family in refresh() (the family's
-- run over all time, or its run for one window): those of temp.refresh_target
-- with the family's bit (:bit) whose events changed (every_family), and those
-- with an event of one of the family's tables (:tables, a JSON array) crossing
-- one of the edges the statement's columns depend on (:edges, a JSON array of
-- days: the window's length for a window's run; for the all-time run, the
-- family's declared edges and the 30-day frequency window). A customer whose
-- events crossed only the 365-day edge of purchases gets only the 365-day run
-- of purchase_features, not all five. The crossings are read from
-- temp.refresh_hits by (table, edge), each customer found then by its index
-- on temp.refresh_target.
SELECT r.target_id, r.customer_id, r.as_of_us
FROM temp.refresh_target AS r
WHERE r.every_family AND r.mask & :bit
UNION
SELECT r.target_id, r.customer_id, r.as_of_us
FROM temp.refresh_hits AS h
JOIN temp.refresh_target AS r ON r.customer_id = h.customer_id
WHERE h.events_table IN (SELECT value FROM json_each(:tables))
  AND h.edge_days IN (SELECT value FROM json_each(:edges))
  AND r.mask & :bit
ORDER BY 1

-- name: create_features_as_of
-- The table of the snapshots' as_of, one row per shop: customer_features is a
-- view of the stored rows (customer_features_stored) joined to its shop's row,
-- whose derived columns (a family's `derived:` lines) are computed from it.
CREATE TABLE IF NOT EXISTS customer_features_as_of (
    shop_id TEXT NOT NULL PRIMARY KEY,
    as_of TEXT NOT NULL,
    as_of_us INTEGER NOT NULL
)

-- name: stored_indexes
-- The indexes created on the table :table (not those of its primary key): swap_in drops those
-- of the replaced stored rows, so that the new rows' indexes take their names.
SELECT
    -- name: the index; text
    name
FROM sqlite_master
WHERE type = 'index' AND tbl_name = :table AND sql IS NOT NULL
ORDER BY name

-- name: set_features_as_of
-- The shop's snapshot is at :as_of (ISO-8601 UTC text) / :as_of_us: written by
-- materialize, import and refresh, which then write no row for the calendar.
INSERT INTO customer_features_as_of (shop_id, as_of, as_of_us)
VALUES (:shop_id, :as_of, :as_of_us)
ON CONFLICT (shop_id) DO UPDATE SET as_of = excluded.as_of, as_of_us = excluded.as_of_us

-- name: features_as_of_from_rows
-- The as_of of the other shops (not :shop_id) of a customer_features table of
-- the layout before derived columns (as_of in every row), renamed
-- customer_features_previous when materialize builds the new layout.
INSERT OR REPLACE INTO customer_features_as_of (shop_id, as_of, as_of_us)
SELECT shop_id, MAX(as_of), MAX(as_of_us)
FROM customer_features_previous
WHERE shop_id <> :shop_id
GROUP BY shop_id

-- name: partition_customer_count
-- How many customers of the shop have purchases: the population whose
-- quantiles cut a parallel materialisation into customer ranges.
SELECT
    -- customers: distinct purchasing customers of the shop; integer
    COUNT(*) AS customers
FROM (SELECT DISTINCT customer_id FROM purchases WHERE shop_id = :shop_id)

-- name: partition_customer_at
-- The purchasing customer at position :offset (0-based) in id order: a cut
-- point between two ranges of a parallel materialisation.
SELECT
    -- customer_id: the customer at that position; text; no row past the end
    customer_id
FROM (SELECT DISTINCT customer_id FROM purchases WHERE shop_id = :shop_id ORDER BY customer_id)
LIMIT 1 OFFSET :offset
