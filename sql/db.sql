-- Opening a database file (store/db.py): is it a store, and what holds its lock.

-- name: schema_object_count
-- How many schema objects (tables, indexes, views, triggers) the database has, SQLite's own
-- sqlite_* objects left out. Also the first statement of a read-only open: it reads the schema,
-- so a file SQLite cannot open read-only fails here, before the store uses the connection.
SELECT
    count(*) AS objects  -- schema objects; integer, 0 for an empty database
FROM sqlite_master
WHERE name NOT LIKE 'sqlite\_%' ESCAPE '\';

-- name: schema_object_names
-- The first :limit schema object names, by name, of a database that is not a store (shown in
-- the refusal message).
SELECT
    name  -- object name; text
FROM sqlite_master
WHERE name NOT LIKE 'sqlite\_%' ESCAPE '\'
ORDER BY name
LIMIT :limit;

-- name: running_loads
-- Loads recorded as running (in progress, or interrupted and never resumed), oldest first: named
-- in the message of DatabaseLockedError as possible holders of the write lock.
SELECT
    id,           -- loads.id; integer
    shop_id,      -- text
    kind,         -- kind or preset name
    source_name,  -- file name as given; '-' = standard input
    started_at,   -- ISO-8601 UTC text
    rows_read     -- input rows committed so far; integer
FROM loads
WHERE status = 'running'
ORDER BY id
LIMIT :limit;
