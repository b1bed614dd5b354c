-- Behaviour features: temporal family (and the local-time purchase relation
-- that the purchase family's season feature shares). See purchases.sql for
-- `target`, docs/behavior.md for every definition and constant.
-- Parameters (documented constants of store.behavior):
--   :shop_id
--   :loyalty_half_us, :loyalty_half_days   half of the loyalty_trend window (90 days)
--
-- Hours, weekdays, months and seasons are those of the LOCAL wall-clock time
-- `local_us` of behavior_purchase_local below, in the store's timezone
-- (CustomerActivityFeatures(timezone=...), default UTC; store/localtime.py),
-- read from purchase_local_time (sql/localtime.sql): the one place where the
-- timezone applies.

-- name: behavior_purchase_local
-- One row per purchase of a target at or before its as_of, with its local time.
SELECT
    target_id, event_time_us, event_id, order_value, local_us,
    -- local_s: local_us floored to whole seconds (exact integer arithmetic: strftime on a
    -- fractional value would round to the millisecond); the argument of strftime(..., 'unixepoch')
    (local_us - ((local_us % 1000000) + 1000000) % 1000000) / 1000000 AS local_s,
    -- local_day: the local day, as whole days since 1970-01-01 (floored, as local_s); with
    -- local_s, the hour and weekday below (integer arithmetic: a tenth of strftime's cost)
    (local_us - ((local_us % 86400000000) + 86400000000) % 86400000000) / 86400000000 AS local_day
FROM (
SELECT
    t.target_id AS target_id,
    -- event_time_us: purchase instant; microseconds since the epoch, UTC
    p.event_time_us AS event_time_us,
    -- event_id: order id (orders ties at the same instant)
    p.event_id AS event_id,
    -- order_value: currency units
    p.order_value AS order_value,
    -- local_us: the purchase's local wall-clock time in the store's timezone, as microseconds
    -- since 1970-01-01T00:00 local (purchase_local_time)
    p.local_us AS local_us
FROM target AS t
CROSS JOIN purchase_local_time AS p  -- the targets are the outer loop
WHERE p.shop_id = :shop_id
  AND p.customer_id = t.customer_id
  AND p.event_time_us <= t.as_of_us
)

-- name: behavior_purchase_seasons
-- One row per (target, season) with purchases. Seasons (meteorological,
-- northern hemisphere) of the local month: winter Dec-Feb, spring Mar-May,
-- summer Jun-Aug, autumn Sep-Nov.
SELECT
    target_id,
    -- season: winter, spring, summer or autumn; text
    season,
    -- purchase_count: purchases in that season (any year); integer
    COUNT(*) AS purchase_count,
    -- first_us: the first such purchase (tie-break of the most common season); microseconds
    MIN(event_time_us) AS first_us
FROM (
    SELECT target_id, event_time_us,
           CASE CAST(strftime('%m', local_s, 'unixepoch') AS INTEGER)
               WHEN 12 THEN 'winter' WHEN 1 THEN 'winter' WHEN 2 THEN 'winter'
               WHEN 3 THEN 'spring' WHEN 4 THEN 'spring' WHEN 5 THEN 'spring'
               WHEN 6 THEN 'summer' WHEN 7 THEN 'summer' WHEN 8 THEN 'summer'
               ELSE 'autumn'
           END AS season
    FROM behavior_purchase_local
)
GROUP BY target_id, season

-- name: behavior_purchase_season_stats
-- requires: behavior_purchase_local, behavior_purchase_seasons
-- One row per target: its most common local season and the counts behind
-- seasonal_behavior; behavior_temporal reads it for both season features, so
-- the local times and seasons of the purchases are computed once.
SELECT
    t.target_id AS target_id,
    -- season: the season with most purchases; ties: earliest first purchase in the season, then the name; text; NULL when no purchase
    top.season AS season,
    -- top_count: purchases in that season; integer; NULL when no purchase
    top.purchase_count AS top_count,
    -- total: purchases in every season; integer; NULL when no purchase
    top.total AS total
FROM target AS t
LEFT JOIN (
    SELECT target_id, MIN(season) AS season, MIN(purchase_count) AS purchase_count, MIN(total) AS total FROM (
        SELECT target_id, season, purchase_count,
               SUM(purchase_count) OVER (PARTITION BY target_id) AS total,
               ROW_NUMBER() OVER (PARTITION BY target_id ORDER BY purchase_count DESC, first_us, season) AS rn
        FROM behavior_purchase_seasons
    ) WHERE rn = 1
    GROUP BY target_id  -- one row per target already; an aggregate gets an automatic index in the join
) AS top ON top.target_id = t.target_id

-- name: behavior_loyalty_counts
-- The loyalty trend of each target (read by
-- behavior_temporal, and behavior_family_edges on refresh): one row per
-- target with a purchase in the loyalty window.
SELECT
    t2.target_id AS target_id,
    -- loyalty_trend: the loyalty_trend rule (written here only): purchases per 30 days in the recent half (as_of - half .. as_of) minus those in the earlier half (as_of - 2 half .. as_of - half, exclusive); purchases per 30 days (real)
    (COUNT(*) FILTER (WHERE p.event_time_us >= t2.as_of_us - :loyalty_half_us)
     - COUNT(*) FILTER (WHERE p.event_time_us < t2.as_of_us - :loyalty_half_us)) / (:loyalty_half_days / 30.0)
        AS loyalty_trend
FROM target AS t2
CROSS JOIN purchases AS p  -- the targets are the outer loop
WHERE p.shop_id = :shop_id
  AND p.customer_id = t2.customer_id
  AND p.event_time_us <= t2.as_of_us
  AND p.event_time_us >= t2.as_of_us - 2 * :loyalty_half_us
GROUP BY t2.target_id

-- name: behavior_temporal
-- requires: behavior_purchase_local, behavior_purchase_seasons, behavior_purchase_season_stats, behavior_loyalty_counts
-- The temporal family, and the purchase family's season (seasonal_purchase_pattern):
-- every feature of the purchases' local times in one statement.
SELECT
    t.target_id AS target_id,
    -- seasonal_purchase_pattern: the local season (winter, spring, summer, autumn) with most purchases; ties: earliest first purchase in the season, then the name; text; NULL when no purchase
    ss.season AS seasonal_purchase_pattern,
    -- preferred_shopping_time: the local hour (0-23) with most purchases; ties: earliest first purchase in that hour, then the smaller hour; NULL when no purchase
    hr.hour AS preferred_shopping_time,
    -- shopping_day_preference: the local weekday (0 = Monday ... 6 = Sunday) with most purchases; same tie rule; NULL when no purchase
    wd.weekday AS shopping_day_preference,
    -- seasonal_behavior: (share of purchases in the most common season - 0.25) / 0.75; 0 = spread evenly, 1 = one season only; ratio 0..1; NULL when no purchase
    (ss.top_count * 1.0 / ss.total - 0.25) / 0.75 AS seasonal_behavior,
    -- loyalty_trend: purchases per 30 days in the recent half (as_of - half .. as_of) minus those in the earlier half (as_of - 2 half .. as_of - half, exclusive); purchases per 30 days; 0.0 when none
    COALESCE(lt.loyalty_trend, 0.0) AS loyalty_trend
FROM target AS t
LEFT JOIN (
    SELECT target_id, hour FROM (
        SELECT target_id, hour,
               ROW_NUMBER() OVER (PARTITION BY target_id ORDER BY COUNT(*) DESC, MIN(event_time_us), hour) AS rn
        FROM (SELECT target_id, event_time_us,
                     -- the local hour 0-23: the seconds since local midnight, in whole hours
                     (local_s - local_day * 86400) / 3600 AS hour
              FROM behavior_purchase_local)
        GROUP BY target_id, hour
    ) WHERE rn = 1
) AS hr ON hr.target_id = t.target_id
LEFT JOIN (
    SELECT target_id, weekday FROM (
        SELECT target_id, weekday,
               ROW_NUMBER() OVER (PARTITION BY target_id ORDER BY COUNT(*) DESC, MIN(event_time_us), weekday) AS rn
        FROM (SELECT target_id, event_time_us,
                     -- the local weekday, 0 = Monday: 1970-01-01 (local_day 0) was a Thursday,
                     -- weekday 3 (% keeps the dividend's sign: + 10 brings it to 3..16)
                     (local_day % 7 + 10) % 7 AS weekday
              FROM behavior_purchase_local)
        GROUP BY target_id, weekday
    ) WHERE rn = 1
) AS wd ON wd.target_id = t.target_id
JOIN behavior_purchase_season_stats AS ss ON ss.target_id = t.target_id  -- one row per target
LEFT JOIN behavior_loyalty_counts AS lt ON lt.target_id = t.target_id
