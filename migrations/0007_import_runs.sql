-- Issue 13 (Spark): a materializations row of kind 'import' records feature rows computed
-- elsewhere (materialize_on_spark's Parquet) and loaded by import_features / caf
-- import-features with the same atomic swap as materialize. SQLite cannot change a CHECK
-- constraint in place: the table is rebuilt with the same columns, rows and index.
CREATE TABLE materializations_0007 (
    id              INTEGER PRIMARY KEY,
    shop_id         TEXT NOT NULL DEFAULT '',
    kind            TEXT NOT NULL CHECK (kind IN ('full', 'refresh', 'import')),
    as_of           TEXT NOT NULL,            -- the snapshot's point in time, ISO-8601 UTC
    as_of_us        INTEGER NOT NULL,         -- the same, microseconds since the Unix epoch
    windows         TEXT NOT NULL CHECK (json_valid(windows)),  -- JSON array of window lengths in days
    columns         TEXT NOT NULL CHECK (json_valid(columns)),  -- JSON array of customer_features columns
    schema_version  TEXT NOT NULL,            -- latest migration step applied when it ran
    started_at      TEXT NOT NULL,            -- ISO-8601 UTC
    finished_at     TEXT NOT NULL,            -- ISO-8601 UTC
    rows            INTEGER NOT NULL,         -- rows of the shop in customer_features afterwards
    recomputed      INTEGER NOT NULL,         -- customers computed (or imported) by this run
    families        TEXT CHECK (families IS NULL OR json_valid(families)),
    all_families    INTEGER
);
INSERT INTO materializations_0007 (id, shop_id, kind, as_of, as_of_us, windows, columns, schema_version,
                                   started_at, finished_at, rows, recomputed, families, all_families)
    SELECT id, shop_id, kind, as_of, as_of_us, windows, columns, schema_version,
           started_at, finished_at, rows, recomputed, families, all_families FROM materializations;
DROP TABLE materializations;
ALTER TABLE materializations_0007 RENAME TO materializations;
CREATE INDEX materializations_by_shop ON materializations (shop_id, id);
