"""Behaviour features (issue 5): composing the ``sql/behavior_*.sql`` family queries.

Every feature is defined in docs/behavior.md (formula, unit, window, null
rule); the thresholds below are its documented constants and travel to SQL as
bound parameters. One customer costs one statement (``one``); a cohort costs
one temporary table and one statement, whatever its size (``iter_cohort``).

``churn_probability`` and ``lifetime_value_prediction`` of the behaviour
generator this mirrors are deliberately NOT built (no predictive models):
``historical_value`` and the retention flags / ``risk_score`` take their place.
"""

import itertools

from . import features as _features
from . import registry, timeutil
from .db import automatic_indexes
from .resources import query
from .runs import TABLE, last_run, table_columns

# -- documented constants (docs/behavior.md): defined in store.rules, named here too ----
from .rules import (  # noqa: F401  (the documented constants, re-exported)
    MIN_ACTIVE_SPAN_DAYS,
    BOUNCE_MAX_PAGE_VIEWS,
    ENGAGEMENT_SESSIONS_CAP,
    ENGAGEMENT_DURATION_CAP_SECONDS,
    ENGAGEMENT_PAGES_CAP,
    ENGAGEMENT_WEIGHT_SESSIONS,
    ENGAGEMENT_WEIGHT_DURATION,
    ENGAGEMENT_WEIGHT_PAGES,
    DISCOVERY_GAP_MINUTES,
    IMPULSE_WINDOW_MINUTES,
    COMPARISON_MIN_PRODUCTS,
    LOYALTY_WINDOW_DAYS,
    RFM_BINS,
    NEW_CUSTOMER_DAYS,
    RISK_POINTS,
    MOBILE_DEVICES,
    DESKTOP_DEVICES,
    constant_parameters,
)

# The CTEs of the behaviour statement, in dependency order: the requires line of the
# behavior_features query (sql/behavior_features.sql).
CTES = registry.requires("behavior_features")

# Feature name -> (family, type) in output order; type is the Python type of a
# non-NULL value ('bool' columns are 0/1 in SQL).
FEATURES = {
    "total_purchases": ("purchase", int),
    "avg_purchase_value": ("purchase", float),
    "purchase_frequency": ("purchase", float),
    "purchase_consistency": ("purchase", float),
    "seasonal_purchase_pattern": ("purchase", str),
    "total_sessions": ("engagement", int),
    "avg_session_duration": ("engagement", float),
    "page_views_per_session": ("engagement", float),
    "bounce_rate": ("engagement", float),
    "engagement_score": ("engagement", float),
    "search_frequency": ("search", float),
    "search_query_diversity": ("search", float),
    "product_discovery_method": ("search", str),
    "category_exploration": ("search", int),
    "cart_abandonment_rate": ("shopping", float),
    "checkout_completion_rate": ("shopping", float),
    "product_comparison_behavior": ("shopping", float),
    "impulse_purchase_tendency": ("shopping", float),
    "preferred_device": ("device", str),
    "channel_preference": ("device", str),
    "mobile_usage_pattern": ("device", float),
    "desktop_usage_pattern": ("device", float),
    "preferred_shopping_time": ("temporal", int),
    "shopping_day_preference": ("temporal", int),
    "seasonal_behavior": ("temporal", float),
    "loyalty_trend": ("temporal", float),
    "customer_segment": ("segmentation", str),
    "recency_score": ("segmentation", int),
    "frequency_score": ("segmentation", int),
    "monetary_score": ("segmentation", int),
    "risk_score": ("segmentation", int),
    "historical_value": ("segmentation", float),
    "account_age_days": ("segmentation", int),
    "recency_risk": ("segmentation", bool),
    "declining_engagement": ("segmentation", bool),
    "support_risk": ("segmentation", bool),
    "cart_abandonment_risk": ("segmentation", bool),
    "retention_concern": ("segmentation", bool),
}
NOT_BUILT = {
    "churn_probability": "not built: no predictive models; see risk_score and the retention flags",
    "lifetime_value_prediction": "not built: no predictive models; see historical_value",
}

_cohort_counter = itertools.count(1)


def parameters(shop_id):
    """Bound parameters of the behaviour statement: store.features.parameters, which
    includes the seed's retention-rule constants and ours (constant_parameters)."""
    return _features.parameters(shop_id)




def statement(target=_features.ONE_TARGET, *, snapshot=False):
    """The one behaviour statement over ``target``.

    Like ``store.features.compose`` but every family CTE is ``MATERIALIZED``:
    computed once into an ephemeral table that the joins read through an
    automatic index. Without it SQLite inlines CTEs used once and, for a cohort,
    may rescan one per row of another (measured: 5,000 customers 42 s -> 4 s).
    ``snapshot`` (one customer only, see ``snapshot_current``): the RFM scores
    are read from the materialized customer_features row instead of ranked.
    """
    one = target == _features.ONE_TARGET
    single = _SNAPSHOT if (one and snapshot) else _SINGLE if one else {}
    parts = [target] + [f"{name} AS MATERIALIZED (\n{query(single.get(name, name))}\n)"
                        for name in CTES if single.get(name, name) is not None]
    return "WITH " + ",\n".join(parts) + "\n" + query("behavior_features")


# For one customer, the ranks the RFM scores are computed from are counted (no window
# sorts of the whole population): same values, see sql/behavior_segmentation.sql.
_SINGLE = {"behavior_rfm_ranks": "behavior_rfm_ranks_few"}
# ... or, when the shop's materialized snapshot is current, read from it (no
# pass over the shop's purchases at all; None: CTE left out).
_SNAPSHOT = {"behavior_rfm_scores": "behavior_rfm_scores_snapshot", "behavior_rfm_population": None,
             "behavior_rfm_ranks": None}
_SCORE_COLUMNS = ("recency_score", "frequency_score", "monetary_score")


def snapshot_current(conn, shop_id, customer_id, as_of_us):
    """True when customer_features holds the customer's RFM scores at ``as_of_us`` exactly as
    ranking the population now would give them: the shop's last run (materialize or refresh)
    is at ``as_of_us`` with the table's current columns (scores included), no event of the
    shop changed since (changed_customers is empty for it) and the customer has a row there."""
    run = last_run(conn, shop_id)
    if run is None or run["as_of_us"] != as_of_us:
        return False
    columns = table_columns(conn, TABLE)
    if columns != run["columns"] or not set(_SCORE_COLUMNS) <= set(columns):
        return False
    if conn.execute("SELECT 1 FROM changed_customers WHERE shop_id = ? LIMIT 1", [shop_id]).fetchone():
        return False
    return conn.execute("SELECT 1 FROM customer_features WHERE shop_id = ? AND customer_id = ? AND as_of_us = ?",
                        [shop_id, customer_id, as_of_us]).fetchone() is not None


def shape(row):
    """{feature: value} from a behavior_features row (typed; NULL stays None)."""
    out = {}
    for name, (_, kind) in FEATURES.items():
        value = row[name]
        out[name] = None if value is None else kind(value)
    return out


def _rows(cursor):
    columns = [d[0] for d in cursor.description]
    for row in cursor:
        yield dict(zip(columns, row))


def one(conn, shop_id, customer_id, as_of_us):
    """The behaviour features of one (normalized) customer id at ``as_of_us``: one statement."""
    params = parameters(shop_id)
    params.update(customer_id=customer_id, as_of_us=as_of_us)
    cursor = conn.execute(statement(snapshot=snapshot_current(conn, shop_id, customer_id, as_of_us)), params)
    try:
        return shape(next(_rows(cursor)))
    finally:
        cursor.close()


def iter_cohort(conn, shop_id, targets):
    """Yield (target_id, features) for [(target_id, customer_id, as_of_us)] in target_id order.

    Set-based: the targets go into a temporary table and one statement answers
    them all (automatic indexes on, as store.db asks of set-based statements).
    """
    table = f"behavior_cohort_{next(_cohort_counter)}"
    conn.execute(f"CREATE TEMP TABLE {table} (target_id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL, "
                 "as_of_us INTEGER NOT NULL)")
    cursor = None
    try:
        conn.executemany(f"INSERT INTO temp.{table} VALUES (?, ?, ?)", targets)
        target = f"target AS (SELECT target_id, customer_id, as_of_us FROM temp.{table})"
        with automatic_indexes(conn):
            cursor = conn.execute(statement(target), parameters(shop_id))
        for row in _rows(cursor):
            yield row["target_id"], shape(row)
    finally:
        if cursor is not None:
            cursor.close()
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")


# The catalog records of the behaviour features, their families (behavior_family,
# behavior_segments) and what those read are the family headers and column comments of
# sql/behavior_features.sql and sql/behavior_segmentation.sql (store.registry).


# refresh_segments' target: every row of the shop in customer_features, at the new as_of.
_SHOP_ROWS_TARGET = ("target AS (SELECT customer_id AS target_id, customer_id, :as_of_us AS as_of_us "
                     "FROM customer_features WHERE shop_id = :shop_id)")


def refresh_segments(conn, shop_id, as_of_us):
    """Recompute the population-relative columns (family behavior_segments) of every row of
    the shop in customer_features at ``as_of_us``.

    refresh() recomputes only customers whose own values can have changed; RFM scores and
    segments also change when other customers buy, and account age changes every day,
    so this family is brought forward for everyone: the family's columns of every customer
    with a row (behavior_segments_rows: the family itself over a target of those rows, so its
    rules are written once; one pass over the shop's purchases, one sort per score) into a
    keyed temporary table, then one UPDATE of every row (behavior_segments_update), one
    primary-key lookup each.
    The caller prepares it inside store.db.automatic_indexes.
    """
    table = "behavior_segments_computed"
    select = _features.compose("behavior_segments_rows", registry.requires("behavior_segments_rows"),
                               _SHOP_ROWS_TARGET)
    params = parameters(shop_id)
    params["as_of_us"] = as_of_us
    conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
    conn.execute(f"CREATE TEMP TABLE {table} (customer_id TEXT PRIMARY KEY, recency_score, frequency_score, "
                 "monetary_score, customer_segment, account_age_days) WITHOUT ROWID")
    try:
        conn.execute(f"INSERT INTO temp.{table} " + select, params)
        conn.execute(query("behavior_segments_update"), params)
    finally:
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
