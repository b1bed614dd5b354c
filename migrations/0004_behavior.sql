-- Migration 0004: the behaviour event kinds (issue 5).
--
-- * interactions: clickstream events (page and product views, searches, cart
--   actions, checkouts, purchases), one row per event;
-- * sessions gain optional start/end times, page views, browser, referrer and
--   channel (existing rows keep NULL: "not known");
-- * purchase_attributions: the marketing source and medium of an order;
-- * customers gain created_at_us (account creation, microseconds since the
--   Unix epoch, UTC; NULL when not known).
-- Same conventions as 0001: event rows clustered on
-- (shop_id, customer_id, event_time_us, event_id), (shop_id, event_id) unique,
-- readable views with ISO-8601 UTC text times.

CREATE TABLE interactions (
    shop_id                TEXT NOT NULL DEFAULT '',
    customer_id            TEXT NOT NULL,
    event_time_us          INTEGER NOT NULL,   -- interaction time, microseconds since the Unix epoch, UTC
    event_id               TEXT NOT NULL,      -- the caller's event id, or a generated one
    session_id             TEXT,               -- the session it belongs to (sessions.event_id); NULL when not known
    event_type             TEXT NOT NULL CHECK (event_type IN (
                               'page_view', 'product_view', 'category_view', 'search',
                               'add_to_cart', 'remove_from_cart', 'checkout', 'purchase')),
    page_type              TEXT,               -- e.g. home, product, category, search, cart, checkout; free text
    product_id             TEXT,               -- the product concerned; NULL when none
    category               TEXT,               -- the product's or page's category; NULL when none
    search_query           TEXT,               -- the query of a search; NULL otherwise
    view_duration_seconds  REAL CHECK (view_duration_seconds IS NULL OR view_duration_seconds >= 0),
    device_type            TEXT,               -- device of the interaction; NULL when not known
    PRIMARY KEY (shop_id, customer_id, event_time_us, event_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX interactions_event_id ON interactions (shop_id, event_id);
-- The interactions of one session (page views per session, session-level cart and checkout outcomes).
CREATE INDEX interactions_by_session ON interactions (shop_id, customer_id, session_id);

ALTER TABLE sessions ADD COLUMN session_start_us INTEGER;  -- session start, microseconds since the Unix epoch, UTC; NULL when not known
ALTER TABLE sessions ADD COLUMN session_end_us INTEGER;    -- session end, same unit; NULL when not known
ALTER TABLE sessions ADD COLUMN page_views INTEGER CHECK (page_views IS NULL OR page_views >= 0);
ALTER TABLE sessions ADD COLUMN browser TEXT;
ALTER TABLE sessions ADD COLUMN referrer TEXT;             -- where the visit came from (URL or name), free text
ALTER TABLE sessions ADD COLUMN channel TEXT;              -- marketing channel (direct, organic, paid, email, social, ...), free text

CREATE TABLE purchase_attributions (
    shop_id        TEXT NOT NULL DEFAULT '',
    customer_id    TEXT NOT NULL,
    event_time_us  INTEGER NOT NULL,          -- attribution (order) time, microseconds since the Unix epoch, UTC
    event_id       TEXT NOT NULL,             -- the order id: one attribution per order
    source         TEXT NOT NULL,             -- e.g. google, newsletter, facebook, direct
    medium         TEXT,                      -- e.g. cpc, organic, email, referral; NULL when not known
    PRIMARY KEY (shop_id, customer_id, event_time_us, event_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX purchase_attributions_event_id ON purchase_attributions (shop_id, event_id);

ALTER TABLE customers ADD COLUMN created_at_us INTEGER;    -- account creation, microseconds since the Unix epoch, UTC; NULL when not known

CREATE VIEW interactions_readable AS
SELECT shop_id, customer_id, event_id,
       strftime('%Y-%m-%dT%H:%M:%fZ', event_time_us / 1000000.0, 'unixepoch') AS event_time,
       session_id, event_type, page_type, product_id, category, search_query,
       view_duration_seconds, device_type
FROM interactions;

CREATE VIEW purchase_attributions_readable AS
SELECT shop_id, customer_id, event_id AS order_id,
       strftime('%Y-%m-%dT%H:%M:%fZ', event_time_us / 1000000.0, 'unixepoch') AS event_time,
       source, medium
FROM purchase_attributions;

CREATE VIEW sessions_behavior_readable AS
SELECT shop_id, customer_id, event_id AS session_id,
       strftime('%Y-%m-%dT%H:%M:%fZ', event_time_us / 1000000.0, 'unixepoch') AS event_time,
       duration_seconds, device_type,
       strftime('%Y-%m-%dT%H:%M:%fZ', session_start_us / 1000000.0, 'unixepoch') AS session_start,
       strftime('%Y-%m-%dT%H:%M:%fZ', session_end_us / 1000000.0, 'unixepoch') AS session_end,
       page_views, browser, referrer, channel
FROM sessions;

CREATE VIEW customers_readable AS
SELECT shop_id, customer_id, metadata, updated_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', created_at_us / 1000000.0, 'unixepoch') AS created_at
FROM customers;

-- Every customer known to a shop (as 0002 defines it, with refunds), now also those
-- with only interactions or attributions.
DROP VIEW all_customers;
CREATE VIEW all_customers AS
SELECT shop_id, customer_id FROM customers
UNION SELECT shop_id, customer_id FROM purchases
UNION SELECT shop_id, customer_id FROM sessions
UNION SELECT shop_id, customer_id FROM cart_events
UNION SELECT shop_id, customer_id FROM support_interactions
UNION SELECT shop_id, customer_id FROM refunds
UNION SELECT shop_id, customer_id FROM interactions
UNION SELECT shop_id, customer_id FROM purchase_attributions;

-- Change log for refresh() (see 0003_feature_store.sql): the new event tables
-- get the same triggers as the others.
CREATE TRIGGER changed_customers_interactions_insert AFTER INSERT ON interactions BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (NEW.shop_id, NEW.customer_id);
END;
CREATE TRIGGER changed_customers_interactions_update AFTER UPDATE ON interactions BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (OLD.shop_id, OLD.customer_id), (NEW.shop_id, NEW.customer_id);
END;
CREATE TRIGGER changed_customers_interactions_delete AFTER DELETE ON interactions BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (OLD.shop_id, OLD.customer_id);
END;

CREATE TRIGGER changed_customers_purchase_attributions_insert AFTER INSERT ON purchase_attributions BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (NEW.shop_id, NEW.customer_id);
END;
CREATE TRIGGER changed_customers_purchase_attributions_update AFTER UPDATE ON purchase_attributions BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (OLD.shop_id, OLD.customer_id), (NEW.shop_id, NEW.customer_id);
END;
CREATE TRIGGER changed_customers_purchase_attributions_delete AFTER DELETE ON purchase_attributions BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (OLD.shop_id, OLD.customer_id);
END;
