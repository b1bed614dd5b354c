"""The feature catalog: one definition record per feature, and the feature families.

Every feature the store computes has a ``Feature`` record (``FEATURES``, read from
``sql/`` by ``store.registry``): name, type, unit, window rule, null rule, a one-sentence
meaning and the name of the SQL query (in ``sql/``) that computes it. ``CustomerActivityFeatures.catalog()``
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

Every record is read from the family files of ``sql/`` (``store.registry``): a family is
one query of ``sql/`` under a ``-- family: NAME`` header, its header lines say what the store
needs (tables, window edges, ...) and each output column's comment is its record. Adding a
feature (see docs/feature_store.md, "Adding a feature"): one commented column in a family
query of ``sql/`` (or a new family query with its header), one test.
"""

import functools
import sqlite3
import typing

from . import registry, timeutil
from .db import atomic, authorized_actions, quote_identifier
from .errors import FamilyDefinitionError, StoreError
from .registry import (ALL_TIME_RULE, FIXED, FREQUENCY_RULE, TYPES, WINDOW_RULE, WINDOWED,  # noqa: F401
                       Family, Feature)

SQL_TYPES = {"integer": "INTEGER", "real": "REAL", "text": "TEXT", "boolean": "INTEGER"}

# -- the features and the families materialized into customer_features, from sql/ --------
# (the built-in registry's; a store with user family files has a registry.Registry of its own,
# passed as ``reg`` to the functions below, to store.materialize and to store.features)
FEATURES = registry.features()
FAMILIES = list(registry.families())


def families(reg=None):
    """The Families of ``reg`` (None: the built-ins, ``FAMILIES``); a family's ``refresh_all`` is
    the name of its refresh hook (``store.plan.REFRESH_HOOKS``) or None."""
    if reg is None or reg is registry.builtin():
        return FAMILIES
    return _families_of(reg)


@functools.lru_cache(maxsize=64)
def _families_of(reg):
    return list(reg.families())
# The seed families: the four the retention rules (all_features) read.
SEED_FAMILIES = registry.requires("all_features")

# Columns of customer_features that are keys and bookkeeping, not features.
KEY_COLUMNS = (
    ("shop_id", "TEXT NOT NULL"),         # the store's shop
    ("customer_id", "TEXT NOT NULL"),     # the customer
    ("as_of", "TEXT NOT NULL"),           # the snapshot's point in time, ISO-8601 UTC text
    ("as_of_us", "INTEGER NOT NULL"),     # the same in microseconds since the epoch
)


def features(reg=None):
    """Every Feature record (of ``reg``; None: the built-ins), checked: complete, known type,
    unique names, known families (each set of records checked once: the check is a tenth of
    opening a store, and features() is called per statement composed)."""
    records = FEATURES if reg is None or reg is registry.builtin() else reg.features()
    return list(_checked(tuple(records)))


@functools.lru_cache(maxsize=64)
def _checked(records):
    seen = set()
    for f in records:
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
    return records


class Derived(typing.NamedTuple):
    """A column a family declares ``derived`` (its ``-- derived: NAME = EXPR`` line): ``expr``
    (the SQL text as written) over ``as_of_us`` and the family's own stored columns ``inputs``
    is its only definition; it is not stored. Every statement running the family computes it
    (store.features.runnable) and customer_features computes it when read (store.plan.view_sql)."""

    name: str
    expr: str
    inputs: frozenset
    family: str


@functools.lru_cache(maxsize=64)
def derived_columns(reg=None):
    """{column: Derived} of the registry's ``derived:`` lines, each checked by SQLite: the
    expression is prepared as ``SELECT (expr) FROM`` a relation of ``as_of_us`` and the stored
    all-time feature columns of its own family (FIXED, not itself derived), under an authorizer
    that allows reading those columns and nothing else (no table, no other column, no parameter,
    no write). A refusal raises FamilyDefinitionError naming the family's file and the line."""
    reg = reg or registry.builtin()
    out = {}
    check = sqlite3.connect(":memory:")
    try:
        for b in reg.blocks:
            if b.family is None or not b.family.derived:
                continue
            declared = {column for column, _ in b.family.derived}
            allowed = ["as_of_us"] + [f.name for f in b.features
                                      if f.materialize == FIXED and f.name not in declared]
            for (column, expr), line in zip(b.family.derived, b.derived_lines):
                out[column] = _checked_derived(check, b, column, expr, line, allowed)
    finally:
        check.close()
    return out


def _checked_derived(check, block, column, expr, line, allowed):
    """The Derived of one ``derived:`` line of ``block``, prepared in ``check`` over a relation of
    the columns ``allowed`` (see derived_columns); FamilyDefinitionError when refused."""
    fam, names = block.family.query, set(allowed)
    rule = "the expression may read only as_of_us and the family's stored all-time columns"
    check.execute("DROP TABLE IF EXISTS derived_inputs")
    check.execute("CREATE TABLE derived_inputs (" + ", ".join(quote_identifier(c, names) for c in allowed) + ")")
    sql = f"SELECT ({expr}) FROM derived_inputs"
    try:
        actions = authorized_actions(check, sql)
        read = {col for action, table, col, _ in actions
                if action == sqlite3.SQLITE_READ and table == "derived_inputs" and col in names}
        refused = sorted(f"{table or ''}.{col or ''}".strip(".") for action, table, col, _ in actions
                         if action not in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_FUNCTION)
                         and not (action == sqlite3.SQLITE_READ and table == "derived_inputs" and col in names))
        if not refused and len(check.execute(sql + " LIMIT 0").description) != 1:
            raise sqlite3.Error("not one expression")
    except (sqlite3.Error, sqlite3.Warning, ValueError) as exc:
        raise FamilyDefinitionError(block.source, line, f"{fam}: derived column {column}: {rule} ({exc})") from None
    if refused:
        raise FamilyDefinitionError(block.source, line, f"{fam}: derived column {column}: {rule} "
                                    f"(reads {', '.join(refused)})")
    return Derived(column, expr, frozenset(read), fam)


def by_name(reg=None):
    return {f.name: f for f in features(reg)}


def family(name, reg=None):
    for fam in families(reg):
        if fam.query == name:
            return fam
    raise StoreError(f"no feature family {name!r}")


def catalog_rows(reg=None):
    """The records as rows of the feature_catalog table (in catalog order). A user family's
    records are stored like the built-ins', their ``added_by`` naming the family file."""
    for position, f in enumerate(features(reg)):
        yield (f.name, f.type, f.unit, f.window_rule, f.null_rule, f.meaning, f.query,
               f.materialize or "", f.added_by, position)


_CATALOG_COLUMNS = ("name", "type", "unit", "window_rule", "null_rule", "meaning", "query",
                    "materialized", "added_by", "position")


def ensure_catalog(conn, reg=None):
    """Bring the feature_catalog table up to date, taking the write lock only when
    the stored records differ from the code's (a plain read otherwise, so opening
    a store while another process writes does not wait). Returns True when written."""
    stored = conn.execute(
        f"SELECT {', '.join(_CATALOG_COLUMNS)} FROM feature_catalog ORDER BY position").fetchall()
    if [tuple(r) for r in stored] == list(catalog_rows(reg)):
        return False
    with atomic(conn):
        return sync_catalog(conn, reg)


def sync_catalog(conn, reg=None):
    """Write the records to the feature_catalog table when they differ (caller holds a transaction)."""
    rows = list(catalog_rows(reg))
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
