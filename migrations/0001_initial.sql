-- Migration 0001: the customer-activity store.
--
-- Conventions (see README "Design notes"):
-- * every event row carries shop_id, customer_id, event_id and event_time_us;
-- * event_time_us is the event's instant in UTC as whole microseconds since
--   1970-01-01T00:00:00Z (INTEGER: exact window edges, small rows; the
--   *_readable views show it as ISO-8601 text);
-- * event_id is the caller's natural key (order id, session id, cart id,
--   ticket id) or a generated one; (shop_id, event_id) is unique per table, so
--   loading the same data twice never duplicates it;
-- * tables are clustered on (shop_id, customer_id, event_time_us, event_id),
--   the access path of every feature query.

CREATE TABLE customers (
    shop_id      TEXT NOT NULL DEFAULT '',
    customer_id  TEXT NOT NULL,
    metadata     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    updated_at   TEXT NOT NULL,               -- ISO-8601 UTC, when metadata was last set
    PRIMARY KEY (shop_id, customer_id)
) WITHOUT ROWID;

CREATE TABLE purchases (
    shop_id        TEXT NOT NULL DEFAULT '',
    customer_id    TEXT NOT NULL,
    event_time_us  INTEGER NOT NULL,          -- purchase time, microseconds since the Unix epoch, UTC
    event_id       TEXT NOT NULL,             -- order id
    order_value    REAL NOT NULL CHECK (order_value >= 0),
    PRIMARY KEY (shop_id, customer_id, event_time_us, event_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX purchases_event_id ON purchases (shop_id, event_id);

CREATE TABLE sessions (
    shop_id           TEXT NOT NULL DEFAULT '',
    customer_id       TEXT NOT NULL,
    event_time_us     INTEGER NOT NULL,       -- session time, microseconds since the Unix epoch, UTC
    event_id          TEXT NOT NULL,          -- session id
    duration_seconds  REAL NOT NULL CHECK (duration_seconds >= 0),
    device_type       TEXT NOT NULL DEFAULT 'unknown',
    PRIMARY KEY (shop_id, customer_id, event_time_us, event_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX sessions_event_id ON sessions (shop_id, event_id);

CREATE TABLE cart_events (
    shop_id        TEXT NOT NULL DEFAULT '',
    customer_id    TEXT NOT NULL,
    event_time_us  INTEGER NOT NULL,          -- cart event time, microseconds since the Unix epoch, UTC
    event_id       TEXT NOT NULL,             -- cart id
    event_type     TEXT NOT NULL CHECK (event_type IN ('abandoned', 'converted')),
    cart_value     REAL CHECK (cart_value IS NULL OR cart_value >= 0),
    PRIMARY KEY (shop_id, customer_id, event_time_us, event_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX cart_events_event_id ON cart_events (shop_id, event_id);

CREATE TABLE support_interactions (
    shop_id              TEXT NOT NULL DEFAULT '',
    customer_id          TEXT NOT NULL,
    event_time_us        INTEGER NOT NULL,    -- interaction time, microseconds since the Unix epoch, UTC
    event_id             TEXT NOT NULL,       -- ticket id
    response_time_hours  REAL CHECK (response_time_hours IS NULL OR response_time_hours >= 0),
    escalated            INTEGER NOT NULL DEFAULT 0 CHECK (escalated IN (0, 1)),
    PRIMARY KEY (shop_id, customer_id, event_time_us, event_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX support_interactions_event_id ON support_interactions (shop_id, event_id);

-- Events that were offered but not stored, with the reason.
CREATE TABLE rejected_events (
    id           INTEGER PRIMARY KEY,
    shop_id      TEXT NOT NULL DEFAULT '',
    kind         TEXT NOT NULL,               -- purchase, session, cart_event, support_interaction, customer
    payload      TEXT NOT NULL,               -- the offered record, as JSON (non-JSON values as text)
    reason       TEXT NOT NULL,               -- why it was rejected, naming the field
    received_at  TEXT NOT NULL                -- ISO-8601 UTC, when it was offered
);
CREATE INDEX rejected_events_by_reason ON rejected_events (shop_id, kind, reason);

-- Readable views: the same rows with event_time as ISO-8601 UTC text.
CREATE VIEW purchases_readable AS
SELECT shop_id, customer_id, event_id AS order_id,
       strftime('%Y-%m-%dT%H:%M:%fZ', event_time_us / 1000000.0, 'unixepoch') AS event_time,
       order_value
FROM purchases;

CREATE VIEW sessions_readable AS
SELECT shop_id, customer_id, event_id AS session_id,
       strftime('%Y-%m-%dT%H:%M:%fZ', event_time_us / 1000000.0, 'unixepoch') AS event_time,
       duration_seconds, device_type
FROM sessions;

CREATE VIEW cart_events_readable AS
SELECT shop_id, customer_id, event_id AS cart_id,
       strftime('%Y-%m-%dT%H:%M:%fZ', event_time_us / 1000000.0, 'unixepoch') AS event_time,
       event_type, cart_value
FROM cart_events;

CREATE VIEW support_interactions_readable AS
SELECT shop_id, customer_id, event_id AS ticket_id,
       strftime('%Y-%m-%dT%H:%M:%fZ', event_time_us / 1000000.0, 'unixepoch') AS event_time,
       response_time_hours, escalated
FROM support_interactions;

-- Every customer known to a shop: those with metadata and those with any event.
CREATE VIEW all_customers AS
SELECT shop_id, customer_id FROM customers
UNION SELECT shop_id, customer_id FROM purchases
UNION SELECT shop_id, customer_id FROM sessions
UNION SELECT shop_id, customer_id FROM cart_events
UNION SELECT shop_id, customer_id FROM support_interactions;
