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
from . import registry
from .db import automatic_indexes, quote_identifier
from .errors import StoreError
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


def _with(main, ctes, first, substitute=None):
    """``WITH first..., <each of ctes as a CTE named after it>, then the query main``: a CTE's
    body is the query ``substitute[name]`` in its place when given (the same columns, read from
    elsewhere; None: the CTE is left out)."""
    substitute = substitute or {}
    reg = registry.builtin()
    parts = list(first) + [f"{name} AS MATERIALIZED (\n{_features.runnable(reg, substitute.get(name, name))}\n)"
                           for name in ctes if substitute.get(name, name) is not None]
    return "WITH " + ",\n".join(parts) + "\n" + _features.runnable(reg, main)


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
    return _with("behavior_features", CTES, [target], _SNAPSHOT if (one and snapshot) else _SINGLE if one else {})


# For one customer, the ranks the RFM scores are computed from are counted (no window
# sorts of the whole population): same values, see sql/behavior_segmentation.sql.
_SINGLE = {"behavior_rfm_ranks": "behavior_rfm_ranks_few"}
# ... or, when the shop's materialized snapshot is current, the scores and measures are read
# from it (no pass over the shop's purchases at all; None: CTE left out).
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


# refresh_segments' target: the stored rows whose segment columns can have changed, at the new
# as_of, keyed by the stored row's rowid (a target relation is keyed by target_id: the derived
# columns of a family join their target on it, store.features.runnable).
_REFRESH_TARGET = "target AS (SELECT target_id, customer_id, as_of_us FROM temp.behavior_segments_target)"
# refresh_segments' last step reads the scores from the stored measures and the staged boundaries.
_BOUNDED_SCORES = {"behavior_rfm_scores": "behavior_rfm_scores_bounded", "behavior_rfm_population": None,
                   "behavior_rfm_ranks": None}
# The indexes of the stored measures refresh_segments reads (sql/behavior_segmentation.sql).
_INDEXES = ("behavior_rfm_index_last_us", "behavior_rfm_index_frequency", "behavior_rfm_index_monetary",
            "behavior_rfm_index_first_us")
_REFRESH_TEMP = ("behavior_rfm_changed", "behavior_rfm_fresh", "behavior_rfm_boundaries_old",
                 "behavior_rfm_boundaries_new", "behavior_segments_target", "behavior_segments_computed")


def index_stored(conn):
    """Create the indexes of the stored RFM measures that refresh_segments reads, when missing
    (materialize calls it after it swaps a snapshot in; refresh_segments before it reads them)."""
    for name in _INDEXES:
        conn.execute(query(name))


def stage_boundaries(conn, table, params):
    """The temporary table ``table`` (one of refresh_segments': behavior_rfm_boundaries_old or
    _new): the rows of behavior_rfm_boundaries_stored, one per boundary k = 1 .. rfm_bins - 1,
    over the shop's stored members now (``params``: store.features.parameters)."""
    quoted = quote_identifier(table, _REFRESH_TEMP)
    conn.execute(f"CREATE TEMP TABLE {quoted} (k INTEGER PRIMARY KEY, last_us, frequency, monetary)")
    population = conn.execute(query("behavior_rfm_members"), params).fetchone()[0]
    conn.executemany(f"INSERT INTO temp.{quoted} SELECT k, last_us, frequency, monetary FROM (\n"
                     + query("behavior_rfm_boundaries_stored") + "\n)",
                     [dict(params, k=k, population=population) for k in range(1, params["rfm_bins"])])


def segments_rows_sql(target=_REFRESH_TARGET, substitute=_BOUNDED_SCORES):
    """The SELECT of refresh_segments' last step: behavior_segments_rows over ``target`` (a target
    relation of stored rows, keyed by rowid), its CTEs those of its requires line, the queries
    ``substitute`` names in place of some (by default the scores from the stored measures and the
    boundaries staged in temp.behavior_rfm_boundaries_new). Parameters: store.features.parameters
    and ``as_of_us``."""
    return _with("behavior_segments_rows", registry.requires("behavior_segments_rows"), [target], substitute)


def refresh_segments(conn, shop_id, as_of_us, previous_us):
    """Bring the population-relative columns (family behavior_segments) of the shop's stored rows
    from ``previous_us`` (the last run's as_of) to ``as_of_us``, inside refresh() (which has
    filled temp.refresh_hits and not yet cleared changed_customers).

    RFM scores and segments also change when other customers buy, but a score depends on the
    rest of the shop only through the population's boundaries (behavior_rfm_boundaries_stored),
    and those are walks of the stored measures' indexes (index_stored), not a ranking: (1) the
    boundaries before (temp.behavior_rfm_boundaries_old); (2) the measures of the customers whose
    purchases changed (behavior_rfm_changed: logged in changed_customers, or a purchase between
    the two as_of) at the new as_of, behavior_rfm_population over their purchases only, into
    their stored rows (rfm_*); (3) the boundaries after (_new); (4) the rows that can differ
    (behavior_segments_refresh_targets): those customers, the members whose measure lies between
    a boundary's old and new value, those whose first purchase crossed the 'new' rule's edge;
    (5) behavior_segments over those rows only, the scores from the new boundaries
    (behavior_rfm_scores_bounded) in place of the ranking, and behavior_segments_update writes the
    rows whose values differ. Its derived account age follows as_of in the view. The caller
    prepares it inside store.db.automatic_indexes.
    """
    params = parameters(shop_id)
    params.update(as_of_us=as_of_us, previous_us=previous_us)
    lo, hi = sorted((previous_us, as_of_us))
    params.update(new_low_us=lo - params["new_customer_us"], new_high_us=hi - params["new_customer_us"])
    one_as_of = "target AS (SELECT 0 AS target_id, '' AS customer_id, :as_of_us AS as_of_us)"

    def drop():
        for table in _REFRESH_TEMP:
            conn.execute(f"DROP TABLE IF EXISTS temp.{quote_identifier(table, _REFRESH_TEMP)}")

    drop()
    try:
        index_stored(conn)
        # (1) the boundaries before the changed customers' measures are stored
        stage_boundaries(conn, "behavior_rfm_boundaries_old", params)
        # (2) the changed customers' measures: the population query over their purchases
        conn.execute("CREATE TEMP TABLE behavior_rfm_changed (customer_id TEXT PRIMARY KEY) WITHOUT ROWID")
        conn.execute("INSERT INTO temp.behavior_rfm_changed " + query("behavior_rfm_changed"), params)
        conn.execute("CREATE TEMP TABLE behavior_rfm_fresh (customer_id TEXT PRIMARY KEY, last_us, frequency, "
                     "monetary, first_us) WITHOUT ROWID")
        their_purchases = f"purchases AS (\n{query('behavior_rfm_refresh_purchases')}\n)"
        fresh = _with("behavior_rfm_population", (), [one_as_of, their_purchases])
        conn.execute("INSERT INTO temp.behavior_rfm_fresh SELECT customer_id, last_us, frequency, monetary, first_us "
                     f"FROM (\n{fresh}\n)", params)
        conn.execute(query("behavior_rfm_measures_update"), params)
        # (3) the boundaries after
        stage_boundaries(conn, "behavior_rfm_boundaries_new", params)
        # (4) the rows that can differ
        conn.execute("CREATE TEMP TABLE behavior_segments_target (target_id INTEGER PRIMARY KEY, "
                     "customer_id TEXT NOT NULL, as_of_us INTEGER NOT NULL)")
        conn.execute("INSERT INTO temp.behavior_segments_target " + query("behavior_segments_refresh_targets"), params)
        # (5) the family over those rows; only the rows whose values differ are written
        columns = [f.name for f in registry.stored_columns("behavior_segments")]  # what behavior_segments_update sets
        conn.execute("CREATE TEMP TABLE behavior_segments_computed (customer_id TEXT PRIMARY KEY, "
                     + ", ".join(quote_identifier(c, set(columns)) for c in columns) + ") WITHOUT ROWID")
        conn.execute("INSERT INTO temp.behavior_segments_computed " + segments_rows_sql(), params)
        conn.execute(query("behavior_segments_update"), params)
    finally:
        drop()
