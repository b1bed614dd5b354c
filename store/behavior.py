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
from . import timeutil
from .db import automatic_indexes
from .resources import query

# -- documented constants (docs/behavior.md) ----------------------------------------
MIN_ACTIVE_SPAN_DAYS = 1            # purchase_frequency, search_frequency: span floor, days
BOUNCE_MAX_PAGE_VIEWS = 1           # bounce: a session with at most this many page views
ENGAGEMENT_SESSIONS_CAP = 20        # engagement_score: sessions that saturate the sessions term
ENGAGEMENT_DURATION_CAP_SECONDS = 600.0  # ... mean session duration that saturates the duration term
ENGAGEMENT_PAGES_CAP = 10.0         # ... mean page views per session that saturates the pages term
ENGAGEMENT_WEIGHT_SESSIONS = 0.4    # weights of the three terms (sum 1)
ENGAGEMENT_WEIGHT_DURATION = 0.3
ENGAGEMENT_WEIGHT_PAGES = 0.3
DISCOVERY_GAP_MINUTES = 30          # product_discovery_method: search/category view at most this long before first touch
IMPULSE_WINDOW_MINUTES = 10         # impulse_purchase_tendency: purchase at most this long after first touch
COMPARISON_MIN_PRODUCTS = 2         # product_comparison_behavior: distinct products viewed in one session
LOYALTY_WINDOW_DAYS = 180           # loyalty_trend: window, split into two halves of 90 days
RFM_BINS = 5                        # customer_segment: RFM scores 1..5
NEW_CUSTOMER_DAYS = 30              # customer_segment 'new': first purchase at most this many days ago
RISK_POINTS = 25                    # risk_score: points per raised flag (4 flags: 0..100)
MOBILE_DEVICES = ("mobile", "tablet", "smartphone", "phone")
DESKTOP_DEVICES = ("desktop", "laptop", "pc")

# The CTEs of the behaviour statement, in dependency order.
CTES = (
    "behavior_purchase_local", "behavior_purchase_seasons", "behavior_purchase",
    "behavior_session_pages", "behavior_engagement",
    "behavior_interaction_stream", "behavior_search", "behavior_shopping",
    "behavior_device", "behavior_loyalty_counts", "behavior_temporal",
    "behavior_rfm_population", "behavior_rfm_scores", "behavior_segments",
    "behavior_retention_flags", "behavior_retention",
)

# The CTEs above with exactly one row per target (the parts behavior_family joins).
KEYED_CTES = ("behavior_purchase", "behavior_engagement", "behavior_search", "behavior_shopping",
              "behavior_device", "behavior_temporal", "behavior_retention")

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


def constant_parameters():
    """The documented constants above, as the named SQL parameters of sql/behavior_*.sql."""
    return {
        "min_active_span_days": MIN_ACTIVE_SPAN_DAYS,
        "bounce_max_page_views": BOUNCE_MAX_PAGE_VIEWS,
        "engagement_sessions_cap": ENGAGEMENT_SESSIONS_CAP,
        "engagement_duration_cap_seconds": ENGAGEMENT_DURATION_CAP_SECONDS,
        "engagement_pages_cap": ENGAGEMENT_PAGES_CAP,
        "engagement_weight_sessions": ENGAGEMENT_WEIGHT_SESSIONS,
        "engagement_weight_duration": ENGAGEMENT_WEIGHT_DURATION,
        "engagement_weight_pages": ENGAGEMENT_WEIGHT_PAGES,
        "discovery_gap_us": DISCOVERY_GAP_MINUTES * 60 * timeutil.US_PER_SECOND,
        "impulse_window_us": IMPULSE_WINDOW_MINUTES * 60 * timeutil.US_PER_SECOND,
        "comparison_min_products": COMPARISON_MIN_PRODUCTS,
        "loyalty_half_us": timeutil.days_to_us(LOYALTY_WINDOW_DAYS / 2),
        "loyalty_half_days": LOYALTY_WINDOW_DAYS / 2,
        "rfm_bins": RFM_BINS,
        "new_customer_us": timeutil.days_to_us(NEW_CUSTOMER_DAYS),
        "risk_points": RISK_POINTS,
    }


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


# For one customer, the RFM scores are counted (no window sorts of the whole
# population): same values, see sql/behavior_segmentation.sql.
_SINGLE = {"behavior_rfm_scores": "behavior_rfm_scores_few"}
# ... or, when the shop's materialized snapshot is current, read from it (no
# pass over the shop's purchases at all; None: CTE left out).
_SNAPSHOT = {"behavior_rfm_scores": "behavior_rfm_scores_snapshot", "behavior_rfm_population": None}
_SCORE_COLUMNS = ("recency_score", "frequency_score", "monetary_score")


def snapshot_current(conn, shop_id, customer_id, as_of_us):
    """True when customer_features holds the customer's RFM scores at ``as_of_us`` exactly as
    ranking the population now would give them: the shop's last run (materialize or refresh)
    is at ``as_of_us`` with the table's current columns (scores included), no event of the
    shop changed since (changed_customers is empty for it) and the customer has a row there."""
    from .materialize import TABLE, last_run, table_columns  # store.materialize imports us via the catalog
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


# -- catalog records (store.catalog wraps them into Feature records) ----------------------
# (name, type, unit, null rule, meaning, family query); window rule: ALL_TIME below unless noted.
# Names are the get_behavior_features keys, except behavior_purchase_frequency (key
# 'purchase_frequency', renamed because the seed's 30-day purchase_frequency is a column too).
# The seed retention flags declining_engagement, support_risk, cart_abandonment_risk and
# retention_concern are returned by get_behavior_features too; their records are the seed's.
ALL_TIME = "all events at or before as_of (no window); docs/behavior.md"
CATALOG_FAMILIES = {
    "behavior_family": ("purchases", "sessions", "interactions", "purchase_attributions", "cart_events",
                        "support_interactions"),
    "behavior_segments": ("purchases",),
}
_F, _S = "behavior_family", "behavior_segments"
# The CTEs the behavior_family query reads, in dependency order.
FAMILY_REQUIRES = tuple(n for n in CTES if n not in (
    "behavior_rfm_population", "behavior_rfm_scores", "behavior_segments"))
CATALOG = (
    ("total_purchases", "integer", "count", "0 when none", "Number of purchases.", _F),
    ("avg_purchase_value", "real", "currency units", "NULL when no purchase", "Mean order value.", _F),
    ("behavior_purchase_frequency", "real", "purchases per 30 days", "0.0 when no purchase",
     "get_behavior_features 'purchase_frequency': purchases * 30 / max(days from first to last purchase, 1).", _F),
    ("purchase_consistency", "real", "ratio 0..1", "NULL with fewer than 2 purchases",
     "1 / (1 + CV^2) of the gaps between consecutive purchases (1 = perfectly regular).", _F),
    ("seasonal_purchase_pattern", "text", "winter/spring/summer/autumn", "NULL when no purchase",
     "The local season with most purchases (ties: earliest first purchase, then name).", _F),
    ("total_sessions", "integer", "count", "0 when none", "Number of sessions.", _F),
    ("avg_session_duration", "real", "seconds", "NULL when no session", "Mean session duration.", _F),
    ("page_views_per_session", "real", "page views", "NULL when no session has known page views",
     "Mean page views per session (sessions.page_views, else its page-type interactions).", _F),
    ("bounce_rate", "real", "ratio 0..1", "NULL when no session has known page views",
     "Share of sessions with at most 1 page view.", _F),
    ("engagement_score", "real", "score 0..1", "0.0 when no session",
     "0.4 min(sessions/20,1) + 0.3 min(mean duration/600 s,1) + 0.3 min(page views per session/10,1).", _F),
    ("search_frequency", "real", "searches per 30 days", "0.0 when no interaction",
     "Searches * 30 / max(days from first to last interaction, 1).", _F),
    ("search_query_diversity", "real", "ratio 0..1", "NULL when no search has a query",
     "Distinct normalized queries / searches with a query.", _F),
    ("product_discovery_method", "text", "search/category_browse/direct/attribution:<source>",
     "NULL when no purchase interaction and no attribution",
     "Most common path to purchased products (interaction before first touch within 30 min), "
     "else most common attribution source.", _F),
    ("category_exploration", "integer", "count", "0 when none", "Distinct categories over all interactions.", _F),
    ("cart_abandonment_rate", "real", "ratio 0..1", "NULL without cart sessions and cart events",
     "Share of sessions with add_to_cart and no purchase (else abandoned share of cart_events).", _F),
    ("checkout_completion_rate", "real", "ratio 0..1", "NULL when no checkout session",
     "Share of sessions with a checkout that also have a purchase.", _F),
    ("product_comparison_behavior", "real", "ratio 0..1", "NULL when no session with product views",
     "Share of product-viewing sessions with at least 2 distinct products viewed.", _F),
    ("impulse_purchase_tendency", "real", "ratio 0..1", "NULL when no purchase interaction with a product",
     "Share of product purchases made at most 10 minutes after the product's first touch.", _F),
    ("preferred_device", "text", "device name", "NULL when no session with a known device",
     "Most common session device other than 'unknown' (ties: seen first, then name).", _F),
    ("channel_preference", "text", "channel or referrer", "NULL when no session has one",
     "Most common session channel (channel, else referrer; ties: seen first, then name).", _F),
    ("mobile_usage_pattern", "real", "ratio 0..1", "NULL when no session",
     "Share of sessions on mobile, tablet, smartphone or phone (ASCII case-insensitive).", _F),
    ("desktop_usage_pattern", "real", "ratio 0..1", "NULL when no session",
     "Share of sessions on desktop, laptop or pc (ASCII case-insensitive).", _F),
    ("preferred_shopping_time", "integer", "local hour 0-23", "NULL when no purchase",
     "Local hour with most purchases, in the store's timezone (ties: earliest first purchase, then hour).", _F),
    ("shopping_day_preference", "integer", "local weekday 0=Monday..6=Sunday", "NULL when no purchase",
     "Local weekday with most purchases, in the store's timezone (same tie rule).", _F),
    ("seasonal_behavior", "real", "ratio 0..1", "NULL when no purchase",
     "(Share of purchases in the most common season - 0.25) / 0.75.", _F),
    ("loyalty_trend", "real", "purchases per 30 days (difference)", "0.0 when none",
     "Purchase rate in the last 90 days minus that in the 90 days before.", _F),
    ("risk_score", "integer", "points 0..100", "0 when no flag is raised",
     "25 x raised flags among recency_risk and the seed's declining, support and cart risks; rule-based, "
     "NOT a probability: in place of churn_probability, which is not built (no predictive models).", _F),
    ("historical_value", "real", "currency units", "0.0 when no purchase",
     "Sum of order values to date: in place of lifetime_value_prediction, which is not built "
     "(no predictive models).", _F),
    ("recency_risk", "boolean", "0/1", "0 when no purchase",
     "The last purchase is more than 60 whole days before as_of.", _F),
    ("recency_score", "integer", "score 1..5", "NULL when no purchase",
     "1 + floor(5 x shop customers with a longer recency / shop customers with a purchase).", _S),
    ("frequency_score", "integer", "score 1..5", "NULL when no purchase",
     "1 + floor(5 x shop customers with fewer purchases / shop customers with a purchase).", _S),
    ("monetary_score", "integer", "score 1..5", "NULL when no purchase",
     "1 + floor(5 x shop customers with less value / shop customers with a purchase).", _S),
    ("customer_segment", "text", "no_purchases/new/champions/loyal/at_risk/hibernating/needs_attention",
     "never NULL ('no_purchases')", "Rule-based RFM segment (first matching rule of docs/behavior.md).", _S),
    ("account_age_days", "integer", "days", "NULL when created_at is unknown or after as_of",
     "Whole days from the customer's created_at to as_of.", _S),
)
_WINDOW_RULES = {
    "loyalty_trend": "purchases in the 180 days up to as_of, split at as_of - 90 days",
    "recency_risk": "the last purchase at or before as_of",
    "risk_score": "the seed's 30- and 90-day rule windows and the last purchase",
    "recency_score": "the shop's purchases at or before as_of (rank among customers)",
    "frequency_score": "the shop's purchases at or before as_of (rank among customers)",
    "monetary_score": "the shop's purchases at or before as_of (rank among customers)",
    "customer_segment": "the shop's purchases at or before as_of; 'new': first purchase within 30 days",
    "account_age_days": "customers.created_at (not an event)",
}


def catalog_records():
    """(name, type, unit, window_rule, null_rule, meaning, query) of every behaviour feature record."""
    for name, kind, unit, null_rule, meaning, family in CATALOG:
        yield name, kind, unit, _WINDOW_RULES.get(name, ALL_TIME), null_rule, meaning, family


def refresh_segments(conn, shop_id, as_of_us):
    """Recompute the population-relative columns (family behavior_segments) of every row of
    the shop in customer_features at ``as_of_us``.

    refresh() recomputes only customers whose own values can have changed; RFM scores and
    segments also change when other customers buy, and account age changes every day,
    so this family is brought forward for everyone: the scores of the population (one
    pass over the shop's purchases, one sort per score) into a keyed temporary table,
    then one UPDATE of every row (behavior_segments_update), two primary-key lookups each.
    The caller prepares it inside store.db.automatic_indexes.
    """
    table = "behavior_segments_scores"
    names = ("behavior_rfm_population", "behavior_rfm_scores")
    select = ("WITH target AS (SELECT NULL AS target_id, NULL AS customer_id, :as_of_us AS as_of_us),\n"
              + ",\n".join(f"{n} AS MATERIALIZED (\n{query(n)}\n)" for n in names)
              + "\nSELECT customer_id, recency_score, frequency_score, monetary_score, first_us "
                "FROM behavior_rfm_scores ORDER BY customer_id")
    params = parameters(shop_id)
    params["as_of_us"] = as_of_us
    conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
    conn.execute(f"CREATE TEMP TABLE {table} (customer_id TEXT PRIMARY KEY, recency_score, frequency_score, "
                 "monetary_score, first_us) WITHOUT ROWID")
    try:
        conn.execute(f"INSERT INTO temp.{table} " + select, params)
        conn.execute(query("behavior_segments_update"), params)
    finally:
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
