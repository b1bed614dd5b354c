-- Purchase-sequence statistics (issue 5), a feature family shaped like
-- sql/purchases.sql: reads `target(target_id, customer_id, as_of_us)` and
-- returns one row per target. One self-contained SELECT (no WITH), so it can
-- be used as a CTE of compose() or on its own.
--
-- The sequence: the customer's purchases in shop :shop_id with
-- event_time_us <= as_of_us (all of them: zero-value purchases included, no
-- window), ordered by (event_time_us, event_id). Gaps: the n - 1 differences
-- between consecutive purchase times (0 for purchases at the same instant).
-- Standard deviation: POPULATION (divide by the number of gaps), so one gap
-- has a standard deviation of 0. Median gap: the middle gap, or for an even
-- number of gaps the mean of the two middle gaps. "Within 20% of the median":
-- 5 * |gap - median| <= median (exact in integers and halves; a median of 0
-- counts the zero gaps).
-- Parameters: :shop_id.

-- family: sequence_features
-- order: 80
-- tables: purchases
-- added by: issue 5 (sequence statistics)
-- One pass: target LEFT JOIN purchases (a target without purchases keeps one
-- row of NULLs), window functions per target_id, then GROUP BY target_id (no
-- join back to target, so no per-target scan of a materialised subquery).
-- Each window definition is a pass of SQLite over every purchase (and each
-- ORDER BY a sort), so the partition-wide values (n, the mean gap) share one
-- definition, and the pass in time order computes only what needs that order.
SELECT
    m.target_id AS target_id,
    -- sequence_purchase_count: Number of purchases at or before as_of.; integer, count; 0 when none; window: all events at or before as_of; ignores days; zero-value purchases included
    MAX(m.n) AS sequence_purchase_count,
    -- gap_mean_days: Mean gap between consecutive purchases (time order; 0 for purchases at the same instant).; real, days; NULL when fewer than 2 purchases
    MAX(m.gap_mean_us) / 86400000000.0 AS gap_mean_days,
    -- gap_std_days: Population standard deviation of the gaps between consecutive purchases.; real, days; NULL when fewer than 2 purchases; 0.0 with exactly 2
    --   (two-pass: deviations from the mean)
    SQRT(AVG((m.gap_us - m.gap_mean_us) * (m.gap_us - m.gap_mean_us))) / 86400000000.0 AS gap_std_days,
    -- gap_cv: Coefficient of variation of the gaps: gap_std_days / gap_mean_days.; real, ratio; NULL when fewer than 2 purchases or when the mean gap is 0
    CASE WHEN MAX(m.gap_mean_us) > 0 THEN
        SQRT(AVG((m.gap_us - m.gap_mean_us) * (m.gap_us - m.gap_mean_us))) / MAX(m.gap_mean_us)
    END AS gap_cv,
    -- order_value_trend: Least-squares slope of order value over order index 0..n-1 (time order).; real, currency units per order; NULL when fewer than 2 purchases
    --   = sum((i - (n-1)/2) * v) / (n(n^2-1)/12)
    CASE WHEN MAX(m.n) >= 2 THEN
        SUM((m.idx - (m.n - 1) / 2.0) * m.order_value) / (MAX(m.n) * (MAX(m.n) * MAX(m.n) - 1) / 12.0)
    END AS order_value_trend,
    -- gap_median_days: Median gap between consecutive purchases (mean of the middle two for an even number of gaps).; real, days; NULL when fewer than 2 purchases
    MAX(m.gap_median_us) / 86400000000.0 AS gap_median_days,
    -- periodicity: Share of gaps within 20% of the median gap (5 * |gap - median| <= median).; real, ratio 0..1; NULL when fewer than 2 purchases
    AVG(CASE WHEN m.gap_us IS NOT NULL THEN 5 * ABS(m.gap_us - m.gap_median_us) <= m.gap_median_us END)
        AS periodicity
FROM (
    SELECT
        r.*,
        AVG(CASE WHEN r.gap_us IS NOT NULL AND r.gap_rank IN (r.n / 2, (r.n + 1) / 2) THEN r.gap_us END)
            OVER (PARTITION BY r.target_id) AS gap_median_us
    FROM (
        SELECT
            o.*,
            COUNT(o.event_time_us) OVER (PARTITION BY o.target_id) AS n,
            AVG(o.gap_us) OVER (PARTITION BY o.target_id) AS gap_mean_us,
            -- rank 1..n-1 of the non-NULL gaps, smallest first
            ROW_NUMBER() OVER (PARTITION BY o.target_id ORDER BY o.gap_us NULLS LAST) AS gap_rank
        FROM (
            SELECT
                t.target_id AS target_id,
                p.event_time_us AS event_time_us,
                p.order_value AS order_value,
                ROW_NUMBER() OVER w - 1 AS idx,
                p.event_time_us - LAG(p.event_time_us) OVER w AS gap_us
            FROM target AS t
            LEFT JOIN purchases AS p
                ON p.shop_id = :shop_id
               AND p.customer_id = t.customer_id
               AND p.event_time_us <= t.as_of_us
            WINDOW w AS (PARTITION BY t.target_id ORDER BY p.event_time_us, p.order_value, p.event_id)
        ) AS o
    ) AS r
) AS m
GROUP BY m.target_id
