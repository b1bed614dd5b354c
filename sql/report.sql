-- Queries of the feature quality report (store/report.py, `caf report`). The values of one
-- feature column are copied, once per snapshot, into the temporary table report_values
-- (snapshot 0: customer_features, the last materialisation; 1: customer_features_previous, the
-- one before), indexed on (snapshot, v): every statistic below reads that table as written.

-- name: report_create_values
CREATE TEMP TABLE IF NOT EXISTS report_values (
    snapshot INTEGER NOT NULL,  -- 0 the last materialisation, 1 the previous one
    v                           -- the column's value (any type; NULL kept)
);

-- name: report_index_values
CREATE INDEX IF NOT EXISTS temp.report_values_by_value ON report_values (snapshot, v);

-- name: report_create_edges
-- The upper edges of the drift bins of one column (bin i: edge i-1 < v <= edge i; the last
-- bin, numbered :bins, takes everything above the last edge).
CREATE TEMP TABLE IF NOT EXISTS report_edges (
    bin    INTEGER PRIMARY KEY,
    upper  REAL NOT NULL
);

-- name: report_clear
DELETE FROM report_values;

-- name: report_drop_index
-- (the index is built after a column's values are copied: one sort, not an insert per row)
DROP INDEX IF EXISTS temp.report_values_by_value;

-- name: report_clear_edges
DELETE FROM report_edges;

-- name: report_insert_edge
INSERT INTO report_edges (bin, upper) VALUES (:bin, :upper);

-- name: report_column_stats
-- One snapshot's column: rows, non-NULL values, zeros, min, max, mean, distinct values.
SELECT COUNT(*) AS rows, COUNT(v) AS present, COALESCE(SUM(v = 0), 0) AS zeros,
       MIN(v) AS min, MAX(v) AS max, AVG(v) AS mean, COUNT(DISTINCT v) AS distinct_values
FROM report_values
WHERE snapshot = :snapshot;

-- name: report_value_at
-- The value at a 0-based rank among the snapshot's non-NULL values in ascending order
-- (a quantile q is the value at rank floor(q * (present - 1))).
SELECT v
FROM report_values
WHERE snapshot = :snapshot AND v IS NOT NULL
ORDER BY v
LIMIT 1 OFFSET :rank;

-- name: report_histogram
-- Equal-width bins of the snapshot's non-NULL values: bin = floor((v - :low) / :width), the
-- maximum in the last bin (:bins - 1).
SELECT MIN(CAST((v - :low) / :width AS INTEGER), :bins - 1) AS bin, COUNT(*) AS n
FROM report_values
WHERE snapshot = :snapshot AND v IS NOT NULL
GROUP BY bin
ORDER BY bin;

-- name: report_categories
-- The snapshot's most frequent values (NULL included), most frequent first.
SELECT v, COUNT(*) AS n
FROM report_values
WHERE snapshot = :snapshot
GROUP BY v
ORDER BY n DESC, v
LIMIT :limit;

-- name: report_value_counts
-- The snapshot's values (NULL included) with their rows, in value order (NULL first): the plot of
-- a numeric column with few distinct values.
SELECT v, COUNT(*) AS n
FROM report_values
WHERE snapshot = :snapshot
GROUP BY v
ORDER BY v
LIMIT :limit;

-- name: report_binned
-- Rows per snapshot and drift bin: -1 for NULL, else the first bin whose upper edge is at or
-- above the value (report_edges), else the last bin :bins.
SELECT snapshot,
       CASE WHEN v IS NULL THEN -1
            ELSE COALESCE((SELECT MIN(e.bin) FROM report_edges AS e WHERE v <= e.upper), :bins) END AS bin,
       COUNT(*) AS n
FROM report_values
GROUP BY snapshot, bin;

-- name: report_by_value
-- Rows per snapshot and value (the drift bins of a categorical column: one per value).
SELECT snapshot, v, COUNT(*) AS n
FROM report_values
GROUP BY snapshot, v;
