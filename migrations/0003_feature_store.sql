-- Migration 0003: the feature store (docs/feature_store.md).
--
-- * materializations: one row per materialize or refresh run;
-- * feature_catalog: the definition record of every feature (store/catalog.py
--   writes it; read it with sqlite3 -header -column);
-- * changed_customers: customers whose events changed since the last
--   materialisation of their shop, kept by the triggers below so that
--   refresh() recomputes only them (and those with events crossing a window
--   edge). The customer_features table itself is created by materialize(),
--   its columns following the feature catalog and the windows asked for.

CREATE TABLE materializations (
    id              INTEGER PRIMARY KEY,
    shop_id         TEXT NOT NULL DEFAULT '',
    kind            TEXT NOT NULL CHECK (kind IN ('full', 'refresh')),
    as_of           TEXT NOT NULL,            -- the snapshot's point in time, ISO-8601 UTC
    as_of_us        INTEGER NOT NULL,         -- the same, microseconds since the Unix epoch
    windows         TEXT NOT NULL CHECK (json_valid(windows)),  -- JSON array of window lengths in days
    columns         TEXT NOT NULL CHECK (json_valid(columns)),  -- JSON array of customer_features columns
    schema_version  TEXT NOT NULL,            -- latest migration step applied when it ran
    started_at      TEXT NOT NULL,            -- ISO-8601 UTC
    finished_at     TEXT NOT NULL,            -- ISO-8601 UTC
    rows            INTEGER NOT NULL,         -- rows of the shop in customer_features afterwards
    recomputed      INTEGER NOT NULL          -- customers computed by this run (= rows for 'full')
);
CREATE INDEX materializations_by_shop ON materializations (shop_id, id);

CREATE TABLE feature_catalog (
    name            TEXT PRIMARY KEY,         -- feature name (materialized columns: <name> and <name>_<N>d)
    type            TEXT NOT NULL,            -- integer, real, text, boolean (0/1) or object (dict)
    unit            TEXT NOT NULL,
    window_rule     TEXT NOT NULL,            -- which events count
    null_rule       TEXT NOT NULL,            -- the value when there is nothing to compute from
    meaning         TEXT NOT NULL,            -- one sentence
    query           TEXT NOT NULL,            -- the named query in sql/ that computes it
    materialized    TEXT NOT NULL,            -- 'windowed', 'fixed' or '' (not a column)
    added_by        TEXT NOT NULL,
    position        INTEGER NOT NULL,         -- catalog order
    updated_at      TEXT NOT NULL             -- ISO-8601 UTC, when the record was written
);

CREATE TABLE changed_customers (
    shop_id      TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    PRIMARY KEY (shop_id, customer_id)
) WITHOUT ROWID;

-- One trigger per event table and change; a new event table gets the same
-- three triggers in its own migration (docs/feature_store.md).
CREATE TRIGGER changed_customers_purchases_insert AFTER INSERT ON purchases BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (NEW.shop_id, NEW.customer_id);
END;
CREATE TRIGGER changed_customers_purchases_update AFTER UPDATE ON purchases BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (OLD.shop_id, OLD.customer_id), (NEW.shop_id, NEW.customer_id);
END;
CREATE TRIGGER changed_customers_purchases_delete AFTER DELETE ON purchases BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (OLD.shop_id, OLD.customer_id);
END;

CREATE TRIGGER changed_customers_sessions_insert AFTER INSERT ON sessions BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (NEW.shop_id, NEW.customer_id);
END;
CREATE TRIGGER changed_customers_sessions_update AFTER UPDATE ON sessions BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (OLD.shop_id, OLD.customer_id), (NEW.shop_id, NEW.customer_id);
END;
CREATE TRIGGER changed_customers_sessions_delete AFTER DELETE ON sessions BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (OLD.shop_id, OLD.customer_id);
END;

CREATE TRIGGER changed_customers_cart_events_insert AFTER INSERT ON cart_events BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (NEW.shop_id, NEW.customer_id);
END;
CREATE TRIGGER changed_customers_cart_events_update AFTER UPDATE ON cart_events BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (OLD.shop_id, OLD.customer_id), (NEW.shop_id, NEW.customer_id);
END;
CREATE TRIGGER changed_customers_cart_events_delete AFTER DELETE ON cart_events BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (OLD.shop_id, OLD.customer_id);
END;

CREATE TRIGGER changed_customers_support_interactions_insert AFTER INSERT ON support_interactions BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (NEW.shop_id, NEW.customer_id);
END;
CREATE TRIGGER changed_customers_support_interactions_update AFTER UPDATE ON support_interactions BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (OLD.shop_id, OLD.customer_id), (NEW.shop_id, NEW.customer_id);
END;
CREATE TRIGGER changed_customers_support_interactions_delete AFTER DELETE ON support_interactions BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (OLD.shop_id, OLD.customer_id);
END;

CREATE TRIGGER changed_customers_refunds_insert AFTER INSERT ON refunds BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (NEW.shop_id, NEW.customer_id);
END;
CREATE TRIGGER changed_customers_refunds_update AFTER UPDATE ON refunds BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (OLD.shop_id, OLD.customer_id), (NEW.shop_id, NEW.customer_id);
END;
CREATE TRIGGER changed_customers_refunds_delete AFTER DELETE ON refunds BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (OLD.shop_id, OLD.customer_id);
END;

-- A new customer (metadata only) adds a row to customer_features.
CREATE TRIGGER changed_customers_customers_insert AFTER INSERT ON customers BEGIN
    INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) VALUES (NEW.shop_id, NEW.customer_id);
END;
