"""Running the named feature queries of ``sql/`` for one customer or a cohort.

A feature query reads a relation named ``target`` (target_id, customer_id,
as_of_us). For one customer it is a one-row CTE; for a cohort it is a
temporary table filled with one ``executemany``, so a cohort of any size costs
the same, constant number of statements.
"""

import functools
import itertools
import json
import math
import numbers
import types

from . import registry, timeutil
from .db import automatic_indexes, quote_identifier
from .errors import StoreError
from .resources import query
from .rules import constant_parameters

# Rule thresholds of get_activity_retention_tradeoff (documented in the README).
DEFAULT_FREQUENCY_DAYS = 30      # the window of the two frequencies when days is None
SHORT_WINDOW_DAYS = 30           # "30-day" in the rules
LONG_WINDOW_DAYS = 90            # "90-day" in the rules
DECLINING_RATIO = 0.7            # declining_engagement: 30-day / 90-day purchase frequency below this
SUPPORT_ESCALATION_RATIO = 0.5   # support_risk: 30-day escalation ratio above this ...
SUPPORT_MAX_TICKETS = 3          # ... or more than this many tickets in 30 days
CART_MIN_CONVERSION_RATIO = 0.3  # cart_abandonment_risk: 30-day conversion ratio below this ...
CART_MAX_ABANDONED = 2           # ... and more than this many abandoned carts in 30 days
RECENCY_CONCERN_DAYS = 60        # retention_concern: last purchase more than this many days ago

# The seed families: the four the retention rules read (sql/all_features.sql, its requires line).
FAMILIES = registry.requires("all_features")
ONE_TARGET = "target(target_id, customer_id, as_of_us) AS (VALUES (0, :customer_id, :as_of_us))"

# The statement get_all_features, the cohorts and get_cohort_summary read: all_features, composed
# with the seed families as CTEs; it passes every column of them through (SELECT * over the
# families joined USING (target_id)), so its row has every seed feature and the flags. (A separate
# plain query joining the families and all_features gave the same row without the pass-through in
# materialize's staged all_features table, but SQLite ran it ~5x slower for one customer.)
GETTER_QUERY = "all_features"
GETTER_CTES = FAMILIES

# get_activity_retention_tradeoff's keys: the columns of the all_features family (its column
# comments in sql/all_features.sql, in its column order).
TRADEOFF_KEYS = tuple(f.name for f in registry.columns("all_features"))

def target_relation(source, one_as_of=False):
    """The ``target`` CTE over the targets table ``source`` (a name this package made:
    ``temp.<cohort table>``, ``temp.target``, ``scratch.target``), read in place.

    ``one_as_of`` (every target has the same as_of, bound as ``:as_of_us``): the CTE's
    ``as_of_us`` is that parameter instead of the table's column. The family queries run
    as written; SQLite inlines the CTE (``NOT MATERIALIZED``), so each window edge
    ``t.as_of_us - :window_us`` becomes a constant it computes once per statement instead
    of once per event row (about 20% of a family's time when it was measured).
    """
    as_of = ":as_of_us" if one_as_of else "as_of_us"
    return f"target AS NOT MATERIALIZED (SELECT target_id, customer_id, {as_of} AS as_of_us FROM {source})"


_cohort_counter = itertools.count(1)
TARGET_CHUNK = 100_000  # cohort targets per INSERT statement (memory bound of a streamed cohort)
STREAM_CHUNK = 10_000   # ids per chunk of a streamed id cohort (iter_features(ids)): its memory bound
# The temp tables of a connection's cohorts, by kind: the targets of one cohort statement,
# and the ids an id stream (iter_keyed_ids) has already yielded.
_TABLE_SHAPES = {
    "target": "(target_id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL, as_of_us INTEGER NOT NULL)",
    "seen": "(customer_id TEXT PRIMARY KEY) WITHOUT ROWID",
}


def check_days(days, name="days"):
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, numbers.Real) or not math.isfinite(days):
        raise ValueError(f"{name} must be a finite number of days or None, got {days!r}")
    return days


def window_parameters(days, frequency_days=DEFAULT_FREQUENCY_DAYS):
    """The window parameters of the family queries: ``:window_us`` (``days``; None or not
    positive: NULL, all time), ``:frequency_days`` and ``:frequency_us`` (the frequency
    window; None: ``DEFAULT_FREQUENCY_DAYS``). A windowed family is materialised by running
    it once with each window's values (store.plan.Plan.stage_statements)."""
    days = check_days(days)
    frequency_days = check_days(frequency_days, "frequency days")
    if frequency_days is None:
        frequency_days = DEFAULT_FREQUENCY_DAYS
    return {
        "window_us": timeutil.days_to_us(days) if days is not None and days > 0 else None,
        "frequency_days": frequency_days,
        "frequency_us": timeutil.days_to_us(frequency_days) if frequency_days > 0 else 0,
    }


def parameters(shop_id, *, days=None, frequency_days=DEFAULT_FREQUENCY_DAYS):
    """The bound parameters shared by every feature query (a new dict: the caller adds its own)."""
    return dict(_parameters(shop_id, days, frequency_days))


@functools.lru_cache(maxsize=256, typed=True)  # typed: days=True must still be refused, not read as 1
def _parameters(shop_id, days, frequency_days):
    """``parameters``, built once per (shop, days, frequency days): a one-customer read runs
    three statements with them, and building them cost about a tenth of ``get_all_features``."""
    return types.MappingProxyType({
        "shop_id": shop_id,
        **window_parameters(days, frequency_days),
        "short_window_us": timeutil.days_to_us(SHORT_WINDOW_DAYS),
        "long_window_us": timeutil.days_to_us(LONG_WINDOW_DAYS),
        "short_days": SHORT_WINDOW_DAYS,
        "long_days": LONG_WINDOW_DAYS,
        "declining_ratio": DECLINING_RATIO,
        "support_escalation_ratio": SUPPORT_ESCALATION_RATIO,
        "support_max_tickets": SUPPORT_MAX_TICKETS,
        "cart_min_conversion_ratio": CART_MIN_CONVERSION_RATIO,
        "cart_max_abandoned": CART_MAX_ABANDONED,
        "recency_concern_days": RECENCY_CONCERN_DAYS,
        # issue 5: the behaviour features' documented constants (store.rules), so that
        # materialize composes the behaviour families like any other (unused names are ignored)
        **constant_parameters(),
    })



@functools.lru_cache(maxsize=256)
def runnable(reg, name):
    """The query ``name`` of the registry ``reg`` as every statement of the store runs it: as
    written in its file; for a family with ``-- derived: COLUMN = EXPR`` lines, the query as
    written, then each derived column, ``EXPR`` evaluated over the query's row and its target's
    ``as_of_us``::

        SELECT q.*, (EXPR) AS COLUMN, ...
        FROM (<the query>) AS q
        LEFT JOIN (SELECT target_id AS derived_target_id, as_of_us FROM target) AS derived_as_of
          ON derived_as_of.derived_target_id = q.target_id

    ``EXPR`` is the column's only definition: customer_features computes it from the same text
    over the stored columns (store.plan.view_sql). Its names are ``as_of_us`` and the family's
    own stored columns (store.catalog.derived_columns checks that), so each resolves to one
    column of this join. Column names come from the registry through quote_identifier.
    Every target relation of the store is keyed by target_id (a temp table's INTEGER PRIMARY
    KEY, a stored row's rowid, the one-row CTE), so the join is one lookup per row; SQLite
    drops it when the target's as_of_us is the bound ``:as_of_us``. (LEFT: every row of the
    query has its target, so it is the inner join's result, and SQLite keeps the query the
    outer loop; as an inner join it built the query's rows into an ephemeral table first.)"""
    text = reg.query(name)
    derived = reg.derived(name)
    if not derived:
        return text
    allowed = {column for column, _ in derived}
    columns = "".join(f", ({expr}) AS {quote_identifier(column, allowed)}" for column, expr in derived)
    return (f"SELECT q.*{columns}\nFROM (\n{text}\n) AS q\n"
            "LEFT JOIN (SELECT target_id AS derived_target_id, as_of_us FROM target) AS derived_as_of\n"
            "  ON derived_as_of.derived_target_id = q.target_id")


@functools.lru_cache(maxsize=256)
def compose(main, ctes=(), target=ONE_TARGET):
    """One statement: ``WITH <target>, <cte queries> <main query>`` (built once per key: the
    built-in registry does not change while the process runs).

    Only query names from sql/ and fixed fragments of this module are put
    together here; every value is a bound parameter. For one target each family
    CTE holds exactly one row; saying so (``LIMIT 1``) keeps SQLite from building
    automatic indexes to join them, which cost more than the query itself
    (all_features: 43 -> 35 us), while cohort statements keep them.
    """
    reg = registry.builtin()
    if target is ONE_TARGET:
        parts = [target] + [f"{name} AS (SELECT * FROM (\n{runnable(reg, name)}\n) LIMIT 1)" for name in ctes]
    else:
        parts = [target] + [f"{name} AS (\n{runnable(reg, name)}\n)" for name in ctes]
    return "WITH " + ",\n".join(parts) + "\n" + runnable(reg, main)


@functools.lru_cache(maxsize=None)
def with_requires(name):
    """The query ``name`` preceded by the queries of its ``-- requires:`` line as CTEs
    named after them, in that order (a query that reads no ``target``, e.g. those of
    sql/rfm.sql reading rfm_local_times and rfm_counted_purchases); the query itself when it requires none."""
    ctes = registry.requires(name)
    if not ctes:
        return query(name)
    return "WITH " + ",\n".join(f"{n} AS (\n{query(n)}\n)" for n in ctes) + "\n" + query(name)


def cohort_target(table, one_as_of=False):
    """The ``target`` CTE of a cohort statement: the cohort's temp table, read in place.

    ``NOT MATERIALIZED``: a CTE read by several family queries is otherwise copied
    into an ephemeral table first, which loses the temp table's target_id (rowid)
    order: each family then sorts for its GROUP BY and the final join looks the
    targets up through an automatic index. Read in place, every family walks the
    targets in target_id order and groups without a sort. ``table`` is a name this
    module made (``FeatureReader._acquire_table``), never a caller's text.
    """
    return target_relation(f"temp.{table}", one_as_of)


@functools.lru_cache(maxsize=256)
def compose_cohort(main, ctes, table, one_as_of=False, suffix=""):
    """``compose(main, ctes, cohort_target(table, one_as_of)) + suffix``, built once per key.

    With ``one_as_of`` (every target of the cohort has the same as_of_us, bound as
    ``:as_of_us``) the target relation gives ``:as_of_us`` as every target's as_of
    (``target_relation``), as materialize's does. The text is the same on every call, so
    sqlite3's statement cache keeps the prepared statement.
    """
    return compose(main, ctes, cohort_target(table, one_as_of)) + suffix


def _rows(cursor):
    columns = [d[0] for d in cursor.description]
    for row in cursor:
        yield dict(zip(columns, row))


# -- get_all_features: its keys, read from the registry ------------------------------------------
# The Python type of a feature's value by its registry type (NULL stays None).
PY_TYPES = {"integer": int, "real": float, "boolean": bool, "text": str}

# The queries get_all_features reads whose registry records are its keys (in catalog order), each
# with the value the getter gives its records: the four seed families (FAMILIES) give their feature
# columns, read from the all_features row (every column of them passes through), but those their
# file declares `-- table only:`; the other queries give their objects, or else their columns,
# computed by the getter from what it reads: the rows of session_devices (``devices``: [(device,
# sessions)], most used first), the flags of the all_features row and customer_metadata's JSON.
_FROM_ROW = "row"
_COMPUTED = {
    "session_devices": "dict(devices)",
    "primary_device": "devices[0][0] if devices else None",
    "all_features": "tradeoff",
    "customer_metadata": "metadata",
}


def _getter_records():
    """[(Feature, source)] of get_all_features' keys, in key order (source: _FROM_ROW or a
    value of _COMPUTED)."""
    out = []
    for b in registry.blocks():
        if b.name in FAMILIES:
            out += [(f, _FROM_ROW) for f in b.features if f.materialize and f.name not in b.table_only]
        elif b.name in _COMPUTED:
            objects = [f for f in b.features if f.materialize is None]
            records = objects or [f for f in b.features if f.name not in b.table_only]
            if len(records) != 1:
                raise StoreError(f"{b.source}: {b.name} must give get_all_features one feature, gives "
                                 f"{', '.join(f.name for f in records) or 'none'}")
            out.append((records[0], _COMPUTED[b.name]))
    return out


_GETTER_RECORDS = _getter_records()
# get_all_features' keys, in order (a customer without metadata has no 'metadata' key).
ALL_FEATURE_KEYS = tuple(f.name for f, _ in _GETTER_RECORDS)
# get_cohort_summary's keys: the numeric, non-boolean scalar keys of get_all_features, in key order.
SUMMARY_KEYS = tuple(f.name for f, source in _GETTER_RECORDS
                     if source == _FROM_ROW and f.type in ("integer", "real"))


def _typed_expression(feature, at):
    """Python source: the value of column ``at`` of ``row`` as the feature's type. A column whose
    null rule names NULL stays None when NULL; any other is converted as it is (one call less per
    value: a NULL there, against its null rule, raises TypeError)."""
    convert = PY_TYPES[feature.type].__name__
    if "NULL" in feature.null_rule:
        return f"(None if (v := row[{at}]) is None else {convert}(v))"
    return f"{convert}(row[{at}])"


def shaper_source(columns):
    """The source of the function ``shape(row, devices, metadata)`` that ``positional_shaper``
    compiles for an all_features cursor whose column names are ``columns``: one dict display of
    get_all_features' keys (ALL_FEATURE_KEYS) whose values read the row by position."""
    at = {name: i for i, name in enumerate(columns)}
    tradeoff = ("{" + ", ".join(f"{f.name!r}: {_typed_expression(f, at[f.name])}"
                                for f in registry.columns("all_features")) + "}")
    items, after = [], []
    for f, source in _GETTER_RECORDS:
        if source == _FROM_ROW:
            items.append(f"{f.name!r}: {_typed_expression(f, at[f.name])}")
        elif source == "tradeoff":
            items.append(f"{f.name!r}: {tradeoff}")
        elif source == "metadata":  # no key when never set: after the dict display
            after.append(f"    if metadata is not None:\n        features[{f.name!r}] = _decode_json(metadata)\n")
        elif after:
            raise StoreError(f"get_all_features: {f.name} would come after the metadata key")
        else:
            items.append(f"{f.name!r}: {source}")
    if len(after) > 1 or (after and _GETTER_RECORDS[-1][1] != "metadata"):
        raise StoreError("get_all_features: the metadata key must be the last one")
    return ("def shape(row, devices, metadata):\n    features = {\n        "
            + ",\n        ".join(items) + ",\n    }\n" + "".join(after) + "    return features\n")


@functools.lru_cache(maxsize=64)
def positional_shaper(columns):
    """``shape(row, devices, metadata)``: the get_all_features dict from a plain tuple row of an
    all_features cursor whose column names are ``columns`` (a tuple), ``devices`` (the rows of
    session_devices: [(device, sessions)], most used first) and the metadata JSON text (or None).

    Its keys, their order and types are those of the registry (``_getter_records``); the function
    is compiled once per column list from ``shaper_source`` (as ``collections.namedtuple`` and
    ``dataclasses`` compile theirs): one dict display reading each column by position, as fast as
    the hand-written shaper it replaces (a loop over the keys took ~3x its time per row,
    ~10% of a 100-customer cohort). Column names are identifiers (store.registry checks them) and are written as
    string literals."""
    namespace = {"_decode_json": _decode_json, **{t.__name__: t for t in PY_TYPES.values()}}
    exec(compile(shaper_source(columns), "<store.features shaper>", "exec"), namespace)  # noqa: S102
    return namespace["shape"]


def shape_tradeoff(row):
    """get_activity_retention_tradeoff's dict from an all_features row mapping."""
    return {f.name: _typed(f.type, row[f.name]) for f in registry.columns("all_features")}


# json.loads(text) without its per-call argument checks: the same decoder, same result.
_decode_json = json.JSONDecoder().decode


class FeatureReader:
    """Feature queries over one connection, within one shop."""

    def __init__(self, conn, shop_id, reg=None):
        self.conn = conn
        self.shop_id = shop_id
        # The user families of the store's registry (store.registry.Registry): [(family, text,
        # ((column, type), ...))]; their columns are added to every features dict, but those their
        # file declares `-- table only:` (a family with none left is not read). None: built-ins only.
        user = [(b.name, runnable(reg, b.name), tuple((f.name, f.type) for f in b.features
                                                  if f.materialize and f.name not in b.table_only))
                for b in reg.user_blocks()] if reg is not None else []
        self._user = [entry for entry in user if entry[2]]
        self._table_prefix = f"cohort_{next(_cohort_counter)}"
        self._tables_made = 0
        self._free_tables = {kind: [] for kind in _TABLE_SHAPES}

    def _acquire_table(self, kind="target"):
        """An empty temporary table of this connection, of a kind of ``_TABLE_SHAPES``.

        Tables are kept and reused (emptied) rather than dropped: creating or
        dropping one changes the temp schema and makes SQLite re-prepare every
        cohort statement. A cohort still being streamed keeps its own table.
        """
        if self._free_tables[kind]:
            return self._free_tables[kind].pop()
        self._tables_made += 1
        table = f"{self._table_prefix}_{self._tables_made}" + ("" if kind == "target" else f"_{kind}")
        self.conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} {_TABLE_SHAPES[kind]}")
        return table

    def _release_table(self, table, kind="target"):
        self.conn.execute(f"DELETE FROM temp.{table}")
        self._free_tables[kind].append(table)

    # -- one customer -------------------------------------------------------
    def family(self, name, customer_id, as_of_us, *, days=None, frequency_days=DEFAULT_FREQUENCY_DAYS):
        """One row of a family query (e.g. 'purchase_features') for one customer."""
        params = parameters(self.shop_id, days=days, frequency_days=frequency_days)
        params.update(customer_id=customer_id, as_of_us=as_of_us)
        return next(_rows(self.conn.execute(compose(name), params)))

    def devices(self, customer_id, as_of_us, *, days=None):
        """[(device, session count)] in the window, most used first."""
        params = parameters(self.shop_id, days=days)
        params.update(customer_id=customer_id, as_of_us=as_of_us)
        return [(r["device_type"], r["session_count"])
                for r in _rows(self.conn.execute(compose("session_devices"), params))]

    def all_features(self, customer_id, as_of_us, *, days=None):
        params = parameters(self.shop_id, days=days, frequency_days=days or DEFAULT_FREQUENCY_DAYS)
        params.update(customer_id=customer_id, as_of_us=as_of_us)
        cursor = self.conn.execute(compose(GETTER_QUERY, GETTER_CTES), params)
        row = cursor.fetchone()
        shape = positional_shaper(tuple(d[0] for d in cursor.description))
        devices = [(r["device_type"], r["session_count"])
                   for r in _rows(self.conn.execute(compose("session_devices"), params))]
        meta = self.conn.execute(compose("customer_metadata"), params).fetchone()
        features = shape(row, devices, meta[1] if meta else None)
        for _, text, columns in self._user:
            sql = f"WITH {ONE_TARGET}\nSELECT * FROM (\n{text}\n)"
            user_row = next(_rows(self.conn.execute(sql, params)))
            features.update((name, _typed(kind, user_row[name])) for name, kind in columns)
        return features

    def tradeoff(self, customer_id, as_of_us):
        params = parameters(self.shop_id)
        params.update(customer_id=customer_id, as_of_us=as_of_us)
        row = next(_rows(self.conn.execute(compose("all_features", FAMILIES), params)))
        return shape_tradeoff(row)

    # -- cohorts -------------------------------------------------------------
    def _fill_cohort(self, table, targets, select, ids=None, as_of_us=None, exclude=None):
        """Fill a cohort's temp table: from an iterable of (target_id, customer_id, as_of_us),
        TARGET_CHUNK targets per statement (one JSON array through json_each: one
        statement, not one per row), or from ``select`` = (named query, params), or
        from ``ids`` (normalized customer ids, target_id = position, all at ``as_of_us``);
        then, with ``exclude`` (a ``seen`` table), the targets whose id is in it are dropped."""
        insert = f"INSERT INTO temp.{table} (target_id, customer_id, as_of_us) "
        if select is not None:
            name, params = select
            self.conn.execute(insert + query(name), params)
        elif ids is not None:
            fill = insert + query("fill_targets_from_json_ids")
            for start in range(0, len(ids), TARGET_CHUNK):
                self.conn.execute(fill, {"ids": json.dumps(ids[start:start + TARGET_CHUNK]),
                                         "first_target_id": start, "as_of_us": as_of_us})
        else:
            self._fill_from_targets(insert, targets)
        if exclude is not None:
            self.conn.execute(f"DELETE FROM temp.{table} WHERE customer_id IN "
                              f"(SELECT customer_id FROM temp.{exclude})")

    def _fill_from_targets(self, insert, targets):
        fill = insert + query("fill_targets_from_json")
        iterator = iter(targets)
        while True:
            chunk = list(itertools.islice(iterator, TARGET_CHUNK))
            if not chunk:
                return
            self.conn.execute(fill, {"targets": json.dumps(chunk)})

    def cohort_summary(self, targets, *, days=None):
        """{<feature>: mean or None} over the targets, aggregated in SQL (``summary_sql``): the
        numeric scalar keys of get_all_features (SUMMARY_KEYS), then the numeric columns of the
        store's user families."""
        table = self._acquire_table()
        try:
            self._fill_cohort(table, targets, None)
            target = f"target AS (SELECT target_id, customer_id, as_of_us FROM temp.{table})"
            params = parameters(self.shop_id, days=days, frequency_days=days or DEFAULT_FREQUENCY_DAYS)
            with automatic_indexes(self.conn):
                cursor = self.conn.execute(summary_sql(target, tuple(self._user)), params)
            try:
                return dict(zip((d[0] for d in cursor.description), next(cursor)))
            finally:
                cursor.close()
        finally:
            self._release_table(table)

    def iter_keyed_ids(self, chunks, *, as_of_us, days=None):
        """Yield (key, features) for chunks [(customer_id, key), ...] of normalized ids, every
        target at ``as_of_us``, in order, skipping an id that an earlier chunk held (the ids
        within one chunk must be distinct). ``key`` is the caller's (e.g. its spelling of the id).

        Streams a chunk at a time, so memory is bounded by one chunk (and the one before it)
        whatever the number of ids: each chunk is one cohort (``iter_cohort(ids=...)``, the
        same prepared statements); from the second chunk on, the ids of the chunks before go
        into a ``seen`` temp table of this connection (on SQLite's side, which spills to its
        temporary store) and the targets found in it are dropped before the features are read.
        """
        seen = previous = None
        insert_seen = None
        try:
            for chunk in chunks:
                if not chunk:
                    continue
                if previous is not None:
                    if seen is None:
                        seen = self._acquire_table("seen")
                        insert_seen = f"INSERT OR IGNORE INTO temp.{seen} (customer_id) " + query("ids_from_json")
                    self.conn.execute(insert_seen, {"ids": json.dumps([cid for cid, _ in previous])})
                for tid, features in self.iter_cohort((), days=days, as_of_us=as_of_us,
                                                      ids=[cid for cid, _ in chunk], exclude=seen):
                    yield chunk[tid][1], features
                previous = chunk
        finally:
            if seen is not None:
                self._release_table(seen, "seen")

    def iter_cohort(self, targets, *, days=None, select=None, with_keys=False, as_of_us=None, ids=None,
                    exclude=None):
        """Yield (target_id, features) for [(target_id, customer_id, as_of_us)], in target_id order.

        Constant number of statements: the targets go into a temporary table and
        three set-based queries (features, devices, metadata) are merged by
        target_id as they stream. ``select`` = (query name, params) fills the
        table with a named query of sql/ instead (e.g. every customer of the shop).
        With ``with_keys`` it yields (target_id, customer_id, as_of_us, features),
        the keys read back from the temp table by a fourth streamed query.
        ``as_of_us``: the caller's promise that every target has this as_of_us (one
        cutoff for the whole cohort); the statements then bind it instead of reading
        it per row (``compose_cohort``). Results are the same either way.
        ``ids`` (with ``as_of_us``): a list of normalized customer ids to use instead of
        ``targets``, the id at position i being target i (one JSON array of ids fills the
        table: a third of the cost of the triples for a 100-customer cohort).
        ``exclude``: a ``seen`` table; targets whose id is in it are left out.
        """
        if ids is not None and as_of_us is None:
            raise ValueError("iter_cohort(ids=...) needs the cohort's as_of_us")
        table = self._acquire_table()
        cursors = []
        try:
            self._fill_cohort(table, targets, select, ids, as_of_us, exclude)
            params = parameters(self.shop_id, days=days, frequency_days=days or DEFAULT_FREQUENCY_DAYS)
            one_as_of = as_of_us is not None
            if one_as_of:
                params["as_of_us"] = as_of_us
            with automatic_indexes(self.conn):
                cursors = [
                    self.conn.execute(compose_cohort(GETTER_QUERY, GETTER_CTES, table, one_as_of), params),
                    self.conn.execute(compose_cohort("session_devices", (), table, one_as_of), params),
                    self.conn.execute(compose_cohort("customer_metadata", (), table, one_as_of,
                                                     " ORDER BY t.target_id"), params),
                ]
                if with_keys:
                    cursors.append(self.conn.execute(
                        f"SELECT target_id, customer_id, as_of_us FROM temp.{table} ORDER BY target_id"))
                user = [[self.conn.execute(_user_cohort_sql(text, table, one_as_of), params), columns, None]
                        for _, text, columns in self._user]
                cursors += [entry[0] for entry in user]
            rows, devices, metas = cursors[:3]
            shape = positional_shaper(tuple(d[0] for d in rows.description))
            dev_tid, dev_type, dev_count = (
                [d[0] for d in devices.description].index(c) for c in ("target_id", "device_type", "session_count"))
            meta_tid, meta_value = ([d[0] for d in metas.description].index(c) for c in ("target_id", "metadata"))
            row_tid = [d[0] for d in rows.description].index("target_id")
            device = next(devices, None)
            meta = next(metas, None)
            for row in rows:
                tid = row[row_tid]
                pattern = []
                while device is not None and device[dev_tid] == tid:
                    pattern.append((device[dev_type], device[dev_count]))
                    device = next(devices, None)
                metadata = None
                if meta is not None and meta[meta_tid] == tid:
                    metadata = meta[meta_value]
                    meta = next(metas, None)
                features = shape(row, pattern, metadata)
                if user:
                    _add_user_values(features, tid, user)
                if with_keys:
                    key = next(cursors[3])
                    while key[0] != tid:
                        key = next(cursors[3])
                    yield tid, key[1], key[2], features
                else:
                    yield tid, features
        finally:
            for cursor in cursors:
                cursor.close()
            self._release_table(table)


@functools.lru_cache(maxsize=64)
def summary_sql(target, user=()):
    """get_cohort_summary's statement over ``target`` (a target CTE): ``AVG`` of every key of
    SUMMARY_KEYS over all_features (composed with the seed families, as get_all_features reads
    it), then of every integer or real column of the user families ``user`` (FeatureReader._user:
    [(family, sql text, ((column, type), ...))]), each family a CTE joined on target_id. Each
    result column is named after its feature; AVG leaves NULL out (NULL when no value).
    Identifiers come from those allowlists through store.db.quote_identifier."""
    numeric = [(i, name) for i, (_, _, columns) in enumerate(user) for name, kind in columns
               if kind in ("integer", "real")]
    allowed = set(SUMMARY_KEYS) | {name for _, name in numeric} | {family for family, _, _ in user}
    reg = registry.builtin()
    ctes = [target] + [f"{name} AS (\n{runnable(reg, name)}\n)" for name in GETTER_CTES + (GETTER_QUERY,)]
    ctes += [f"{quote_identifier(family, allowed)} AS (\n{text}\n)" for family, text, _ in user]
    means = [f"AVG(f.{quote_identifier(k, allowed)}) AS {quote_identifier(k, allowed)}" for k in SUMMARY_KEYS]
    means += [f"AVG(u{i}.{quote_identifier(name, allowed)}) AS {quote_identifier(name, allowed)}"
              for i, name in numeric]
    joins = "".join(f"\nLEFT JOIN {quote_identifier(family, allowed)} AS u{i} USING (target_id)"
                    for i, (family, _, _) in enumerate(user))
    return ("WITH " + ",\n".join(ctes) + "\nSELECT\n    " + ",\n    ".join(means)
            + f"\nFROM {GETTER_QUERY} AS f" + joins)


# -- users' own families (store.user_families): their columns added to the features dicts ----
def _typed(kind, value):
    return value if value is None or kind not in PY_TYPES else PY_TYPES[kind](value)


def _user_cohort_sql(text, table, one_as_of):
    """A user family over a cohort's temp table, one row per target in target_id order."""
    return f"WITH {cohort_target(table, one_as_of)}\nSELECT * FROM (\n{text}\n) ORDER BY target_id"


def _add_user_values(features, tid, user):
    """Add the user families' values of target ``tid`` to ``features``; ``user``: [cursor (one
    row per target, in target_id order), columns, the row read ahead]."""
    for entry in user:
        cursor, columns, row = entry
        while row is None or row[0] < tid:
            row = next(cursor, None)
            if row is None:
                break
        entry[2] = row
        at = {d[0]: i for i, d in enumerate(cursor.description)}
        for name, kind in columns:
            features[name] = _typed(kind, row[at[name]]) if row is not None and row[0] == tid else None
