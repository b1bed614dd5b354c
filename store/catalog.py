"""The feature catalog: one definition record per feature, and the feature families.

Every feature the store computes has a ``Feature`` record here: name, type,
unit, window rule, null rule, a one-sentence meaning and the name of the SQL
query (in ``sql/``) that computes it. ``CustomerActivityFeatures.catalog()``
returns the records and ``sync_catalog`` writes them to the ``feature_catalog``
table, so ``sqlite3 store.db "SELECT * FROM feature_catalog"`` shows them.

A ``Family`` is one named SQL query of ``sql/`` that reads the relation
``target(target_id, customer_id, as_of_us)`` and returns one row per target.
``materialize`` puts every feature of every family into ``customer_features``:

* a feature with ``materialize=WINDOWED`` is computed once per window, by the
  family query with ``:window_us`` (and ``:frequency_days``/``:frequency_us``)
  bound to the window, giving the columns ``<name>_<N>d``, and once over all
  time (``:window_us`` NULL, frequency window 30 days), giving ``<name>``;
* a feature with ``materialize=FIXED`` does not depend on the window and gives
  one column ``<name>``, from the all-time pass;
* a feature with ``materialize=None`` is not a scalar (a dict) and is only
  returned by the Python getters.

Adding a feature (see docs/feature_store.md, "Adding a feature"): one column in
a family query of ``sql/`` (or a new family query plus one ``Family`` entry in
``FAMILIES``), one ``Feature`` entry in ``FEATURES``, one test.
"""

from dataclasses import asdict, dataclass, field

from . import behavior as _behavior
from . import timeutil
from .db import atomic
from .errors import StoreError

WINDOWED = "windowed"
FIXED = "fixed"

TYPES = ("integer", "real", "text", "boolean", "object")
SQL_TYPES = {"integer": "INTEGER", "real": "REAL", "text": "TEXT", "boolean": "INTEGER"}

# Window rules shared by many records.
WINDOW_RULE = ("windowed: events with as_of - N days <= time <= as_of; column <name>_<N>d per "
               "materialized window, <name> over all time up to as_of")
FREQUENCY_RULE = ("windowed: events in the last N days, per 30 days; column <name>_<N>d per window; "
                  "<name> (and get_all_features with days=None) uses the 30-day window")
ALL_TIME_RULE = "all events at or before as_of; ignores days"
RULES_30_90 = "window-free: computed from the 30- and 90-day windows ending at as_of, whatever days is"


@dataclass(frozen=True)
class Feature:
    """The definition record of one feature (every field must be non-empty)."""

    name: str            # the feature's name: get_all_features key and/or materialized column base
    type: str            # integer, real, text, boolean (stored 0/1) or object (dict, not materialized)
    unit: str            # e.g. 'count', 'currency units', 'seconds', 'days', 'ratio 0..1'
    window_rule: str     # which events count
    null_rule: str       # the value when there is nothing to compute from
    meaning: str         # one sentence
    query: str           # name of the SQL query in sql/ that computes it
    materialize: str = None  # WINDOWED, FIXED or None (not a scalar column)
    added_by: str = "issue 3 (seed features)"

    def as_record(self):
        return asdict(self)


@dataclass(frozen=True)
class Family:
    """A family query materialized into customer_features.

    ``tables``: the tables it reads; the family is skipped (optional) or an
    error is raised when one is missing. ``edges_days``: window lengths in days,
    other than the materialized windows, that its values depend on (an event
    crossing ``as_of - edge`` changes them); ``None`` means its values can
    change with ``as_of`` for any customer, so ``refresh`` recomputes everyone.
    ``requires``: other named queries it reads as CTEs (only for families
    without WINDOWED features). ``refresh_all``: a callable
    ``(conn, shop_id, as_of_us)`` that ``refresh`` runs after its incremental
    insert to bring the family's columns of every row of the shop to the new
    as_of (for values that depend on other customers, e.g. RFM ranks).
    ``keyed``: queries among ``requires`` that return exactly one row per target;
    ``materialize`` computes each into a table of its own before the family
    (one statement each, so fewer intermediate tables are alive at once).
    ``edge_tables``: the tables whose events the window edges apply to (None:
    every table of ``tables``); ``refresh`` recomputes the family for a customer
    whose event of another table crosses an edge only when that event changes
    another family the family reads. ``edge_query``: a family-shaped query of
    ``sql/`` (reading ``target`` and the CTEs named in ``edge_requires``)
    computing only the family's columns that depend on its window edges;
    ``refresh`` runs it in place of the family query for a customer whose only
    change is an event crossing one of the family's edges (None: the family
    query).
    """

    query: str
    tables: tuple
    edges_days: tuple = ()
    requires: tuple = ()
    optional: bool = False
    added_by: str = "issue 3 (seed features)"
    refresh_all: object = None
    keyed: tuple = ()
    edge_tables: tuple = None
    edge_query: str = None
    edge_requires: tuple = ()


# -- the features ----------------------------------------------------------------
FEATURES = [
    # purchases (sql/purchases.sql)
    Feature("purchase_count", "integer", "count", WINDOW_RULE, "0 when none",
            "Number of purchases in the window.", "purchase_features", WINDOWED),
    Feature("purchase_frequency", "real", "purchases per 30 days", FREQUENCY_RULE, "0.0 when none",
            "Purchases in the window divided by the window length in 30-day months.",
            "purchase_features", WINDOWED),
    Feature("average_order_value", "real", "currency units", WINDOW_RULE, "0.0 when none",
            "Mean order value of the purchases in the window.", "purchase_features", WINDOWED),
    Feature("total_purchase_value", "real", "currency units", WINDOW_RULE, "0.0 when none",
            "Sum of the order values of the purchases in the window.", "purchase_features", WINDOWED),
    Feature("purchase_recency_days", "integer", "days", ALL_TIME_RULE, "NULL when no purchase",
            "Whole days (floor) from the last purchase at or before as_of to as_of.",
            "purchase_features", FIXED),
    Feature("last_purchase_us", "integer", "microseconds since 1970-01-01 UTC", ALL_TIME_RULE,
            "NULL when no purchase", "Time of the last purchase at or before as_of.",
            "purchase_last", FIXED),
    # sessions (sql/sessions.sql)
    Feature("session_count", "integer", "count", WINDOW_RULE, "0 when none",
            "Number of sessions in the window.", "session_features", WINDOWED),
    Feature("session_frequency", "real", "sessions per 30 days", FREQUENCY_RULE, "0.0 when none",
            "Sessions in the window divided by the window length in 30-day months.",
            "session_features", WINDOWED),
    Feature("average_session_duration", "real", "seconds", WINDOW_RULE, "0.0 when none",
            "Mean duration of the sessions in the window.", "session_features", WINDOWED),
    Feature("device_usage_pattern", "object", "{device: session count}", WINDOW_RULE, "{} when none",
            "Number of sessions per device in the window, most used first.", "session_devices"),
    Feature("primary_device", "text", "device name", "materialized over all time up to as_of; "
            "get_primary_device(days=N) uses the window", "NULL when no session",
            "The most used device; a tie goes to the device seen first, then to the name.",
            "primary_device", FIXED),
    # carts (sql/carts.sql)
    Feature("cart_event_count", "integer", "count", WINDOW_RULE, "0 when none",
            "Number of cart events (abandoned or converted) in the window.", "cart_features", WINDOWED),
    Feature("abandoned_cart_count", "integer", "count", WINDOW_RULE, "0 when none",
            "Number of abandoned carts in the window.", "cart_features", WINDOWED),
    Feature("cart_conversion_ratio", "real", "ratio 0..1", WINDOW_RULE, "0.0 when no cart event",
            "Converted cart events divided by all cart events in the window.", "cart_features", WINDOWED),
    Feature("abandoned_cart_value", "real", "currency units", WINDOW_RULE,
            "0.0 when none; carts without a value are skipped",
            "Sum of the values of the abandoned carts in the window.", "cart_features", WINDOWED),
    # support (sql/support.sql)
    Feature("support_ticket_count", "integer", "count", WINDOW_RULE, "0 when none",
            "Number of support interactions in the window.", "support_features", WINDOWED),
    Feature("average_response_time_hours", "real", "hours", WINDOW_RULE,
            "NULL when no ticket in the window has a response time",
            "Mean response time of the tickets in the window that have one.", "support_features", WINDOWED),
    Feature("escalation_count", "integer", "count", WINDOW_RULE, "0 when none",
            "Number of escalated tickets in the window.", "support_features", WINDOWED),
    Feature("escalation_ratio", "real", "ratio 0..1", WINDOW_RULE, "0.0 when no ticket",
            "Escalated tickets divided by all tickets in the window.", "support_features", WINDOWED),
    # retention rules (sql/all_features.sql); thresholds are constants of store.features
    Feature("high_short_term_activity", "boolean", "0/1", RULES_30_90, "0 when no activity",
            "The 30-day purchase and session frequencies are both above 0.", "all_features", FIXED),
    Feature("declining_engagement", "boolean", "0/1", RULES_30_90, "0 when no purchase",
            "The 30- and 90-day purchase frequencies are both above 0 and their ratio is below 0.7.",
            "all_features", FIXED),
    Feature("support_risk", "boolean", "0/1", RULES_30_90, "0 when no ticket",
            "The 30-day escalation ratio is above 0.5 or there were more than 3 tickets in 30 days.",
            "all_features", FIXED),
    Feature("cart_abandonment_risk", "boolean", "0/1", RULES_30_90, "0 when no cart event",
            "The 30-day cart conversion ratio is below 0.3 and more than 2 carts were abandoned in 30 days.",
            "all_features", FIXED),
    Feature("retention_concern", "boolean", "0/1", RULES_30_90 + "; recency over all time",
            "0 when no purchase and no risk",
            "The last purchase is more than 60 days old, or any of the three risk flags is set.",
            "all_features", FIXED),
    Feature("activity_trend", "text", "'declining', 'stable' or 'inactive'", RULES_30_90, "'inactive' when no activity",
            "'declining' if declining_engagement, else 'stable' if high_short_term_activity, else 'inactive'.",
            "all_features", FIXED),
    Feature("activity_retention_tradeoff", "object", "dict of the six retention flags", RULES_30_90,
            "all flags False and 'inactive' when no activity",
            "The six retention flags above, as one dict (get_activity_retention_tradeoff).", "all_features"),
    Feature("metadata", "object", "JSON object", "not time-dependent", "key absent when never set",
            "The customer's metadata as last set with set_customer_metadata.", "customer_metadata"),
    # -- features added by other issues: one entry each, below this line --------
    # purchase-sequence statistics (sql/sequence.sql, docs/rfm.md)
    Feature("sequence_purchase_count", "integer", "count", ALL_TIME_RULE + "; zero-value purchases included",
            "0 when none", "Number of purchases at or before as_of.", "sequence_features", FIXED,
            added_by="issue 5 (sequence statistics)"),
    Feature("gap_mean_days", "real", "days", ALL_TIME_RULE, "NULL when fewer than 2 purchases",
            "Mean gap between consecutive purchases (time order; 0 for purchases at the same instant).",
            "sequence_features", FIXED, added_by="issue 5 (sequence statistics)"),
    Feature("gap_std_days", "real", "days", ALL_TIME_RULE, "NULL when fewer than 2 purchases; 0.0 with exactly 2",
            "Population standard deviation of the gaps between consecutive purchases.",
            "sequence_features", FIXED, added_by="issue 5 (sequence statistics)"),
    Feature("gap_cv", "real", "ratio", ALL_TIME_RULE, "NULL when fewer than 2 purchases or when the mean gap is 0",
            "Coefficient of variation of the gaps: gap_std_days / gap_mean_days.",
            "sequence_features", FIXED, added_by="issue 5 (sequence statistics)"),
    Feature("order_value_trend", "real", "currency units per order", ALL_TIME_RULE,
            "NULL when fewer than 2 purchases",
            "Least-squares slope of order value over order index 0..n-1 (time order).",
            "sequence_features", FIXED, added_by="issue 5 (sequence statistics)"),
    Feature("gap_median_days", "real", "days", ALL_TIME_RULE, "NULL when fewer than 2 purchases",
            "Median gap between consecutive purchases (mean of the middle two for an even number of gaps).",
            "sequence_features", FIXED, added_by="issue 5 (sequence statistics)"),
    Feature("periodicity", "real", "ratio 0..1", ALL_TIME_RULE, "NULL when fewer than 2 purchases",
            "Share of gaps within 20% of the median gap (5 * |gap - median| <= median).",
            "sequence_features", FIXED, added_by="issue 5 (sequence statistics)"),
]

# behaviour features (issue 5; sql/behavior_*.sql, docs/behavior.md): records kept in store.behavior
FEATURES += [Feature(*record, FIXED, added_by="issue 5 (behaviour features)")
             for record in _behavior.catalog_records()]


def _refresh_behavior_segments(conn, shop_id, as_of_us):
    _behavior.refresh_segments(conn, shop_id, as_of_us)


# -- the families materialized into customer_features ----------------------------
SEED_FAMILIES = ("purchase_features", "session_features", "cart_features", "support_features")
FAMILIES = [
    Family("purchase_features", ("purchases",), edges_days=(30, 90)),
    Family("session_features", ("sessions",), edges_days=(30,)),
    Family("cart_features", ("cart_events",), edges_days=(30,)),
    Family("support_features", ("support_interactions",), edges_days=(30,)),
    # the retention rules read the four families above (all-time pass only)
    Family("all_features", (), requires=SEED_FAMILIES),
    Family("purchase_last", ("purchases",)),
    Family("primary_device", ("sessions",), requires=("session_devices",)),
    # -- families added by other issues: one entry each, below this line --------
    # purchase-sequence statistics: all time up to as_of, no window edges
    Family("sequence_features", ("purchases",), added_by="issue 5 (sequence statistics)"),
    # behaviour features (issue 5): as_of matters only through window edges (loyalty 90/180 days,
    # recency risk 61, seed rules 30/90); the population-relative segments are recomputed for
    # every customer on refresh (refresh_all)
    # (the edges apply to purchases, carts and support tickets only: sessions, interactions and
    # attributions count over all time up to as_of)
    Family("behavior_family", _behavior.CATALOG_FAMILIES["behavior_family"], edges_days=(30, 61, 90, 180),
           requires=_behavior.FAMILY_REQUIRES, added_by="issue 5 (behaviour features)",
           edge_tables=("purchases", "cart_events", "support_interactions"),
           edge_query="behavior_family_edges",
           edge_requires=("behavior_retention_flags", "behavior_retention", "behavior_loyalty_counts"),
           keyed=_behavior.KEYED_CTES),
    Family("behavior_segments", _behavior.CATALOG_FAMILIES["behavior_segments"],
           requires=("behavior_rfm_population", "behavior_rfm_scores"),
           refresh_all=_refresh_behavior_segments, added_by="issue 5 (behaviour features)"),
]

# Columns of customer_features that are keys and bookkeeping, not features.
KEY_COLUMNS = (
    ("shop_id", "TEXT NOT NULL"),         # the store's shop
    ("customer_id", "TEXT NOT NULL"),     # the customer
    ("as_of", "TEXT NOT NULL"),           # the snapshot's point in time, ISO-8601 UTC text
    ("as_of_us", "INTEGER NOT NULL"),     # the same in microseconds since the epoch
)


def features():
    """Every Feature record, checked: complete, known type, unique names, known families."""
    seen = set()
    for f in FEATURES:
        missing = [k for k, v in f.as_record().items() if k != "materialize" and not v]
        if missing:
            raise StoreError(f"catalog record {f.name!r} has empty field(s): {', '.join(missing)}")
        if f.type not in TYPES:
            raise StoreError(f"catalog record {f.name!r}: unknown type {f.type!r}")
        if f.name in seen:
            raise StoreError(f"catalog record {f.name!r} is defined twice")
        if f.materialize not in (None, WINDOWED, FIXED):
            raise StoreError(f"catalog record {f.name!r}: materialize must be WINDOWED, FIXED or None")
        if f.materialize is not None and f.type == "object":
            raise StoreError(f"catalog record {f.name!r}: an object cannot be materialized")
        seen.add(f.name)
    return list(FEATURES)


def by_name():
    return {f.name: f for f in features()}


def family(name):
    for fam in FAMILIES:
        if fam.query == name:
            return fam
    raise StoreError(f"no feature family {name!r}")


def catalog_rows():
    """The records as rows of the feature_catalog table (in catalog order)."""
    for position, f in enumerate(features()):
        yield (f.name, f.type, f.unit, f.window_rule, f.null_rule, f.meaning, f.query,
               f.materialize or "", f.added_by, position)


_CATALOG_COLUMNS = ("name", "type", "unit", "window_rule", "null_rule", "meaning", "query",
                    "materialized", "added_by", "position")


def ensure_catalog(conn):
    """Bring the feature_catalog table up to date, taking the write lock only when
    the stored records differ from the code's (a plain read otherwise, so opening
    a store while another process writes does not wait). Returns True when written."""
    stored = conn.execute(
        f"SELECT {', '.join(_CATALOG_COLUMNS)} FROM feature_catalog ORDER BY position").fetchall()
    if [tuple(r) for r in stored] == list(catalog_rows()):
        return False
    with atomic(conn):
        return sync_catalog(conn)


def sync_catalog(conn):
    """Write the records to the feature_catalog table when they differ (caller holds a transaction)."""
    rows = list(catalog_rows())
    stored = conn.execute(
        f"SELECT {', '.join(_CATALOG_COLUMNS)} FROM feature_catalog ORDER BY position").fetchall()
    if [tuple(r) for r in stored] == rows:
        return False
    conn.execute("DELETE FROM feature_catalog")
    conn.executemany(
        f"INSERT INTO feature_catalog ({', '.join(_CATALOG_COLUMNS)}, updated_at) "
        f"VALUES ({', '.join('?' * len(_CATALOG_COLUMNS))}, ?)",
        [r + (timeutil.iso(timeutil.now_us()),) for r in rows])
    return True
