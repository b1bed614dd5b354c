"""Behaviour features (issue 5): composing the ``sql/behavior_*.sql`` family queries.

Every feature is defined in docs/behavior.md (formula, unit, window, null
rule); the thresholds below are its documented constants and travel to SQL as
bound parameters. One customer costs one statement (``one``); a cohort costs
one temporary table and one statement, whatever its size (``iter_cohort``).

``churn_probability`` and ``lifetime_value_prediction`` of the behaviour
generator this mirrors are deliberately NOT built (no predictive models):
``historical_value`` and the retention flags / ``risk_score`` take their place.
"""

import functools
import itertools

from . import features as _features
from . import registry, timeutil
from .db import automatic_indexes, quote_identifier
from .errors import StoreError
from .resources import query
from .runs import STORED_TABLE, TABLE, last_run, table_columns

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

# get_behavior_features' keys are the output columns of the behavior_features statement
# (sql/behavior_features.sql), in its order; the type of each is that of its registry record: a
# column of the families that materialise what the getter returns (behavior_family,
# behavior_segments, and all_features for the seed retention flags), where the behaviour family
# names a column that a seed feature's name already takes ``behavior_<key>``
# (behavior_purchase_frequency is the key purchase_frequency).
_RECORD_FAMILIES = ("behavior_family", "behavior_segments", "all_features")
_PREFIX = "behavior_"


def _key_types():
    """{getter key: Python type of a non-NULL value} from the registry ('boolean' columns are 0/1
    in SQL, bool here)."""
    types = {}
    for name in _RECORD_FAMILIES:
        for f in registry.columns(name):
            types[f.name] = _features.PY_TYPES[f.type]
    for f in registry.columns("behavior_family"):
        if f.name.startswith(_PREFIX):
            types.setdefault(f.name[len(_PREFIX):], _features.PY_TYPES[f.type])
    return types


KEY_TYPES = _key_types()
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
    reg = registry.builtin()
    parts = [target] + [f"{name} AS MATERIALIZED (\n{_features.runnable(reg, single.get(name, name))}\n)"
                        for name in CTES if single.get(name, name) is not None]
    return "WITH " + ",\n".join(parts) + "\n" + _features.runnable(reg, "behavior_features")


# For one customer, the ranks the RFM scores are computed from are counted (no window
# sorts of the whole population): same values, see sql/behavior_segmentation.sql.
_SINGLE = {"behavior_rfm_ranks": "behavior_rfm_ranks_few"}
# ... or, when the shop's materialized snapshot is current, read from it (no
# pass over the shop's purchases at all; None: CTE left out).
_SNAPSHOT = {"behavior_rfm_scores": "behavior_rfm_scores_snapshot", "behavior_rfm_population": None,
             "behavior_rfm_ranks": None}
# The customer_features columns the snapshot query reads (its -- reads: line, sql/behavior_segmentation.sql).
_SCORE_COLUMNS = registry.reads("behavior_rfm_scores_snapshot")


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


@functools.lru_cache(maxsize=16)
def shaper(columns):
    """``shape(row)``: {feature: value} of a plain tuple row of a behavior_features cursor whose
    column names are ``columns`` (a tuple): every column but target_id, in order, typed by
    KEY_TYPES (NULL stays None). A column without a registry record raises StoreError."""
    unknown = [c for c in columns if c != "target_id" and c not in KEY_TYPES]
    if unknown:
        raise StoreError(f"behavior_features: column {unknown[0]} has no record in the registry")
    plan = tuple((name, i, KEY_TYPES[name]) for i, name in enumerate(columns) if name != "target_id")

    def shape(row):
        return {name: None if (value := row[i]) is None else kind(value) for name, i, kind in plan}

    return shape


def _shaped(cursor):
    """Yield (target_id, features) for each row of a behavior_features cursor."""
    columns = tuple(d[0] for d in cursor.description)
    shape, at = shaper(columns), columns.index("target_id")
    for row in cursor:
        yield row[at], shape(row)


def one(conn, shop_id, customer_id, as_of_us):
    """The behaviour features of one (normalized) customer id at ``as_of_us``: one statement."""
    params = parameters(shop_id)
    params.update(customer_id=customer_id, as_of_us=as_of_us)
    cursor = conn.execute(statement(snapshot=snapshot_current(conn, shop_id, customer_id, as_of_us)), params)
    try:
        return next(_shaped(cursor))[1]
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
        yield from _shaped(cursor)
    finally:
        if cursor is not None:
            cursor.close()
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")


# The catalog records of the behaviour features, their families (behavior_family,
# behavior_segments) and what those read are the family headers and column comments of
# sql/behavior_features.sql and sql/behavior_segmentation.sql (store.registry).


# refresh_segments' target: every stored row of the shop, at the new as_of, keyed by the stored
# row's rowid (a target relation is keyed by target_id: the derived columns of a family join
# their target on it, store.features.runnable).
_SHOP_ROWS_TARGET = (f"target AS NOT MATERIALIZED (SELECT rowid AS target_id, customer_id, :as_of_us AS as_of_us "
                     f"FROM main.{STORED_TABLE} WHERE shop_id = :shop_id)")


def segments_rows_sql():
    """The SELECT of refresh_segments: behavior_segments_rows over every stored row of the shop
    at ``:as_of_us`` (parameters: store.features.parameters and ``as_of_us``)."""
    return _features.compose("behavior_segments_rows", registry.requires("behavior_segments_rows"),
                             _SHOP_ROWS_TARGET)


def refresh_segments(conn, shop_id, as_of_us):
    """Recompute the population-relative columns (family behavior_segments) of every row of
    the shop in customer_features at ``as_of_us``.

    refresh() recomputes only customers whose own values can have changed; RFM scores and
    segments also change when other customers buy, so this family is brought forward for
    everyone (its derived account age follows as_of in the view): the family's stored columns
    of every customer with a row (behavior_segments_rows: the family itself over a target of those rows, so its
    rules are written once; one pass over the shop's purchases, one sort per score) into a
    keyed temporary table, then one UPDATE of every row (behavior_segments_update), one
    primary-key lookup each.
    The caller prepares it inside store.db.automatic_indexes.
    """
    table = "behavior_segments_computed"
    select = segments_rows_sql()
    params = parameters(shop_id)
    params["as_of_us"] = as_of_us
    conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
    columns = [f.name for f in registry.stored_columns("behavior_segments")]  # what behavior_segments_update sets
    conn.execute(f"CREATE TEMP TABLE {table} (customer_id TEXT PRIMARY KEY, "
                 + ", ".join(quote_identifier(c, set(columns)) for c in columns) + ") WITHOUT ROWID")
    try:
        conn.execute(f"INSERT INTO temp.{table} " + select, params)
        conn.execute(query("behavior_segments_update"), params)
    finally:
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
