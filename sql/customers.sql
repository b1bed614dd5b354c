-- Customer records. See purchases.sql for `target`.

-- name: customer_metadata
-- order: 75
-- object: metadata: The customer's metadata as last set with set_customer_metadata.; object, JSON object; key absent when never set; window: not time-dependent
SELECT
    t.target_id AS target_id,
    -- metadata: the customer's metadata as JSON text; NULL when none was set
    c.metadata AS metadata
FROM target AS t
JOIN customers AS c
    ON c.shop_id = :shop_id
   AND c.customer_id = t.customer_id
