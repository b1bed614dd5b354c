-- Behaviour features: segmentation family. See purchases.sql for `target`,
-- docs/behavior.md for every definition and constant.
-- Parameters (documented constants of store.behavior):
--   :shop_id
--   :rfm_bins               number of score classes (5: scores 1..5)
--   :new_customer_us        'new': first purchase at most this long before as_of (30 days)
--   :risk_points            points per raised flag in risk_score (25; 4 flags -> 0..100)
--   (the retention flags come from all_features, with the seed's constants of store.features)
-- Queries: behavior_rfm_population, behavior_rfm_ranks, behavior_rfm_scores (or behavior_rfm_ranks_few or
-- behavior_rfm_scores_snapshot for one customer), behavior_retention (reads all_features), behavior_segments,
-- behavior_segments_rows, and those of store.behavior.refresh_segments (at the end).

-- name: behavior_rfm_population
-- One row per (as_of of the targets, shop customer with a purchase at or
-- before it): the population the RFM scores are ranked in, with each
-- member's three measures (higher ranks higher: a later last purchase, more
-- purchases, more value). store.behavior.refresh_segments runs it over the
-- purchases of the customers whose purchases changed only (its relation
-- `purchases` bound to behavior_rfm_refresh_purchases).
SELECT
    a.as_of_us AS as_of_us,
    p.customer_id AS customer_id,
    -- last_us: last purchase at or before as_of (the recency measure); microseconds since the epoch
    MAX(p.event_time_us) AS last_us,
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
-- (an earlier last purchase, fewer purchases, less value), by a rank over the
-- whole population, and the population's size. behavior_rfm_scores turns these
-- into scores; behavior_rfm_ranks_few counts the same numbers for a few targets.
SELECT
    m.as_of_us AS as_of_us,
    m.customer_id AS customer_id,
    -- worse_recency: members with an earlier last purchase (a longer recency); integer
    RANK() OVER (PARTITION BY m.as_of_us ORDER BY m.last_us) - 1 AS worse_recency,
    -- worse_frequency: members with fewer purchases; integer
    RANK() OVER (PARTITION BY m.as_of_us ORDER BY m.frequency) - 1 AS worse_frequency,
    -- worse_monetary: members with less value; integer
    RANK() OVER (PARTITION BY m.as_of_us ORDER BY m.monetary) - 1 AS worse_monetary,
    -- population: members of the population at this as_of (a count joined in: one sort fewer than a window); integer
    n.population AS population,
    -- last_us, frequency, monetary, first_us: the member's measures (behavior_rfm_population)
    m.last_us AS last_us, m.frequency AS frequency, m.monetary AS monetary, m.first_us AS first_us
FROM behavior_rfm_population AS m
JOIN (SELECT as_of_us, COUNT(*) AS population FROM behavior_rfm_population GROUP BY as_of_us) AS n
    ON n.as_of_us = m.as_of_us

-- name: behavior_rfm_scores
-- The RFM score rule, written here only: score of a value = 1 + floor(:rfm_bins
-- x (members of the population with a strictly worse value) / (population
-- size)): quantile classes by rank, ties share a score, 1..:rfm_bins. Reads
-- behavior_rfm_ranks (or, for one customer, behavior_rfm_ranks_few in its place).
-- With the member's measures: behavior_segments stores them (rfm_*), so that a
-- refresh finds the scores from the stored rows (behavior_rfm_boundaries_stored:
-- the same rule in boundary form, store.behavior.refresh_segments).
SELECT
    as_of_us,
    customer_id,
    -- recency_score: 1..rfm_bins, higher = more recent; integer
    1 + (:rfm_bins * worse_recency) / population AS recency_score,
    -- frequency_score: 1..rfm_bins, higher = more purchases; integer
    1 + (:rfm_bins * worse_frequency) / population AS frequency_score,
    -- monetary_score: 1..rfm_bins, higher = more value; integer
    1 + (:rfm_bins * worse_monetary) / population AS monetary_score,
    -- last_us, frequency, monetary, first_us: the member's measures (behavior_rfm_population)
    last_us, frequency, monetary, first_us
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
    SUM(pop.last_us < me.last_us) AS worse_recency,
    SUM(pop.frequency < me.frequency) AS worse_frequency,
    SUM(pop.monetary < me.monetary) AS worse_monetary,
    COUNT(*) AS population,
    -- last_us, frequency, monetary, first_us: the member's measures
    me.last_us AS last_us,
    me.frequency AS frequency,
    me.monetary AS monetary,
    me.first_us AS first_us
FROM (SELECT DISTINCT t.as_of_us, t.customer_id FROM target AS t) AS w
JOIN behavior_rfm_population AS me ON me.as_of_us = w.as_of_us AND me.customer_id = w.customer_id
JOIN behavior_rfm_population AS pop ON pop.as_of_us = w.as_of_us
GROUP BY me.as_of_us, me.customer_id

-- name: behavior_rfm_scores_snapshot
-- reads: recency_score, frequency_score, monetary_score, rfm_last_us, rfm_frequency, rfm_monetary, rfm_first_us
-- The same rows as behavior_rfm_scores, read from the shop's materialized
-- customer_features rows (family behavior_segments) at the target's as_of:
-- store.behavior uses it for a single customer only when that snapshot is
-- current (its last run is at this as_of, no event changed since, the
-- customer has a row), so the values are those the population would give.
-- One primary-key lookup instead of a pass over the shop's purchases; a
-- customer without a purchase (NULL measures) is no member, as there.
SELECT
    t.as_of_us AS as_of_us,
    t.customer_id AS customer_id,
    -- recency_score, frequency_score, monetary_score: customer_features columns; integer 1..rfm_bins
    cf.recency_score AS recency_score,
    cf.frequency_score AS frequency_score,
    cf.monetary_score AS monetary_score,
    -- last_us, frequency, monetary, first_us: the stored measures (rfm_*)
    cf.rfm_last_us AS last_us,
    cf.rfm_frequency AS frequency,
    cf.rfm_monetary AS monetary,
    cf.rfm_first_us AS first_us
FROM target AS t
JOIN customer_features AS cf
    ON cf.shop_id = :shop_id
   AND cf.customer_id = t.customer_id
   AND cf.as_of_us = t.as_of_us
WHERE cf.rfm_frequency > 0

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
-- table only: account_created_us, rfm_last_us, rfm_frequency, rfm_monetary, rfm_first_us
-- derived: account_age_days = CASE WHEN account_created_us <= as_of_us THEN (as_of_us - account_created_us) / 86400000000 END
-- The population-relative and as_of-continuous features (materialize: the
-- family behavior_segments; a refresh brings them forward for the whole shop,
-- store.behavior.refresh_segments, recomputing the rows that can differ).
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
    cu.created_at_us AS account_created_us,
    -- The customer's RFM measures (behavior_rfm_population), stored so that refresh finds the scores
    -- from the stored rows instead of a pass over its purchases (store.behavior.refresh_segments):
    -- rfm_last_us: The last purchase at or before as_of (the recency measure).; integer, microseconds since 1970-01-01 UTC; NULL when no purchase; window: all time up to as_of
    x.last_us AS rfm_last_us,
    -- rfm_frequency: Purchases at or before as_of (the frequency measure).; integer, count; NULL when no purchase; window: all time up to as_of
    x.frequency AS rfm_frequency,
    -- rfm_monetary: Sum of the order values at or before as_of (the monetary measure).; real, currency units; NULL when no purchase; window: all time up to as_of
    x.monetary AS rfm_monetary,
    -- rfm_first_us: The first purchase at or before as_of (the 'new' rule).; integer, microseconds since 1970-01-01 UTC; NULL when no purchase; window: all time up to as_of
    x.first_us AS rfm_first_us
FROM (
    SELECT target_id, customer_id, as_of_us,
           MAX(r) OVER w AS recency_score, MAX(f) OVER w AS frequency_score,
           MAX(m) OVER w AS monetary_score, MAX(first) OVER w AS first_us,
           MAX(last) OVER w AS last_us, MAX(freq) OVER w AS frequency, MAX(mon) OVER w AS monetary
    FROM (
        SELECT target_id, customer_id, as_of_us, NULL AS r, NULL AS f, NULL AS m, NULL AS first,
               NULL AS last, NULL AS freq, NULL AS mon
        FROM target
        UNION ALL
        SELECT NULL, customer_id, as_of_us, recency_score, frequency_score, monetary_score, first_us,
               last_us, frequency, monetary
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
    -- recency_score, frequency_score, monetary_score, customer_segment, account_created_us, rfm_*: as in behavior_segments
    recency_score, frequency_score, monetary_score, customer_segment, account_created_us,
    rfm_last_us, rfm_frequency, rfm_monetary, rfm_first_us
FROM behavior_segments
ORDER BY customer_id

-- name: behavior_segments_update
-- Brings the behavior_segments columns of the shop's stored rows
-- (customer_features_stored) that refresh_segments recomputed to :as_of_us: each row
-- of the temporary table behavior_segments_computed (behavior_segments_rows over the
-- rows that can differ, behavior_segments_refresh_targets) is copied into its stored
-- row, one primary-key lookup each (the IN list: SQLite, without statistics, would take
-- `shop_id = ?` for selective and walk the shop's rows), and only a row whose values differ is written:
-- a day later most customers keep their scores and segment (a rank among the shop's
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
    account_created_us = s.account_created_us,
    rfm_last_us = s.rfm_last_us,
    rfm_frequency = s.rfm_frequency,
    rfm_monetary = s.rfm_monetary,
    rfm_first_us = s.rfm_first_us
FROM temp.behavior_segments_computed AS s
WHERE c.shop_id = :shop_id
  AND c.customer_id IN (SELECT customer_id FROM temp.behavior_segments_computed)
  AND c.customer_id = s.customer_id
  AND (c.recency_score, c.frequency_score, c.monetary_score, c.customer_segment, c.account_created_us,
       c.rfm_last_us, c.rfm_frequency, c.rfm_monetary, c.rfm_first_us)
      IS NOT (s.recency_score, s.frequency_score, s.monetary_score, s.customer_segment, s.account_created_us,
              s.rfm_last_us, s.rfm_frequency, s.rfm_monetary, s.rfm_first_us)

-- The queries of store.behavior.refresh_segments: a refresh brings the scores and segments
-- forward without a pass over the shop's purchases and without ranking the shop again. A score
-- depends on the population only through its boundaries (behavior_rfm_boundaries_stored), found
-- by walks of the stored measures' indexes; only the rows whose scores or segment can have
-- changed are recomputed: the customers whose purchases changed, the members whose measure lies
-- between a boundary's old and new value, those whose first purchase crossed the 'new' rule's edge.

-- name: behavior_rfm_index_last_us
-- The indexes of the members' stored measures (rfm_*, family behavior_segments) that
-- refresh_segments reads: a boundary is a walk of one (behavior_rfm_boundaries_stored), the
-- members between two values one seek (behavior_segments_refresh_targets). store.behavior
-- .index_stored creates them: materialize with each snapshot, refresh_segments when missing.
CREATE INDEX IF NOT EXISTS customer_features_rfm_last_us
    ON customer_features_stored (shop_id, rfm_last_us) WHERE rfm_frequency > 0

-- name: behavior_rfm_index_frequency
-- As behavior_rfm_index_last_us, for the purchase counts.
CREATE INDEX IF NOT EXISTS customer_features_rfm_frequency
    ON customer_features_stored (shop_id, rfm_frequency) WHERE rfm_frequency > 0

-- name: behavior_rfm_index_monetary
-- As behavior_rfm_index_last_us, for the order values.
CREATE INDEX IF NOT EXISTS customer_features_rfm_monetary
    ON customer_features_stored (shop_id, rfm_monetary) WHERE rfm_frequency > 0

-- name: behavior_rfm_index_first_us
-- As behavior_rfm_index_last_us, for the first purchases (the 'new' rule's edge).
CREATE INDEX IF NOT EXISTS customer_features_rfm_first_us
    ON customer_features_stored (shop_id, rfm_first_us) WHERE rfm_frequency > 0

-- name: behavior_rfm_changed
-- The customers whose own behavior_segments inputs can differ between the last run's as_of and
-- the new one: those logged in changed_customers since that run (any event or their customers
-- row) and those with a purchase between the two as_of (refresh()'s temp.refresh_hits, edge 0).
-- Every other customer keeps its measures (they read nothing but its purchases at or before
-- as_of) and its account_created_us.
SELECT
    -- customer_id: the customer; text
    c.customer_id AS customer_id
FROM changed_customers AS c
WHERE c.shop_id = :shop_id
UNION
SELECT h.customer_id
FROM temp.refresh_hits AS h
WHERE h.edge_days = 0 AND h.events_table = 'purchases'

-- name: behavior_rfm_refresh_purchases
-- The purchases of the customers of temp.behavior_rfm_changed (behavior_rfm_changed): the
-- relation `purchases` of behavior_rfm_population when refresh_segments computes their measures
-- at the new as_of (their rows of the population, one seek per customer).
SELECT
    -- shop_id, customer_id, event_time_us, order_value: the purchase's columns (sql/purchases.sql)
    p.shop_id AS shop_id,
    p.customer_id AS customer_id,
    p.event_time_us AS event_time_us,
    p.order_value AS order_value
FROM temp.behavior_rfm_changed AS r
CROSS JOIN main.purchases AS p
WHERE p.shop_id = :shop_id
  AND p.customer_id = r.customer_id

-- name: behavior_rfm_measures_update
-- Stores the measures behavior_rfm_population gave the customers of temp.behavior_rfm_changed
-- (temp.behavior_rfm_fresh, customer_id -> last_us, frequency, monetary, first_us; no row: no
-- purchase at or before the new as_of) into their stored rows, one primary-key lookup each (the
-- IN list, as in behavior_segments_update).
UPDATE customer_features_stored AS c SET
    rfm_last_us = f.last_us,
    rfm_frequency = f.frequency,
    rfm_monetary = f.monetary,
    rfm_first_us = f.first_us
FROM temp.behavior_rfm_changed AS ch
LEFT JOIN temp.behavior_rfm_fresh AS f ON f.customer_id = ch.customer_id
WHERE c.shop_id = :shop_id
  AND c.customer_id IN (SELECT customer_id FROM temp.behavior_rfm_changed)
  AND c.customer_id = ch.customer_id

-- name: behavior_rfm_members
-- reads: rfm_frequency
-- The population's size as the shop's stored rows hold it: the members (a purchase at or before
-- the rows' as_of); a count of one index (behavior_rfm_index_frequency).
SELECT
    -- population: the members; integer
    COUNT(*) AS population
FROM customer_features_stored INDEXED BY customer_features_rfm_frequency
WHERE shop_id = :shop_id AND rfm_frequency > 0

-- name: behavior_rfm_boundaries_stored
-- reads: rfm_last_us, rfm_frequency, rfm_monetary
-- The k-th boundary of each measure over the stored members (:population of them,
-- behavior_rfm_members), for k = :k in 1 .. :rfm_bins - 1. behavior_rfm_scores' rule gives a
-- score above k exactly when the members with a strictly worse value are at least
-- ceil(k x population / rfm_bins), the boundary's position; that is when the value is greater
-- than the value at this position in ascending order (ties included). So a member's score is 1 +
-- the number of boundaries below its value (behavior_rfm_scores_bounded), and a score changes
-- only for a member whose value lies between a boundary's old and new value. Each value is
-- one walk of an index (behavior_rfm_index_*) to the position: no sort.
SELECT
    -- k: the boundary, 1 .. rfm_bins - 1; integer
    :k AS k,
    -- last_us, frequency, monetary: the measure's value at the boundary's position (1-based, ascending)
    (SELECT rfm_last_us FROM customer_features_stored INDEXED BY customer_features_rfm_last_us
     WHERE shop_id = :shop_id AND rfm_frequency > 0 ORDER BY rfm_last_us LIMIT 1 OFFSET (:k * :population + :rfm_bins - 1) / :rfm_bins - 1) AS last_us,
    (SELECT rfm_frequency FROM customer_features_stored INDEXED BY customer_features_rfm_frequency
     WHERE shop_id = :shop_id AND rfm_frequency > 0 ORDER BY rfm_frequency LIMIT 1 OFFSET (:k * :population + :rfm_bins - 1) / :rfm_bins - 1) AS frequency,
    (SELECT rfm_monetary FROM customer_features_stored INDEXED BY customer_features_rfm_monetary
     WHERE shop_id = :shop_id AND rfm_frequency > 0 ORDER BY rfm_monetary LIMIT 1 OFFSET (:k * :population + :rfm_bins - 1) / :rfm_bins - 1) AS monetary
WHERE :population > 0

-- name: behavior_rfm_scores_bounded
-- reads: rfm_last_us, rfm_frequency, rfm_monetary, rfm_first_us
-- behavior_rfm_scores at the new as_of for the target's customers, from their stored measures
-- and the boundaries refresh_segments staged (temp.behavior_rfm_boundaries_new, rows of
-- behavior_rfm_boundaries_stored): a score is 1 + the number of boundaries below the value,
-- the same score as the rank rule (see there). One primary-key lookup per target.
SELECT
    -- as_of_us, customer_id: as in behavior_rfm_scores
    t.as_of_us AS as_of_us,
    t.customer_id AS customer_id,
    -- recency_score, frequency_score, monetary_score: as in behavior_rfm_scores; integer 1..rfm_bins
    1 + (SELECT COUNT(*) FROM temp.behavior_rfm_boundaries_new AS b WHERE b.last_us < s.rfm_last_us) AS recency_score,
    1 + (SELECT COUNT(*) FROM temp.behavior_rfm_boundaries_new AS b WHERE b.frequency < s.rfm_frequency)
        AS frequency_score,
    1 + (SELECT COUNT(*) FROM temp.behavior_rfm_boundaries_new AS b WHERE b.monetary < s.rfm_monetary)
        AS monetary_score,
    -- last_us, frequency, monetary, first_us: the stored measures (rfm_*)
    s.rfm_last_us AS last_us,
    s.rfm_frequency AS frequency,
    s.rfm_monetary AS monetary,
    s.rfm_first_us AS first_us
FROM target AS t
CROSS JOIN customer_features_stored AS s
    ON s.shop_id = :shop_id
   AND s.customer_id = t.customer_id
WHERE s.rfm_frequency > 0

-- name: behavior_segments_refresh_targets
-- reads: rfm_last_us, rfm_frequency, rfm_monetary, rfm_first_us
-- The stored rows whose behavior_segments columns can differ at :as_of_us from those at
-- :previous_us, one target each (its rowid, as refresh_segments' target): the customers whose
-- inputs changed (temp.behavior_rfm_changed); the members whose first purchase is between
-- :new_low_us and :new_high_us (the 'new' rule's edge crossed between the two as_of); the
-- members whose measure lies between a boundary's value before the changed customers' measures
-- were stored and after (temp.behavior_rfm_boundaries_old and _new, behavior_rfm_boundaries_stored;
-- with no members before or after, every member is a changed customer). Every other row keeps its
-- scores and segment. Each part is a seek: the primary key, behavior_rfm_index_*.
SELECT
    -- target_id: the stored row's rowid; integer
    s.rowid AS target_id,
    -- customer_id: the customer; text
    s.customer_id AS customer_id,
    -- as_of_us: the new as_of; microseconds since the epoch
    :as_of_us AS as_of_us
FROM temp.behavior_rfm_changed AS c
CROSS JOIN customer_features_stored AS s ON s.shop_id = :shop_id AND s.customer_id = c.customer_id
UNION
SELECT s.rowid, s.customer_id, :as_of_us
FROM customer_features_stored AS s
WHERE s.shop_id = :shop_id AND s.rfm_frequency > 0
  AND s.rfm_first_us BETWEEN :new_low_us AND :new_high_us
UNION
SELECT s.rowid, s.customer_id, :as_of_us
FROM temp.behavior_rfm_boundaries_old AS o
JOIN temp.behavior_rfm_boundaries_new AS n ON n.k = o.k
CROSS JOIN customer_features_stored AS s
-- each disjunct whole (shop, members, one measure's range): SQLite then seeks each index
WHERE (s.shop_id = :shop_id AND s.rfm_frequency > 0
       AND s.rfm_last_us > MIN(o.last_us, n.last_us) AND s.rfm_last_us <= MAX(o.last_us, n.last_us))
   OR (s.shop_id = :shop_id AND s.rfm_frequency > 0
       AND s.rfm_frequency > MIN(o.frequency, n.frequency) AND s.rfm_frequency <= MAX(o.frequency, n.frequency))
   OR (s.shop_id = :shop_id AND s.rfm_frequency > 0
       AND s.rfm_monetary > MIN(o.monetary, n.monetary) AND s.rfm_monetary <= MAX(o.monetary, n.monetary))
