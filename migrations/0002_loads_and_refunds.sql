-- Migration 0002: refunds, the record of file loads, and the loaders' staging tables.
-- See docs/loading.md for how each loader fills these tables.

-- Refunds and cancellations (credit notes): money given back to a customer.
CREATE TABLE refunds (
    shop_id        TEXT NOT NULL DEFAULT '',
    customer_id    TEXT NOT NULL,
    event_time_us  INTEGER NOT NULL,          -- refund time, microseconds since the Unix epoch, UTC
    event_id       TEXT NOT NULL,             -- credit note / cancellation invoice number
    refund_value   REAL NOT NULL CHECK (refund_value >= 0),
    order_id       TEXT,                      -- the refunded order's id, NULL when not known
    PRIMARY KEY (shop_id, customer_id, event_time_us, event_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX refunds_event_id ON refunds (shop_id, event_id);

CREATE VIEW refunds_readable AS
SELECT shop_id, customer_id, event_id AS refund_id,
       strftime('%Y-%m-%dT%H:%M:%fZ', event_time_us / 1000000.0, 'unixepoch') AS event_time,
       refund_value, order_id
FROM refunds;

DROP VIEW all_customers;
CREATE VIEW all_customers AS
SELECT shop_id, customer_id FROM customers
UNION SELECT shop_id, customer_id FROM purchases
UNION SELECT shop_id, customer_id FROM sessions
UNION SELECT shop_id, customer_id FROM cart_events
UNION SELECT shop_id, customer_id FROM support_interactions
UNION SELECT shop_id, customer_id FROM refunds;

-- One row per file load (a resumed load continues its row).
CREATE TABLE loads (
    id              INTEGER PRIMARY KEY,
    shop_id         TEXT NOT NULL DEFAULT '',
    kind            TEXT NOT NULL,            -- purchases, sessions, ..., online-retail, rees46, incidents
    source_name     TEXT NOT NULL,            -- the file name as given; '-' for standard input
    source_size     INTEGER NOT NULL,         -- bytes of the file as read (compressed if gzip)
    source_sha256   TEXT NOT NULL,            -- hex sha256 of those bytes
    options         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(options)),  -- format, mapping, date format, time zone
    status          TEXT NOT NULL CHECK (status IN ('running', 'completed')),  -- running = in progress or interrupted
    rows_read       INTEGER NOT NULL DEFAULT 0,  -- input rows consumed and committed so far
    rows_accepted   INTEGER NOT NULL DEFAULT 0,
    rows_rejected   INTEGER NOT NULL DEFAULT 0,
    rows_duplicate  INTEGER NOT NULL DEFAULT 0,
    rows_pending    INTEGER NOT NULL DEFAULT 0,  -- staged rows not yet aggregated (presets)
    tables          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(tables)),  -- {table: rows inserted}
    started_at      TEXT NOT NULL,            -- ISO-8601 UTC
    finished_at     TEXT,                     -- ISO-8601 UTC; NULL while running
    seconds         REAL                      -- wall-clock seconds of the load, resumed parts summed
);
CREATE UNIQUE INDEX loads_source ON loads (shop_id, kind, source_sha256, options);

-- Rejections of file loads carry their load and row number: reloading or
-- resuming never records the same rejected row twice.
ALTER TABLE rejected_events ADD COLUMN load_id INTEGER;     -- loads.id; NULL for add_* calls
ALTER TABLE rejected_events ADD COLUMN source_row INTEGER;  -- 1-based input row number within that load
CREATE UNIQUE INDEX rejected_events_source ON rejected_events (load_id, source_row) WHERE load_id IS NOT NULL;

-- Staging tables of the presets: input rows wait here until the end of the
-- load, when one INSERT ... SELECT ... GROUP BY per output table aggregates
-- them (an invoice is one purchase whatever the order of its lines), then
-- they are deleted. Rows of an interrupted load stay until it is resumed.
-- The primary key starts with the group (invoice, session, incident), so the
-- aggregation reads the groups in order without sorting, and ends with the
-- row's hash, so an exact duplicate row is staged once (INSERT OR IGNORE)
-- and counted as a duplicate.
CREATE TABLE load_staging_online_retail (
    load_id        INTEGER NOT NULL,
    source_row     INTEGER NOT NULL,          -- 1-based input row number
    line_hash BLOB NOT NULL,  -- blake2b-128 of the whole input row
    invoice        TEXT NOT NULL,
    customer_id    TEXT NOT NULL,
    event_time_us  INTEGER NOT NULL,
    amount         REAL NOT NULL,             -- quantity x unit price
    PRIMARY KEY (load_id, invoice, line_hash)
) WITHOUT ROWID;

CREATE TABLE load_staging_rees46 (
    load_id        INTEGER NOT NULL,
    source_row     INTEGER NOT NULL,          -- 1-based input row number
    line_hash BLOB NOT NULL,  -- blake2b-128 of the whole input row
    user_session   TEXT NOT NULL,
    customer_id    TEXT NOT NULL,             -- user_id
    event_time_us  INTEGER NOT NULL,
    event_type     TEXT NOT NULL,             -- view, cart, remove_from_cart, purchase
    product_id     TEXT,
    category_id    TEXT,
    category_code  TEXT,
    brand          TEXT,
    price          REAL,
    PRIMARY KEY (load_id, user_session, customer_id, line_hash)
) WITHOUT ROWID;

CREATE TABLE load_staging_incidents (
    load_id             INTEGER NOT NULL,
    source_row          INTEGER NOT NULL,     -- 1-based input row number
    line_hash BLOB NOT NULL,  -- blake2b-128 of the whole input row
    incident            TEXT NOT NULL,
    customer_id         TEXT NOT NULL,        -- caller_id
    state               TEXT NOT NULL,
    opened_us           INTEGER NOT NULL,
    updated_us          INTEGER,              -- sys_updated_at
    resolved_us         INTEGER,
    reassignment_count  INTEGER NOT NULL,
    priority            TEXT NOT NULL,
    PRIMARY KEY (load_id, incident, line_hash)
) WITHOUT ROWID;
