-- Every seed feature of a target in one statement, with the retention rules.
-- This family is the one place the retention rules are written: the behaviour
-- families read its flags (behavior_retention, sql/behavior_segmentation.sql,
-- requires all_features). Its edges days line: recency_risk (last purchase
-- more than :recency_concern_days = 60 whole days before as_of) flips when the
-- last purchase crosses as_of - 61 days, so refresh recomputes the family for
-- a customer with a purchase crossing that edge. The declared edges of the
-- families it reads come with them (those of their 30- and 90-day helpers),
-- not their windows: it reads no windowed column (`reads windows: no`).
-- Its row is every column of the four families (SELECT * over them joined USING
-- (target_id): no column list, so a column added to one of them is one of its
-- columns too) and the flags: get_all_features and the cohorts read it.
-- (materialize stages only its own columns, the flags and helpers: the others
-- are already in the families' tables; store.materialize.Plan._own_columns.)
--
-- Reads `target` and the family queries as CTEs named after them
-- (purchase_features, session_features, cart_features, support_features);
-- the store composes the statement (store.features.compose). Rule thresholds
-- are bound parameters whose values are the documented constants of
-- store.features:
--   :short_days, :long_days        30 and 90 (the frequency windows of the rules)
--   :declining_ratio               0.7
--   :support_escalation_ratio      0.5
--   :support_max_tickets           3
--   :cart_min_conversion_ratio     0.3
--   :cart_max_abandoned            2
--   :recency_concern_days          60

-- family: all_features
-- order: 70
-- tables:
-- requires: purchase_features, session_features, cart_features, support_features
-- edges days: 61
-- edge tables: purchases
-- reads windows: no
-- window: window-free: computed from the 30- and 90-day windows ending at as_of, whatever days is
-- helpers: recency_risk
-- column order: high_short_term_activity, declining_engagement, support_risk, cart_abandonment_risk, retention_concern, activity_trend
-- object: activity_retention_tradeoff: The six retention flags above, as one dict (get_activity_retention_tradeoff).; object, dict of the six retention flags; all flags False and 'inactive' when no activity
SELECT
    f.*,
    -- retention_concern: The last purchase is more than 60 days old, or any of the three risk flags is set.; boolean, 0/1; 0 when no purchase and no risk; window: window-free: computed from the 30- and 90-day windows ending at as_of, whatever days is; recency over all time
    (f.recency_risk OR f.declining_engagement OR f.support_risk OR f.cart_abandonment_risk) AS retention_concern,
    -- activity_trend: 'declining' if declining_engagement, else 'stable' if high_short_term_activity, else 'inactive'.; text, 'declining', 'stable' or 'inactive'; 'inactive' when no activity
    CASE
        WHEN f.declining_engagement THEN 'declining'
        WHEN f.high_short_term_activity THEN 'stable'
        ELSE 'inactive'
    END AS activity_trend
FROM (
    SELECT
        -- The target's target_id and customer_id, then every column of the four families
        -- (USING: target_id once), so a column added to one of them is one of this query too.
        *,
        -- recency_risk: The last purchase is more than 60 days old (read by retention_concern here and by the behaviour family, sql/behavior_segmentation.sql behavior_retention).; boolean, 0/1; 0 when no purchase
        COALESCE(pf.purchase_recency_days > :recency_concern_days, 0) AS recency_risk,
        -- high_short_term_activity: The 30-day purchase and session frequencies are both above 0.; boolean, 0/1; 0 when no activity
        (pf.purchase_count_short > 0 AND sf.session_count_short > 0) AS high_short_term_activity,
        -- declining_engagement: The 30- and 90-day purchase frequencies are both above 0 and their ratio is below 0.7.; boolean, 0/1; 0 when no purchase
        (pf.purchase_count_short > 0 AND pf.purchase_count_long > 0
            AND (pf.purchase_count_short / (:short_days / 30.0))
                / (pf.purchase_count_long / (:long_days / 30.0)) < :declining_ratio) AS declining_engagement,
        -- support_risk: The 30-day escalation ratio is above 0.5 or there were more than 3 tickets in 30 days.; boolean, 0/1; 0 when no ticket
        (su.escalation_ratio_short > :support_escalation_ratio
            OR su.support_ticket_count_short > :support_max_tickets) AS support_risk,
        -- cart_abandonment_risk: The 30-day cart conversion ratio is below 0.3 and more than 2 carts were abandoned in 30 days.; boolean, 0/1; 0 when no cart event
        (cf.cart_conversion_ratio_short < :cart_min_conversion_ratio
            AND cf.abandoned_cart_count_short > :cart_max_abandoned) AS cart_abandonment_risk
    FROM (SELECT target_id, customer_id FROM target) AS t
    JOIN purchase_features AS pf USING (target_id)
    JOIN session_features AS sf USING (target_id)
    JOIN cart_features AS cf USING (target_id)
    JOIN support_features AS su USING (target_id)
) AS f
ORDER BY f.target_id
