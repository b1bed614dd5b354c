-- Behaviour features: segmentation family. See purchases.sql for `target`,
-- docs/behavior.md for every definition and constant.
-- Parameters (documented constants of store.behavior):
--   :shop_id
--   :rfm_bins               number of score classes (5: scores 1..5)
--   :new_customer_us        'new': first purchase at most this long before as_of (30 days)
--   :risk_points            points per raised flag in risk_score (25; 4 flags -> 0..100)
--   (the retention flags come from all_features, with the seed's constants of store.features)
-- Queries: behavior_rfm_population, behavior_rfm_ranks, behavior_rfm_scores (or behavior_rfm_scores_few for one
-- customer), behavior_retention (reads all_features), behavior_segments, behavior_segments_rows.

-- name: behavior_rfm_population
-- One row per (as_of of the targets, shop customer with a purchase at or
-- before it): the population the RFM scores are ranked in.
SELECT
    a.as_of_us AS as_of_us,
    p.customer_id AS customer_id,
    -- recency_us: as_of - last purchase; microseconds
    a.as_of_us - MAX(p.event_time_us) AS recency_us,
    -- frequency: purchases at or before as_of; integer
    COUNT(*) AS frequency,
    -- monetary: sum of order values at or before as_of; currency units
    TOTAL(p.order_value) AS monetary,
    -- first_us: first purchase; microseconds since the epoch
    MIN(p.event_time_us) AS first_us
FROM (SELECT DISTINCT as_of_us FROM target) AS a
JOIN purchases AS p
    ON p.shop_id = :shop_id
   AND p.event_time_us <= a.as_of_us
GROUP BY a.as_of_us, p.customer_id

-- name: behavior_rfm_ranks
-- Per member of the population: how many members have a strictly worse value
-- (longer recency, fewer purchases, less value), by a rank over the whole
-- population, and the population's size. behavior_rfm_scores turns these into
-- scores; behavior_rfm_ranks_few counts the same numbers for a few targets.
SELECT
    as_of_us,
    customer_id,
    -- worse_recency: members with a longer recency; integer
    RANK() OVER (PARTITION BY as_of_us ORDER BY recency_us DESC) - 1 AS worse_recency,
    -- worse_frequency: members with fewer purchases; integer
    RANK() OVER (PARTITION BY as_of_us ORDER BY frequency) - 1 AS worse_frequency,
    -- worse_monetary: members with less value; integer
    RANK() OVER (PARTITION BY as_of_us ORDER BY monetary) - 1 AS worse_monetary,
    -- population: members of the population at this as_of; integer
    COUNT(*) OVER (PARTITION BY as_of_us) AS population,
    -- first_us: first purchase (for the 'new' segment); microseconds since the epoch
    first_us
FROM behavior_rfm_population

-- name: behavior_rfm_scores
-- The RFM score rule, written here only: score of a value = 1 + floor(:rfm_bins
-- x (members of the population with a strictly worse value) / (population
-- size)): quantile classes by rank, ties share a score, 1..:rfm_bins. Reads
-- behavior_rfm_ranks (or, for one customer, behavior_rfm_ranks_few in its place).
SELECT
    as_of_us,
    customer_id,
    -- recency_score: 1..rfm_bins, higher = more recent; integer
    1 + (:rfm_bins * worse_recency) / population AS recency_score,
    -- frequency_score: 1..rfm_bins, higher = more purchases; integer
    1 + (:rfm_bins * worse_frequency) / population AS frequency_score,
    -- monetary_score: 1..rfm_bins, higher = more value; integer
    1 + (:rfm_bins * worse_monetary) / population AS monetary_score,
    -- first_us: first purchase (for the 'new' segment); microseconds since the epoch
    first_us
FROM behavior_rfm_ranks

-- name: behavior_rfm_ranks_few
-- The same numbers as behavior_rfm_ranks, for the target customers only, by
-- counting the population members with a strictly worse value (no window
-- sorts over the whole population): store.behavior uses it in place of
-- behavior_rfm_ranks for a single customer; O(targets x population).
SELECT
    me.as_of_us AS as_of_us,
    me.customer_id AS customer_id,
    -- worse_recency, worse_frequency, worse_monetary, population: as in behavior_rfm_ranks; integer
    SUM(pop.recency_us > me.recency_us) AS worse_recency,
    SUM(pop.frequency < me.frequency) AS worse_frequency,
    SUM(pop.monetary < me.monetary) AS worse_monetary,
    COUNT(*) AS population,
    -- first_us: first purchase; microseconds since the epoch
    me.first_us AS first_us
FROM (SELECT DISTINCT t.as_of_us, t.customer_id FROM target AS t) AS w
JOIN behavior_rfm_population AS me ON me.as_of_us = w.as_of_us AND me.customer_id = w.customer_id
JOIN behavior_rfm_population AS pop ON pop.as_of_us = w.as_of_us
GROUP BY me.as_of_us, me.customer_id

-- name: behavior_rfm_scores_snapshot
-- reads: recency_score, frequency_score, monetary_score
-- The same scores as behavior_rfm_scores, read from the shop's materialized
-- customer_features rows (family behavior_segments) at the target's as_of:
-- store.behavior uses it for a single customer only when that snapshot is
-- current (its last run is at this as_of, no event changed since, the
-- customer has a row), so the values are those the population would give.
-- One primary-key lookup and one indexed MIN instead of a pass over the
-- shop's purchases.
SELECT
    t.as_of_us AS as_of_us,
    t.customer_id AS customer_id,
    -- recency_score, frequency_score, monetary_score: customer_features columns; integer 1..rfm_bins; NULL when no purchase
    cf.recency_score AS recency_score,
    cf.frequency_score AS frequency_score,
    cf.monetary_score AS monetary_score,
    -- first_us: first purchase at or before as_of; microseconds since the epoch; NULL when none
    (SELECT MIN(p.event_time_us) FROM purchases AS p
      WHERE p.shop_id = :shop_id AND p.customer_id = t.customer_id AND p.event_time_us <= t.as_of_us) AS first_us
FROM target AS t
JOIN customer_features AS cf
    ON cf.shop_id = :shop_id
   AND cf.customer_id = t.customer_id
   AND cf.as_of_us = t.as_of_us

-- name: behavior_retention
-- requires: all_features
-- The seed retention flags read from the family all_features (sql/all_features.sql,
-- the only place their rules are written; its CTE, with the four seed families
-- it reads, comes before this one on the requires lines of behavior_features,
-- behavior_family and the edge query), and the rule-based risk score over them.
SELECT
    target_id,
    -- recency_risk, declining_engagement, support_risk, cart_abandonment_risk, retention_concern: as in all_features; 0/1 (boolean)
    recency_risk, declining_engagement, support_risk, cart_abandonment_risk, retention_concern,
    -- risk_score: :risk_points x (recency_risk + declining_engagement + support_risk + cart_abandonment_risk); rule-based, NOT a probability; integer 0..100
    :risk_points * (recency_risk + declining_engagement + support_risk + cart_abandonment_risk) AS risk_score
FROM all_features

-- family: behavior_segments
-- order: 100
-- tables: purchases
-- requires: behavior_rfm_population, behavior_rfm_ranks, behavior_rfm_scores
-- refresh all: refresh_segments
-- added by: issue 5 (behaviour features)
-- window: all events at or before as_of (no window); docs/behavior.md
-- helpers: customer_id
-- table only: account_created_us
-- derived: account_age_days = CASE WHEN account_created_us <= as_of_us THEN (as_of_us - account_created_us) / 86400000000 END
-- The population-relative and as_of-continuous features (materialize: the
-- family behavior_segments, recomputed for every customer on each refresh).
-- The scores reach their targets through one window over target UNION ALL
-- scores (a sort, never a join of two derived tables: SQLite does not always
-- index those, and a cohort would then cost targets x population).
SELECT
    x.target_id AS target_id,
    -- customer_id: The target's customer (lets set-based callers read this CTE alone).; text, customer id; never NULL
    x.customer_id AS customer_id,
    -- RFM scores (behavior_rfm_scores):
    -- recency_score: 1 + floor(5 x shop customers with a longer recency / shop customers with a purchase).; integer, score 1..5; NULL when no purchase; window: the shop's purchases at or before as_of (rank among customers)
    x.recency_score AS recency_score,
    -- frequency_score: 1 + floor(5 x shop customers with fewer purchases / shop customers with a purchase).; integer, score 1..5; NULL when no purchase; window: the shop's purchases at or before as_of (rank among customers)
    x.frequency_score AS frequency_score,
    -- monetary_score: 1 + floor(5 x shop customers with less value / shop customers with a purchase).; integer, score 1..5; NULL when no purchase; window: the shop's purchases at or before as_of (rank among customers)
    x.monetary_score AS monetary_score,
    -- customer_segment: Rule-based RFM segment (first matching rule of docs/behavior.md).; text, no_purchases/new/champions/loyal/at_risk/hibernating/needs_attention; never NULL ('no_purchases'); window: the shop's purchases at or before as_of; 'new': first purchase within 30 days
    --   the first rule that holds, in this order:
    --   no_purchases (no purchase at or before as_of), new (first purchase within :new_customer_us),
    --   champions (R >= 4, F >= 4, M >= 4), loyal (R >= 3, F >= 4), at_risk (R <= 2, F >= 3),
    --   hibernating (R <= 2), needs_attention (everything else)
    CASE
        WHEN x.first_us IS NULL THEN 'no_purchases'
        WHEN x.first_us >= x.as_of_us - :new_customer_us THEN 'new'
        WHEN x.recency_score >= 4 AND x.frequency_score >= 4 AND x.monetary_score >= 4 THEN 'champions'
        WHEN x.recency_score >= 3 AND x.frequency_score >= 4 THEN 'loyal'
        WHEN x.recency_score <= 2 AND x.frequency_score >= 3 THEN 'at_risk'
        WHEN x.recency_score <= 2 THEN 'hibernating'
        ELSE 'needs_attention'
    END AS customer_segment,
    -- account_age_days: Whole days from the customer's created_at to as_of.; integer, days; NULL when created_at is unknown or after as_of; window: customers.created_at (not an event)
    --   (derived: whole days, floor; the derived line above is its definition, computed after
    --   this query's columns from account_created_us and the target's as_of_us, and when
    --   customer_features is read)
    -- account_created_us: The customer's created_at.; integer, microseconds since 1970-01-01 UTC; NULL when unknown; window: customers.created_at (not an event)
    cu.created_at_us AS account_created_us
FROM (
    SELECT target_id, customer_id, as_of_us,
           MAX(r) OVER w AS recency_score, MAX(f) OVER w AS frequency_score,
           MAX(m) OVER w AS monetary_score, MAX(first) OVER w AS first_us
    FROM (
        SELECT target_id, customer_id, as_of_us, NULL AS r, NULL AS f, NULL AS m, NULL AS first
        FROM target
        UNION ALL
        SELECT NULL, customer_id, as_of_us, recency_score, frequency_score, monetary_score, first_us
        FROM behavior_rfm_scores
    )
    WINDOW w AS (PARTITION BY as_of_us, customer_id)
) AS x
LEFT JOIN customers AS cu
    ON cu.shop_id = :shop_id
   AND cu.customer_id = x.customer_id
WHERE x.target_id IS NOT NULL

-- name: behavior_segments_rows
-- requires: behavior_rfm_population, behavior_rfm_ranks, behavior_rfm_scores, behavior_segments
-- The behavior_segments columns of every customer the target names, keyed by
-- customer id: store.behavior.refresh_segments reads it (its target: every row
-- of the shop in customer_features, at the new :as_of_us) into a temporary
-- table that behavior_segments_update copies from. The rules are those of
-- behavior_segments itself, the only place they are written.
SELECT
    -- customer_id: the customer; text
    customer_id,
    -- recency_score, frequency_score, monetary_score, customer_segment, account_created_us: as in behavior_segments
    recency_score, frequency_score, monetary_score, customer_segment, account_created_us
FROM behavior_segments
ORDER BY customer_id

-- name: behavior_segments_update
-- Brings the behavior_segments columns of every row of the shop in
-- customer_features (its stored rows, customer_features_stored) to :as_of_us (store.behavior.refresh_segments): each row
-- takes the values behavior_segments_rows computed for its customer into the
-- temporary table behavior_segments_computed (one row per stored row of the shop), one
-- primary-key lookup per row, and only a row whose values differ is written: a day
-- later most customers keep their scores and segment (a rank among the shop's
-- customers moves only when others overtake it), so a refresh writes few rows.
-- It sets exactly the behavior_segments family's stored columns, those that are not
-- derived (store.behavior makes the temporary table from them, registry.stored_columns;
-- tests/test_behavior_materialize.py checks the SET list).
UPDATE customer_features_stored AS c SET
    -- the behavior_segments columns, copied
    recency_score = s.recency_score,
    frequency_score = s.frequency_score,
    monetary_score = s.monetary_score,
    customer_segment = s.customer_segment,
    account_created_us = s.account_created_us
FROM temp.behavior_segments_computed AS s
WHERE c.shop_id = :shop_id
  AND c.customer_id = s.customer_id
  AND (c.recency_score, c.frequency_score, c.monetary_score, c.customer_segment, c.account_created_us)
      IS NOT (s.recency_score, s.frequency_score, s.monetary_score, s.customer_segment, s.account_created_us)
