-- Behaviour features: device and channel family. See purchases.sql for
-- `target`, docs/behavior.md for every definition and constant.
-- Parameters: :shop_id. Every session at or before the target's as_of counts (no window).
-- Device classes (ASCII case-insensitive device_type, documented constants of
-- store.behavior MOBILE_DEVICES / DESKTOP_DEVICES):
--   mobile:  mobile, tablet, smartphone, phone
--   desktop: desktop, laptop, pc
-- A session's channel: sessions.channel when given, else sessions.referrer.

-- name: behavior_device
SELECT
    t.target_id AS target_id,
    -- preferred_device: the most common session device_type other than 'unknown' (exact text); ties: device seen first, then the name; text; NULL when none
    dv.device AS preferred_device,
    -- channel_preference: the most common session channel (channel, else referrer; exact text); ties: channel seen first, then the name; text; NULL when no session has one
    ch.channel AS channel_preference,
    -- mobile_usage_pattern: share of sessions on a mobile device; ratio 0..1; NULL when no session
    sh.mobile AS mobile_usage_pattern,
    -- desktop_usage_pattern: share of sessions on a desktop device; ratio 0..1; NULL when no session
    sh.desktop AS desktop_usage_pattern
FROM target AS t
LEFT JOIN (
    SELECT t1.target_id AS target_id,
           AVG(lower(s.device_type) IN ('mobile', 'tablet', 'smartphone', 'phone')) AS mobile,
           AVG(lower(s.device_type) IN ('desktop', 'laptop', 'pc')) AS desktop
    FROM target AS t1
    CROSS JOIN sessions AS s  -- the targets are the outer loop
    WHERE s.shop_id = :shop_id
      AND s.customer_id = t1.customer_id
      AND s.event_time_us <= t1.as_of_us
    GROUP BY t1.target_id
) AS sh ON sh.target_id = t.target_id
LEFT JOIN (
    SELECT target_id, device FROM (
        SELECT t2.target_id AS target_id, s.device_type AS device,
               ROW_NUMBER() OVER (PARTITION BY t2.target_id
                                  ORDER BY COUNT(*) DESC, MIN(s.event_time_us), s.device_type) AS rn
        FROM target AS t2
        CROSS JOIN sessions AS s  -- the targets are the outer loop
        WHERE s.shop_id = :shop_id
          AND s.customer_id = t2.customer_id
          AND s.event_time_us <= t2.as_of_us
          AND s.device_type <> 'unknown'
        GROUP BY t2.target_id, s.device_type
    ) WHERE rn = 1
) AS dv ON dv.target_id = t.target_id
LEFT JOIN (
    SELECT target_id, channel FROM (
        SELECT t3.target_id AS target_id, COALESCE(s.channel, s.referrer) AS channel,
               ROW_NUMBER() OVER (PARTITION BY t3.target_id
                                  ORDER BY COUNT(*) DESC, MIN(s.event_time_us), COALESCE(s.channel, s.referrer)) AS rn
        FROM target AS t3
        CROSS JOIN sessions AS s  -- the targets are the outer loop
        WHERE s.shop_id = :shop_id
          AND s.customer_id = t3.customer_id
          AND s.event_time_us <= t3.as_of_us
          AND COALESCE(s.channel, s.referrer) IS NOT NULL
        GROUP BY t3.target_id, COALESCE(s.channel, s.referrer)
    ) WHERE rn = 1
) AS ch ON ch.target_id = t.target_id
