-- RFM/T summaries in the conventions of the lifetimes library
-- (summary_data_from_transaction_data, calibration_and_holdout_data).
-- See docs/rfm.md for the definitions and store/rfm.py for the parameters.
--
-- Periods. A purchase's period is the number of the period (day, week or hour)
-- holding its local wall-clock time in the store's timezone (local_us of
-- purchase_local_time, sql/localtime.sql), counted from 1970-01-01 local:
--     period = (local_us + :bias_us) / :period_us - :bias_periods
-- where :period_us is the period length, :bias_us = a large multiple of a week
-- (so the integer division floors for times before 1970 too) plus, for weeks,
-- 3 days (weeks run Monday..Sunday, pandas Period 'W' = 'W-SUN'), and
-- :bias_periods = that multiple divided by :period_us.
-- Purchases counted: this shop's purchases (order_value >= 0) when :include_zero
-- is 1 (the default, as lifetimes counts every transaction), only those with
-- order_value > 0 when it is 0.
-- Shared parameters: :shop_id, :period_us, :bias_us, :bias_periods,
-- :include_zero (0/1), :include_first (0/1), :freq_multiplier (REAL > 0).

-- name: rfm_local_times
-- The counted purchases of the shop with their local wall-clock time: the one
-- place the queries below apply the counting rule, to the relation
-- purchase_local_time (sql/localtime.sql). rfm_counted_purchases reads it.
SELECT
    -- customer_id: the customer; text
    p.customer_id AS customer_id,
    -- event_time_us: the purchase time; microseconds since the epoch (UTC)
    p.event_time_us AS event_time_us,
    -- order_value: the order value; currency units
    p.order_value AS order_value,
    -- local_us: the purchase's local wall-clock time (purchase_local_time); microseconds since 1970-01-01 local
    p.local_us AS local_us
FROM purchase_local_time AS p
WHERE p.shop_id = :shop_id
  AND (p.order_value > 0 OR :include_zero)

-- name: rfm_counted_purchases
-- Each row of the relation rfm_local_times with its period: the one place the
-- period arithmetic is written. The queries below read it as a CTE after
-- rfm_local_times (their requires line); for one instant (an observation or
-- calibration end), store.rfm.period_of gives it rfm_instant as rfm_local_times.
SELECT
    -- customer_id, event_time_us, order_value: as in rfm_local_times
    l.customer_id AS customer_id,
    l.event_time_us AS event_time_us,
    l.order_value AS order_value,
    -- period: the period number of the local time; integer; NULL when local_us is NULL
    (l.local_us + :bias_us) / :period_us - :bias_periods AS period
FROM rfm_local_times AS l

-- name: rfm_last_period
-- requires: rfm_local_times, rfm_counted_purchases
-- The default observation end: the period of the last counted purchase.
SELECT
    -- last_period: largest period number of a counted purchase; integer; NULL when the shop has none
    MAX(c.period) AS last_period,
    -- last_us: the last counted purchase time; microseconds since the epoch (UTC); NULL when none
    MAX(c.event_time_us) AS last_us
FROM rfm_counted_purchases AS c

-- name: rfm_summary
-- requires: rfm_local_times, rfm_counted_purchases
-- One row per customer with a counted purchase in a period <= :end_period
-- (a purchase later in the observation end's own period counts, as in
-- lifetimes), ordered by customer_id.
SELECT
    -- customer_id: the customer; text
    c.customer_id AS customer_id,
    -- frequency: distinct purchase periods minus 1 (plus 1 back when :include_first); REAL (a whole number); 0.0 for a single period
    CAST(COUNT(*) - 1 + :include_first AS REAL) AS frequency,
    -- recency: last period minus first period, divided by :freq_multiplier; REAL periods; 0.0 for a single period
    (MAX(c.period) - MIN(c.period)) / :freq_multiplier AS recency,
    -- T: :end_period minus first period, divided by :freq_multiplier; REAL periods; never NULL
    (:end_period - MIN(c.period)) / :freq_multiplier AS T,
    -- monetary_value: mean of the per-period value sums, the first period excluded (included when :include_first); currency units; 0.0 when no period is left
    COALESCE(AVG(c.value) FILTER (WHERE c.period > c.first_period OR :include_first), 0.0) AS monetary_value
FROM (
    SELECT s.customer_id, s.period, s.value,
           MIN(s.period) OVER (PARTITION BY s.customer_id) AS first_period
    FROM (
        SELECT l.customer_id, l.period, SUM(l.order_value) AS value
        FROM rfm_counted_purchases AS l
        WHERE l.period <= :end_period
        GROUP BY l.customer_id, l.period
    ) AS s
) AS c
GROUP BY c.customer_id
ORDER BY c.customer_id

-- name: rfm_calibration_holdout
-- requires: rfm_local_times, rfm_counted_purchases
-- Calibration: counted purchases at or before :calibration_end_us (an instant),
-- summarised as rfm_summary with the observation end :calibration_period.
-- Holdout: counted purchases with :calibration_end_us < time <= :observation_end_us.
-- One row per customer with a calibration purchase (customers seen only in the
-- holdout are left out), ordered by customer_id. One pass over the purchases:
-- per (customer, period, part) sums, part 0 = calibration, 1 = holdout.
SELECT
    -- customer_id: the customer; text
    c.customer_id AS customer_id,
    -- frequency_cal: as rfm_summary frequency over the calibration purchases; REAL (a whole number)
    CAST(COUNT(*) FILTER (WHERE c.part = 0) - 1 + :include_first AS REAL) AS frequency_cal,
    -- recency_cal: as rfm_summary recency; REAL periods / :freq_multiplier
    (MAX(c.period) FILTER (WHERE c.part = 0) - MIN(c.period) FILTER (WHERE c.part = 0))
        / :freq_multiplier AS recency_cal,
    -- T_cal: :calibration_period minus the first period, / :freq_multiplier; REAL periods
    (:calibration_period - MIN(c.period) FILTER (WHERE c.part = 0)) / :freq_multiplier AS T_cal,
    -- monetary_value_cal: as rfm_summary monetary_value; currency units; 0.0 when no period is left
    COALESCE(AVG(c.value) FILTER (WHERE c.part = 0 AND (c.period > c.first_period OR :include_first)), 0.0)
        AS monetary_value_cal,
    -- frequency_holdout: distinct periods with a holdout purchase; REAL (a whole number); 0.0 when none
    CAST(COUNT(*) FILTER (WHERE c.part = 1) AS REAL) AS frequency_holdout,
    -- monetary_value_holdout: mean of the raw holdout purchase values (not per-period sums, as lifetimes); currency units; 0.0 when none
    COALESCE(SUM(c.value) FILTER (WHERE c.part = 1) / SUM(c.purchases) FILTER (WHERE c.part = 1), 0.0)
        AS monetary_value_holdout,
    -- duration_holdout: observation end period minus calibration end period, / :freq_multiplier; REAL periods; same for every row
    (:observation_period - :calibration_period) / :freq_multiplier AS duration_holdout
FROM (
    SELECT s.customer_id, s.period, s.part, s.value, s.purchases,
           MIN(s.period) FILTER (WHERE s.part = 0) OVER (PARTITION BY s.customer_id) AS first_period
    FROM (
        SELECT l.customer_id, l.period, l.part, SUM(l.order_value) AS value, COUNT(*) AS purchases
        FROM (
            SELECT c.customer_id, c.order_value, c.period,
                   CASE WHEN c.event_time_us <= :calibration_end_us THEN 0 ELSE 1 END AS part
            FROM rfm_counted_purchases AS c
            WHERE c.event_time_us <= :observation_end_us
        ) AS l
        WHERE l.part = 1 OR l.period <= :calibration_period
        GROUP BY l.customer_id, l.period, l.part
    ) AS s
) AS c
GROUP BY c.customer_id
HAVING COUNT(*) FILTER (WHERE c.part = 0) > 0
ORDER BY c.customer_id

-- name: rfm_instant
-- One instant, :time_us (an observation or calibration end), as the one row of
-- a relation rfm_local_times: store.rfm.period_of reads its period from
-- rfm_counted_purchases over it. Its local time is caf_local_us(:time_us), the
-- SQL function store/localtime.py installs with the offsets table (the same
-- values as purchase_local_time's lookup, from the same rows; one Python call
-- per statement here).
SELECT
    -- customer_id, order_value: none; NULL
    NULL AS customer_id,
    -- event_time_us: the instant; microseconds since the epoch (UTC); NULL when :time_us is NULL
    :time_us AS event_time_us,
    NULL AS order_value,
    -- local_us: its local wall-clock time; microseconds since 1970-01-01 local
    caf_local_us(:time_us) AS local_us

-- name: rfm_holdout_count
-- requires: rfm_local_times, rfm_counted_purchases
-- Whether any counted purchase falls in the holdout (:calibration_end_us, :observation_end_us].
SELECT
    -- holdout_purchases: 1 when there is at least one counted holdout purchase, else 0; integer
    EXISTS (
        SELECT 1 FROM rfm_counted_purchases AS c
        WHERE c.event_time_us > :calibration_end_us
          AND c.event_time_us <= :observation_end_us
    ) AS holdout_purchases
