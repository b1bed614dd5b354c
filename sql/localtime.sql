-- The store's timezone in SQL (store/localtime.py): local wall-clock time.

-- name: purchase_local_time
-- Every purchase with its local wall-clock time in the store's timezone: the
-- one place the local-time lookup is written. store/localtime.py installs
-- this query, as written, as the temporary view purchase_local_time on every
-- store connection (with the tables it reads), and the queries that need a
-- purchase's local time read that view: rfm_local_times (RFM/T periods,
-- sql/rfm.sql) and behavior_purchase_local (hours, weekdays, seasons,
-- sql/behavior_temporal.sql). A view, not a CTE of their requires lines: the
-- behaviour statements materialise every CTE, which would compute every
-- purchase of the database; SQLite flattens the view into its reader instead,
-- so the reader's conditions on shop_id, customer_id and event_time_us seek
-- the purchases' key as if it read the table.
-- The lookup: temp.caf_tz holds the zone's offset when it never changes (UTC,
-- Etc/*; computed once per statement), else NULL, and then the offset is that
-- of the last row of temp.caf_tz_offsets starting at or before the purchase
-- (a rowid seek per purchase).
SELECT
    -- shop_id, customer_id, event_time_us, event_id, order_value: the purchase's columns (sql/purchases.sql)
    p.shop_id AS shop_id,
    p.customer_id AS customer_id,
    p.event_time_us AS event_time_us,
    p.event_id AS event_id,
    p.order_value AS order_value,
    -- local_us: the purchase's local wall-clock time, as microseconds since 1970-01-01T00:00 local; integer
    p.event_time_us + COALESCE((SELECT fixed_offset_us FROM temp.caf_tz),
                               (SELECT o.offset_us FROM temp.caf_tz_offsets AS o
                                WHERE o.start_us <= p.event_time_us ORDER BY o.start_us DESC LIMIT 1)) AS local_us
FROM main.purchases AS p
