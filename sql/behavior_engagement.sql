-- Behaviour features: engagement family. See purchases.sql for `target`,
-- docs/behavior.md for every definition and constant.
-- Parameters (documented constants of store.behavior):
--   :shop_id
--   :bounce_max_page_views                  a session with at most this many page views is a bounce (1)
--   :engagement_sessions_cap, :engagement_duration_cap_seconds, :engagement_pages_cap
--   :engagement_weight_sessions, :engagement_weight_duration, :engagement_weight_pages
-- Every session at or before the target's as_of counts (no window).
-- Page views of a session: sessions.page_views when given; otherwise, when the
-- session has interactions (same customer, interactions.session_id = the
-- session id, at or before as_of), the number of them of type page_view,
-- product_view or category_view; otherwise unknown (NULL).

-- name: behavior_engagement
-- One aggregate over the sessions of the targets, each session first reduced
-- to one row with its page views (the derived table sp: a session's
-- interactions are rows of the join). The targets are the outer loop and sp
-- is read as it is computed (no table of every session, no index built on
-- one); GROUP BY at the top level, no derived table around it: SQLite then
-- indexes this query's CTE when the behaviour statement joins it on target_id
-- (wrapped in an outer SELECT, the planner scanned it once per row of another
-- family CTE: materialize 5,000 customers 2.9 s, 20,000 22.7 s).
SELECT
    sp.target_id AS target_id,
    -- total_sessions: sessions at or before as_of; integer; 0 when none
    COUNT(sp.event_id) AS total_sessions,
    -- avg_session_duration: mean session duration; seconds; NULL when no session
    AVG(sp.duration_seconds) AS avg_session_duration,
    -- page_views_per_session: mean page views over sessions whose page views are known; page views; NULL when none is known
    AVG(sp.pages) AS page_views_per_session,
    -- bounce_rate: share of the sessions with known page views that have at most :bounce_max_page_views; ratio 0..1; NULL when none is known
    AVG(sp.pages <= :bounce_max_page_views) AS bounce_rate,
    -- engagement_score: weight_sessions * min(total_sessions / sessions_cap, 1)
    --   + weight_duration * min(avg_session_duration / duration_cap, 1)
    --   + weight_pages * min(page_views_per_session / pages_cap, 1), NULL inputs counting 0;
    --   weights sum to 1; score 0..1; 0.0 when no session
    :engagement_weight_sessions * MIN(COUNT(sp.event_id) * 1.0 / :engagement_sessions_cap, 1.0)
      + :engagement_weight_duration * MIN(COALESCE(AVG(sp.duration_seconds), 0.0) / :engagement_duration_cap_seconds, 1.0)
      + :engagement_weight_pages * MIN(COALESCE(AVG(sp.pages), 0.0) / :engagement_pages_cap, 1.0)
      AS engagement_score
FROM (
    -- One row per session of a target at or before its as_of, and one row of NULLs
    -- for a target without a session.
    SELECT
        t.target_id AS target_id,
        -- event_id: the session id; NULL for a target without a session
        s.event_id AS event_id,
        -- duration_seconds: seconds (MIN of the one session's value: no bare column beside
        -- the aggregates, so the query means the same on every engine)
        MIN(s.duration_seconds) AS duration_seconds,
        -- pages: page views of the session (rule above); integer; NULL when unknown
        CASE
            WHEN MIN(s.page_views) IS NOT NULL THEN MIN(s.page_views)
            WHEN COUNT(i.event_id) > 0 THEN
                COUNT(i.event_id) FILTER (WHERE i.event_type IN ('page_view', 'product_view', 'category_view'))
        END AS pages
    FROM target AS t
    LEFT JOIN sessions AS s  -- the targets are the outer loop
        ON s.shop_id = :shop_id
       AND s.customer_id = t.customer_id
       AND s.event_time_us <= t.as_of_us
    LEFT JOIN interactions AS i
        ON i.shop_id = :shop_id
       AND i.customer_id = t.customer_id
       AND i.session_id = s.event_id
       AND i.event_time_us <= t.as_of_us
    -- one group per session (event ids are unique in a shop), in the primary key's order: a
    -- GROUP BY on the event id alone made the planner walk the shop's sessions by event id
    GROUP BY t.target_id, s.event_time_us, s.event_id
) AS sp
GROUP BY sp.target_id
