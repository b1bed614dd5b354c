"""Materialisation, incremental refresh and export of the feature table.

``materialize`` writes ``customer_features``: one row per customer of the
shop, every scalar feature of the catalog as a plain column (windowed features
once per window as ``<name>_<N>d`` and once over all time as ``<name>``). Each
family query of ``sql/`` (or of a user's family file) runs as written, its
parameters bound, into a temp table of its own (``Plan.stage``): a windowed
family once over all time and once per window, with ``:window_us``,
``:frequency_days`` and ``:frequency_us`` bound to that window's values; one
``INSERT ... SELECT`` then joins the staged tables. No SQL text is rewritten:
a statement is only composed with the target relation, the CTEs of its
``-- requires:`` line and the staged tables. The
new rows are built into ``customer_features_new`` and swapped in by
``DROP``/``ALTER TABLE ... RENAME`` inside the same transaction: a reader sees
the old snapshot or the new one, never a mix. ``materializations`` records
each run.

``refresh`` brings the last snapshot to a new ``as_of`` by recomputing only
the customers whose values can have changed: those logged in
``changed_customers`` by the triggers of migration 0003, and those with an
event in ``[lo, hi]`` or ``[lo - e, hi - e]`` for a window edge ``e``, where
``lo``/``hi`` are the old and new ``as_of``; a customer whose only change
is an edge crossing gets only the families with that edge recomputed (the
other columns kept from its row). The recency of every row is recomputed from
``last_purchase_us`` by one UPDATE. The result equals a full ``materialize``
at the same ``as_of`` (tests/test_refresh.py).

Column names come only from the catalog (store/catalog.py) and the window
allowlist below, through ``store.db.quote_identifier``; values are bound.
"""

import contextlib
import csv
import json
import math
import numbers
import os
import re
import shutil
import subprocess
import sys
import tempfile
import typing

from . import behavior, catalog, localtime, registry, scratch, timeutil
from .db import (applied_steps, atomic, automatic_indexes, begin_read, check_output_file, commit, database_file,
                 quote_identifier)
from .errors import StoreError, UnknownNameError
from .features import parameters, target_relation, window_parameters
from .resources import query
from .runs import NEW_TABLE, TABLE, last_run, table_columns
from .runs import table_exists as _table_exists

DEFAULT_WINDOWS = (7, 30, 90, 365)
MAX_WINDOW_DAYS = 36_500
EXPORT_FORMATS = ("csv", "ndjson")
ALL_TIME_FREQUENCY_DAYS = 30
# The targets of a run: a temp table named ``target``, read directly by the family
# queries (FROM target AS t), so every join on t.target_id is a rowid lookup.
_TARGETS = "temp.target"

# The named refresh hooks a family's ``-- refresh all: HOOK`` line may name (the allowlist):
# callables (conn, shop_id, as_of_us) that bring the family's columns of every row of the shop
# to a new as_of (values relative to the whole shop, see catalog.Family.refresh_all).
REFRESH_HOOKS = {"refresh_segments": behavior.refresh_segments}


def check_windows(windows):
    """Windows as a sorted tuple of distinct positive whole days (the window allowlist)."""
    if windows is None:
        return DEFAULT_WINDOWS
    if isinstance(windows, (str, bytes)) or not hasattr(windows, "__iter__"):
        raise ValueError(f"windows must be an iterable of positive whole days, got {windows!r}")
    out = set()
    for w in windows:
        if isinstance(w, bool) or not isinstance(w, numbers.Integral) or not 0 < w <= MAX_WINDOW_DAYS:
            if isinstance(w, float) and w.is_integer() and 0 < w <= MAX_WINDOW_DAYS:
                w = int(w)
            else:
                raise ValueError(f"a window must be a whole number of days in 1..{MAX_WINDOW_DAYS}, got {w!r}")
        out.add(int(w))
    if not out:
        raise ValueError("windows must name at least one window")
    return tuple(sorted(out))


def family_names(reg=None):
    """The names of the materializable feature families (of the registry ``reg``; None: the
    built-ins), in table order (the family allowlist)."""
    return tuple(fam.query for fam in catalog.families(reg))


def check_families(families, reg=None):
    """The chosen families as a set of names from the allowlist (None = every family)."""
    names = family_names(reg)
    if families is None:
        return set(names)
    if isinstance(families, (str, bytes)) or not hasattr(families, "__iter__"):
        raise ValueError(f"families must be an iterable of family names, got {families!r}")
    chosen = set()
    for name in families:
        if name not in names:
            raise UnknownNameError(f"unknown feature family {name!r}; known: {', '.join(names)}")
        chosen.add(name)
    if not chosen:
        raise ValueError("families must name at least one family")
    return chosen


def _run_families(run, reg=None):
    """The families of a recorded run (None when it had every family): as recorded (migration
    0006), or for an older run those with a column in it."""
    if run.get("families") is not None:
        if run.get("all_families"):
            return None
        names = set(family_names(reg))
        return {name for name in run["families"] if name in names} or None
    columns = set(run["columns"])
    chosen = {f.query for f in catalog.features(reg) if f.materialize is not None
              and (f.name in columns or any(f"{f.name}_{w}d" in columns for w in run["windows"]))}
    return None if chosen >= set(family_names(reg)) else chosen or None


def family_statements(conn, shop_id, name, reg=None):
    """[Statement(table, sql, parameters)]: the statements ``materialize`` runs to compute the
    family ``name`` (those of the queries it declares keyed first, then its own; a windowed
    family: then one per window, ``<family>_<N>d``), exactly as it runs each one, as
    ``INSERT INTO temp.<table> (...) <sql>`` with the parameters shared by every statement
    and, over them, the statement's ``parameters`` (a window's values), with the windows and
    families of the shop's last run (the defaults when there is none)."""
    names = family_names(reg)
    if name not in names:
        raise UnknownNameError(f"unknown feature family {name!r}; known: {', '.join(names)}")
    run = last_run(conn, shop_id)
    plan = Plan(conn, run["windows"] if run else DEFAULT_WINDOWS, _run_families(run, reg) if run else None, reg)
    fam = next((f for f in plan.families if f.query == name), None)
    if fam is None:
        raise UnknownNameError(f"feature family {name!r} is not in the shop's materialisation")
    own = {name, *fam.keyed} | {_window_table(name, w) for w in plan.windows}
    return [st for st in plan.stage_statements() if st.table in own]


def statement_text(statement):
    """A ``Statement`` as ``caf catalog NAME --sql`` prints it: a comment line naming the
    table it fills, one giving its own parameter values (when it has any), then the SELECT."""
    lines = [f"-- materialize: INSERT INTO temp.{statement.table} (...)"]
    if statement.parameters:
        values = ", ".join(f":{k} = {'NULL' if v is None else v}" for k, v in statement.parameters.items())
        lines.append(f"-- parameters: {values}")
    return "\n".join(lines + [statement.sql + ";"])


class Plan:
    """The columns of customer_features for a set of windows, and the SQL computing them."""

    def __init__(self, conn, windows=DEFAULT_WINDOWS, families=None, reg=None):
        self.reg = reg or registry.builtin()
        self.windows = check_windows(windows)
        chosen = check_families(families, reg)
        known = self.reg.known
        self.families = []
        for fam in catalog.families(reg):
            if fam.query not in chosen:
                continue
            missing = [t for t in fam.tables if not _table_exists(conn, t)]
            missing += [q for q in (fam.query,) + tuple(fam.requires) if not known(q)]
            if missing:
                if fam.optional:
                    continue
                raise StoreError(f"feature family {fam.query!r} needs {', '.join(missing)}, which do not exist")
            if fam.refresh_all is not None and fam.refresh_all not in REFRESH_HOOKS:
                raise StoreError(f"feature family {fam.query!r}: unknown refresh hook {fam.refresh_all!r}; "
                                 f"known: {', '.join(REFRESH_HOOKS)}")
            self.families.append(fam)
        active = {fam.query for fam in self.families}
        registered = {fam.query for fam in catalog.families(reg)}
        self.family_names = tuple(fam.query for fam in self.families)
        self.fixed, self.windowed = [], []
        for f in catalog.features(reg):
            if f.materialize is None:
                continue
            if f.query not in registered:
                raise StoreError(f"feature {f.name!r} is materialized but its query {f.query!r} is not a family")
            if f.query not in active:
                continue
            (self.windowed if f.materialize == catalog.WINDOWED else self.fixed).append(f)
        windowed_families = {f.query for f in self.windowed}
        for fam in self.families:
            if fam.query in windowed_families and fam.requires:
                raise StoreError(f"family {fam.query!r} has windowed features and requires other queries")
        # (column name, SQL type, staged table, its column), in table order
        self.columns = []
        for f in self.windowed + self.fixed:
            self.columns.append((f.name, catalog.SQL_TYPES[f.type], f.query, f.name))
        # A windowed family runs once per window (its window parameters bound to the
        # window's values, see window_parameters), each run staged into a table of its
        # own, <family>_<N>d, of which only the windowed columns are read.
        for w in self.windows:
            for f in self.windowed:
                self.columns.append((f"{f.name}_{w}d", catalog.SQL_TYPES[f.type], _window_table(f.query, w), f.name))
        self.column_names = [name for name, _ in catalog.KEY_COLUMNS] + [c[0] for c in self.columns]
        names = [c[0] for c in self.columns]
        if len(set(names)) != len(names):
            raise StoreError("two materialized columns have the same name")
        self.edges_days = set(self.windows) | {ALL_TIME_FREQUENCY_DAYS}
        self.everyone_on_as_of_change = False
        for fam in self.families:
            if fam.edges_days is None:
                self.everyone_on_as_of_change = True
            else:
                self.edges_days.update(fam.edges_days)
        self.tables = sorted({t for fam in self.families for t in fam.tables})
        # families whose values depend on other customers (ranks in the shop: catalog.Family.refresh_all)
        self.population_families = tuple(fam.query for fam in self.families if fam.refresh_all is not None)

    # -- SQL -----------------------------------------------------------------
    def create_sql(self, table, schema="main"):
        cols = [f"{quote_identifier(name, self._allowed)} {decl}" for name, decl in catalog.KEY_COLUMNS]
        cols += self.feature_column_defs()
        return (f"CREATE TABLE {_schema(schema)}.{quote_identifier(table, (TABLE, NEW_TABLE))} (\n    "
                + ",\n    ".join(cols) + ",\n    PRIMARY KEY (shop_id, customer_id)\n)")

    @property
    def feature_names(self):
        """The feature columns (every column but the keys of catalog.KEY_COLUMNS), in table order."""
        return [c[0] for c in self.columns]

    def feature_column_defs(self):
        """``"name" TYPE`` of every feature column, in table order (the declared types of
        customer_features, so a table declared with them converts values as it does)."""
        return [f"{quote_identifier(name, self._allowed)} {sqltype}" for name, sqltype, _, _ in self.columns]

    @property
    def _allowed(self):
        return set(self.column_names)

    # -- staged execution (materialize, refresh) ------------------------------
    def stage(self, conn, params, schema="temp", one_as_of=True):
        """Compute every family of the plan into a temp table of its own name, one statement each.

        A family's table is keyed by ``target_id INTEGER PRIMARY KEY`` and filled in
        target order (an append), so the final join is a rowid lookup per family; so is
        a query a family declares ``keyed`` (one row per target, e.g. the parts of
        behavior_family), computed before it. The other queries of a statement's
        ``-- requires:`` line (and of theirs, e.g. session_devices) are MATERIALIZED CTEs
        of that statement, planned as in a single-customer read; a staged table (the
        seed families, for all_features) is read as a table. A windowed family runs
        once over all time (table ``<family>``) and once per window (table
        ``<family>_<N>d``), each run with its window parameters bound to that window's
        values (``Statement.parameters``, over ``params``).
        Only one family's ephemeral tables and automatic indexes are alive at a time,
        which bounds memory whatever the number of columns.
        Every target of a materialisation has the same as_of, so each statement reads
        the targets through ``features.target_relation``, whose as_of_us is the bound
        ``:as_of_us``: SQLite inlines it and computes each window edge once per
        statement instead of once per event row; the family queries run as written.
        ``one_as_of=False`` (features_at: each target has its own as_of) runs the family
        queries as written, reading ``t.as_of_us`` per target.
        ``schema``: where the tables go (``temp``, or an attached scratch file in a
        partition worker). Returns the staged names; ``unstage`` drops them.
        """
        schema = _schema(schema)
        statements = self.stage_statements(one_as_of, schema)
        allowed = {st.table for st in statements}
        staged = []
        try:
            for st in statements:
                staged.append(st.table)
                _stage_keyed(conn, f"{schema}." + quote_identifier(st.table, allowed), st.sql,
                             {**params, **st.parameters}, st.table)
        except BaseException:
            self.unstage(conn, staged, schema)
            raise
        return staged

    def stage_statements(self, one_as_of=True, schema="temp"):
        """[Statement(table, sql, parameters)] of the statements ``stage`` runs, in order:
        each fills the table ``table`` from the SELECT ``sql``, run with the plan's
        parameters (``params``) and, over them, its own ``parameters`` (a windowed
        family's window values); ``caf catalog FAMILY --sql`` prints a family's. With
        ``one_as_of`` each reads the targets of ``schema.target`` through the relation
        ``features.target_relation`` (their as_of is the bound ``:as_of_us``); otherwise
        it reads the table ``target`` itself.

        A statement is a query of ``sql/`` (or of a user's family file) as written: a
        family, or a query a family declares ``keyed``, preceded by the queries of its
        ``-- requires:`` line (and theirs) that are not staged as tables, as
        MATERIALIZED CTEs. A windowed family's per-window statement selects its
        windowed columns (catalog names) from the family query."""
        first = [target_relation(f"{_schema(schema)}.target", True)] if one_as_of else []
        tables = {f.query for f in self.families} | {k for f in self.families for k in f.keyed}
        used = {c[2] for c in self.columns}  # a family without a column runs only when another reads it
        windowed = {}
        for f in self.windowed:
            windowed.setdefault(f.query, []).append(f.name)
        order, done = [], set()

        def add(name):  # the staged queries a query reads come before it
            if name in done:
                return
            done.add(name)
            for dep in self.reg.requires(name):
                if dep in tables:
                    add(dep)
            order.append(name)

        for fam in self.families:
            if fam.query in used:
                add(fam.query)

        def ctes(name, found):
            """The unstaged queries ``name`` reads (its requires, and theirs), in order."""
            for dep in self.reg.requires(name):
                if dep not in tables and dep not in found:
                    ctes(dep, found)
                    found.append(dep)
            return found

        statements = []
        for name in order:
            helpers = ctes(name, [])
            allowed = set(helpers)
            head = ",\n".join(first + [f"{quote_identifier(h, allowed)} AS MATERIALIZED (\n{self.reg.query(h)}\n)"
                                        for h in helpers])
            head = f"WITH {head}\n" if head else ""
            body = self.reg.query(name)
            if name not in windowed:
                statements.append(Statement(name, f"{head}SELECT {self._own_columns(name)} FROM (\n{body}\n)", {}))
                continue
            statements.append(Statement(name, f"{head}SELECT * FROM (\n{body}\n)",
                                        window_parameters(None, ALL_TIME_FREQUENCY_DAYS)))
            cols = ", ".join(quote_identifier(c, set(windowed[name])) for c in windowed[name])
            for w in self.windows:
                statements.append(Statement(_window_table(name, w), f"{head}SELECT target_id, {cols} FROM (\n{body}\n)",
                                            window_parameters(w, w)))
        return statements

    def _own_columns(self, name):
        """What the statement of the staged query ``name`` keeps of its rows: ``*``, or for a
        family that reads other families (all_features, whose rows pass the seed families'
        columns through for the getters) its target_id, feature columns and helper columns only
        (the columns another query or the final select reads from its table)."""
        fam = next((f for f in self.families if f.query == name), None)
        if fam is None or not fam.requires:
            return "*"
        block = next(b for b in self.reg.blocks if b.name == name)
        own = ["target_id"] + [f.name for f in block.features if f.materialize] + list(block.helpers)
        return ", ".join(quote_identifier(c, set(own)) for c in own)

    def unstage(self, conn, staged, schema="temp"):
        schema = _schema(schema)
        allowed = set(staged)
        for name in staged:
            conn.execute(f"DROP TABLE IF EXISTS {schema}.{quote_identifier(name, allowed)}")

    def staged_select_sql(self, schema="temp"):
        """SELECT of every column (the table's order) from the staged tables (``stage``) in
        ``schema``, one row per target of ``schema.target``, in target order."""
        keys = ["CAST(:shop_id AS TEXT)", "t.customer_id", "CAST(:as_of AS TEXT)", "CAST(:as_of_us AS INTEGER)"]
        return self._staged_select(keys, schema)

    def staged_features_sql(self, schema="temp"):
        """SELECT of ``t.target_id`` and every feature column (``feature_names``) from the
        staged tables, one row per target, in target order: the rows of ``staged_select_sql``
        with the target's id in place of the key columns (features_at, whose targets each
        have their own as_of)."""
        return self._staged_select(["t.target_id"], schema)

    def _staged_select(self, keys, schema):
        schema = _schema(schema)
        aliases = {}
        for _, _, cte, _ in self.columns:
            aliases.setdefault(cte, f"f{len(aliases)}")
        allowed_ctes = set(aliases)
        allowed_cols = {c[3] for c in self.columns}
        select = list(keys)
        for name, _, cte, col in self.columns:
            select.append(f"{aliases[cte]}.{quote_identifier(col, allowed_cols)}")
        joins = [f"LEFT JOIN {schema}.{quote_identifier(cte, allowed_ctes)} AS {alias} "
                 f"ON {alias}.target_id = t.target_id" for cte, alias in aliases.items()]
        return ("SELECT " + ",\n    ".join(select) + f"\nFROM {schema}.target AS t\n" + "\n".join(joins)
                + "\nORDER BY t.target_id")

    def staged_insert_sql(self, table, schema="temp", into="main"):
        """INSERT into ``into.table`` of ``staged_select_sql(schema)``."""
        cols = ", ".join(quote_identifier(n, self._allowed) for n in self.column_names)
        return (f"INSERT INTO {_schema(into)}.{quote_identifier(table, (TABLE, NEW_TABLE))} ({cols})\n"
                + self.staged_select_sql(schema))

    def write(self, conn, table, params):
        """Stage every family, then insert one row per target into ``table``."""
        with automatic_indexes(conn):
            staged = self.stage(conn, params)
            try:
                conn.execute(self.staged_insert_sql(table), params)
            finally:
                self.unstage(conn, staged)

    def family_hashes(self):
        """{family: sha256 of its SQL} of the plan's families (materializations.families)."""
        return {name: self.reg.family_hash(name) for name in self.family_names}

    def params(self, shop_id, as_of_us):
        """The bound parameters shared by the plan's statements (each statement's own
        ``Statement.parameters`` go over them); ``as_of_us`` None when every target has its
        own as_of (``stage(one_as_of=False)``: no statement then reads ``:as_of_us``)."""
        params = parameters(shop_id, frequency_days=ALL_TIME_FREQUENCY_DAYS)
        params.update(as_of_us=as_of_us, as_of=None if as_of_us is None else timeutil.iso(as_of_us))
        return params


class Statement(typing.NamedTuple):
    """One statement of ``Plan.stage``: the SELECT ``sql`` filling the staged table ``table``,
    run with the plan's parameters and, over them, ``parameters`` (a windowed family's
    window values: ``features.window_parameters``; empty for the others)."""

    table: str
    sql: str
    parameters: dict


_SCHEMAS = re.compile(r"main|temp|part[0-9]{1,3}|scratch")


def _schema(name):
    """A schema name from the allowlist: main, temp, scratch (a worker's file), partN (attached)."""
    if not _SCHEMAS.fullmatch(name):
        raise ValueError(f"not a staging schema: {name!r}")
    return name


def _stage_keyed(conn, table, body, params, name):
    """Replace ``table`` (a quoted, schema-qualified name) by the rows of the SELECT ``body``,
    keyed by its first column, ``target_id INTEGER PRIMARY KEY`` (rows come in target order:
    an append). The other columns are named after the SELECT's; returns them."""
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    cur = conn.execute(body + " LIMIT 0", params)
    cols = [d[0] for d in cur.description]
    cur.close()
    if cols[0] != "target_id":
        raise StoreError(f"query {name!r} does not start with target_id")
    quoted = [quote_identifier(c, set(cols)) for c in cols]
    conn.execute(f"CREATE TABLE {table} (target_id INTEGER PRIMARY KEY, {', '.join(quoted[1:])})")
    conn.execute(f"INSERT INTO {table} ({', '.join(quoted)}) {body}", params)
    return cols[1:]


def _window_table(family, w):
    """The staged table of a windowed family's run for the window of ``w`` days."""
    return f"{family}_{w}d"


# -- runs -----------------------------------------------------------------------


def all_customers_params(shop_id, as_of_us, lo="", hi=b""):
    """Parameters of fill_targets_all_customers: the customers with lo <= id < hi (default: all;
    an empty BLOB sorts after every text, so it is the open upper bound)."""
    return {"shop_id": shop_id, "as_of_us": as_of_us, "lo": lo, "hi": hi}


def fill_targets(conn, sql, params):
    """(Re)create the targets table ``temp.target(target_id, customer_id, as_of_us)`` that the
    family queries read, filled by ``sql`` (an INSERT's SELECT from sql/, bound ``params``),
    and index it by customer; ``drop_targets`` removes it."""
    conn.execute(f"DROP TABLE IF EXISTS {_TARGETS}")
    conn.execute(f"CREATE TEMP TABLE target (target_id INTEGER PRIMARY KEY, "
                 "customer_id TEXT NOT NULL, as_of_us INTEGER NOT NULL)")
    conn.execute(f"INSERT INTO {_TARGETS} (target_id, customer_id, as_of_us) " + sql, params)
    # Lets the planner look a target up by customer when a family query starts from an
    # event table (otherwise it may scan every target per event).
    conn.execute("CREATE INDEX temp.target_customer ON target (customer_id)")


def drop_targets(conn):
    conn.execute(f"DROP TABLE IF EXISTS {_TARGETS}")


def _finish(conn, shop_id, kind, plan, as_of_us, started, recomputed, every_family=True):
    """The end of a materialisation's transaction: the change log of the shop is
    consumed, the run recorded, the targets dropped (the caller's ``atomic`` block commits)."""
    conn.execute("DELETE FROM changed_customers WHERE shop_id = ?", [shop_id])
    result = _record(conn, shop_id, kind, plan, as_of_us, started, recomputed, every_family)
    conn.execute(f"DROP TABLE IF EXISTS {_TARGETS}")
    return result


def _record(conn, shop_id, kind, plan, as_of_us, started, recomputed, every_family=True):
    """One materializations row: the run's windows, columns, and (migration 0006) the families
    it used with the sha256 of each one's SQL, and whether it had every family of the registry."""
    rows = conn.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE shop_id = ?", [shop_id]).fetchone()[0]
    steps = applied_steps(conn)
    conn.execute(
        "INSERT INTO materializations (shop_id, kind, as_of, as_of_us, windows, columns, schema_version, "
        "started_at, finished_at, rows, recomputed, families, all_families) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [shop_id, kind, timeutil.iso(as_of_us), as_of_us, json.dumps(list(plan.windows)),
         json.dumps(plan.column_names), steps[-1] if steps else "", started,
         timeutil.iso(timeutil.now_us()), rows, recomputed, json.dumps(plan.family_hashes()),
         1 if every_family else 0])
    return {"kind": kind, "as_of": timeutil.iso(as_of_us), "windows": list(plan.windows), "rows": rows,
            "recomputed": recomputed, "columns": len(plan.column_names)}


def materialize(conn, shop_id, as_of_us, windows=DEFAULT_WINDOWS, families=None, workers=1, reg=None):
    """Rebuild the shop's rows of customer_features at ``as_of_us`` (caller holds the writer lock);
    ``families`` limits the columns to those families (None = every family).

    ``workers`` > 1 computes customer ranges in that many worker processes over read-only
    connections (see ``_write_partitioned``); the result is the same table, row for row.
    A database with no file (in memory) is computed in this process.
    """
    path = database_file(conn) if workers > 1 else None
    plan = Plan(conn, windows, families, reg)
    started = timeutil.iso(timeutil.now_us())
    params = plan.params(shop_id, as_of_us)
    with contextlib.ExitStack() as cleanup:  # closed after the COMMIT or ROLLBACK
        with atomic(conn):
            catalog.sync_catalog(conn, reg)
            conn.execute(f"DROP TABLE IF EXISTS {NEW_TABLE}")
            conn.execute(plan.create_sql(NEW_TABLE))
            old = table_columns(conn, TABLE)
            if old:  # keep other shops' rows (columns in common; new columns NULL)
                common = [c for c in plan.column_names if c in old]
                allowed = set(common)
                cols = ", ".join(quote_identifier(c, allowed) for c in common)
                conn.execute(f"INSERT INTO {NEW_TABLE} ({cols}) SELECT {cols} FROM {TABLE} WHERE shop_id <> ?",
                             [shop_id])
            bounds = _partition_bounds(conn, shop_id, workers) if workers > 1 and path is not None else None
            if bounds:
                recomputed = _write_partitioned(conn, cleanup, plan, path, shop_id, as_of_us, bounds, params)
            else:
                fill_targets(conn, query("fill_targets_all_customers"), all_customers_params(shop_id, as_of_us))
                plan.write(conn, NEW_TABLE, params)
                recomputed = conn.execute(f"SELECT COUNT(*) FROM {_TARGETS}").fetchone()[0]
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
            conn.execute(f"ALTER TABLE {NEW_TABLE} RENAME TO {TABLE}")
            result = _finish(conn, shop_id, "full", plan, as_of_us, started, recomputed, families is None)
    return result


# -- partitioned materialisation (every core) ----------------------------------------
MAX_WORKERS = 64


def check_workers(workers):
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be a whole number in 1..{MAX_WORKERS}, got {workers!r}")
    return int(workers)


def _partition_bounds(conn, shop_id, workers):
    """``workers`` customer-id ranges [lo, hi) of about equal size, or None when the shop is too
    small to split. The cut points are quantiles of the purchasing customers (one ordered pass
    of the purchases key); the ranges cover every id whatever the cut points are."""
    n = conn.execute(query("partition_customer_count"), {"shop_id": shop_id}).fetchone()[0]
    if n < 2 * workers:
        return None
    cuts = [conn.execute(query("partition_customer_at"), {"shop_id": shop_id, "offset": n * i // workers}
                         ).fetchone()[0] for i in range(1, workers)]
    cuts = sorted(set(cuts))
    return list(zip([""] + cuts, cuts + [b""]))


def _write_partitioned(conn, cleanup, plan, path, shop_id, as_of_us, bounds, params):
    """Compute the customer ranges ``bounds`` in parallel worker processes and insert their rows.

    The caller holds the write transaction (BEGIN IMMEDIATE) from before the workers start to
    after the rows are in: no other writer can commit meanwhile, so every worker's read-only
    connection sees the same committed state as this connection. Each worker (``python -m
    store.partition``, a fresh interpreter: no fork of this process and its connections)
    fills ``target`` with its range, stages every family into a scratch file of its own
    (no journal) and joins them into the range's rows; this connection, the single writer,
    attaches the files and copies each range's rows in customer order. Returns the number
    of targets.

    Scratch files go into one directory of this run (``store.scratch.make_dir``, owner
    recorded), made after removing the stale ones of runs whose process is gone
    (``store.scratch.sweep_stale``). ``cleanup`` (an ExitStack closed after COMMIT or
    ROLLBACK) detaches the files and deletes the directory. Workers die with this process
    (store/partition.py: they read a stdin pipe only this process holds the other end of,
    and more); if this function is left by an exception (a worker failed, KeyboardInterrupt)
    the workers still running are stopped and waited for before the directory goes.
    """
    scratch.sweep_stale()
    workdir = scratch.make_dir()
    cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
    jobs = []
    try:
        for i, (lo, hi) in enumerate(bounds):
            task = {"db": str(path), "scratch": os.path.join(workdir, f"part{i}.db"), "shop_id": shop_id,
                    "as_of_us": as_of_us, "windows": list(plan.windows), "families": list(plan.family_names),
                    "feature_files": list(plan.reg.files),
                    "lo": lo, "hi": None if hi == b"" else hi, "timezone": localtime.installed(conn) or "UTC",
                    "parent_pid": os.getpid()}
            jobs.append((task, _start_worker(task)))
        failures = []
        for _, proc in jobs:
            if proc.wait() != 0:
                failures.append(_last_error_line(proc))
    except BaseException:
        _stop_workers([proc for _, proc in jobs])
        raise
    finally:
        for _, proc in jobs:
            _close_worker_files(proc)
    if failures:
        raise StoreError("a materialize worker failed: " + "; ".join(failures))
    recomputed = 0
    for i, (task, _) in enumerate(jobs):
        schema = _schema(f"part{i}")
        conn.execute(f"ATTACH DATABASE ? AS {schema}", [task["scratch"]])
        cleanup.callback(_detach, conn, schema)
        # same definition on both sides: SQLite copies the records without decoding them
        conn.execute(f"INSERT INTO main.{NEW_TABLE} SELECT * FROM {schema}.{NEW_TABLE}")
        recomputed += conn.execute(f"SELECT COUNT(*) FROM {schema}.target").fetchone()[0]
    return recomputed


def _detach(conn, schema):
    """Run after COMMIT or ROLLBACK (DETACH is refused inside a transaction)."""
    if not conn.in_transaction:
        conn.execute(f"DETACH DATABASE {_schema(schema)}")


WORKER_STOP_WAIT_S = 5


def _start_worker(task):
    """A worker process: this interpreter, this package first on its path. Its stdin is a pipe
    this process never writes to (the worker takes its end-of-file as this process's death);
    its stderr goes to an anonymous temporary file (read when it fails); stdout is unused."""
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([package_root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    err = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "store.partition", json.dumps(task)], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
    except BaseException:
        err.close()
        raise
    proc.caf_stderr = err
    return proc


def _last_error_line(proc):
    err = getattr(proc, "caf_stderr", None)
    text = ""
    if err is not None:
        err.seek(0)
        text = err.read().decode("utf-8", "replace").strip()
    return text.splitlines()[-1] if text else f"exit {proc.returncode}"


def _stop_workers(procs):
    """Stop the workers still running: SIGTERM (they delete their scratch), SIGKILL after
    ``WORKER_STOP_WAIT_S``; waits for each."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(WORKER_STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _close_worker_files(proc):
    for f in (proc.stdin, getattr(proc, "caf_stderr", None)):
        if f is not None:
            try:
                f.close()
            except OSError:
                pass


def compute_partition(task):
    """The worker's job (store/partition.py): one customer range of a materialisation, every
    family staged into the scratch file ``task['scratch']``; returns the number of targets."""
    from .db import open_reader
    reader = open_reader(task["db"])
    try:
        reader.execute("ATTACH DATABASE ? AS scratch", [task["scratch"]])
        reader.execute("PRAGMA scratch.journal_mode = OFF")
        reader.execute("PRAGMA scratch.synchronous = OFF")
        localtime.install(reader, task["timezone"])  # local-time features read it, as on the writer
        reg = registry.with_files(task["feature_files"]) if task.get("feature_files") else None
        plan = Plan(reader, task["windows"], task["families"], reg)
        params = plan.params(task["shop_id"], task["as_of_us"])
        hi = b"" if task["hi"] is None else task["hi"]
        begin_read(reader)  # one read snapshot for every statement of the worker
        reader.execute("CREATE TABLE scratch.target (target_id INTEGER PRIMARY KEY, "
                       "customer_id TEXT NOT NULL, as_of_us INTEGER NOT NULL)")
        reader.execute("INSERT INTO scratch.target (target_id, customer_id, as_of_us) "
                       + query("fill_targets_all_customers"),
                       all_customers_params(task["shop_id"], task["as_of_us"], task["lo"], hi))
        reader.execute("CREATE INDEX scratch.target_customer ON target (customer_id)")
        with automatic_indexes(reader):
            staged = plan.stage(reader, params, schema="scratch")
        # the rows of the range, joined here in parallel: the writer only copies them
        reader.execute(plan.create_sql(NEW_TABLE, "scratch"))
        reader.execute(plan.staged_insert_sql(NEW_TABLE, "scratch", into="scratch"), params)
        plan.unstage(reader, staged, "scratch")
        commit(reader)
        return reader.execute("SELECT COUNT(*) FROM scratch.target").fetchone()[0]
    finally:
        reader.close()


def _has_change_triggers(conn, tables):
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    return all(f"changed_customers_{t}_insert" in names for t in tables)


def _family_edges(fam, windows, reg=None):
    """{(event table, window edge in days)} whose crossing events change the family's values
    (besides the events at as_of itself): its declared edges, the windows and the all-time
    frequency window when it has windowed features, on its edge tables; and those of the
    families it reads."""
    edges = set(fam.edges_days or ())
    if any(f.query == fam.query and f.materialize == catalog.WINDOWED for f in catalog.features(reg)):
        edges |= set(windows) | {ALL_TIME_FREQUENCY_DAYS}
    out = {(t, e) for t in (fam.edge_tables if fam.edge_tables is not None else fam.tables) for e in edges}
    names = {f.query for f in catalog.families(reg)}
    for dep in fam.requires:
        if dep in names:
            out |= _family_edges(catalog.family(dep, reg), windows, reg)
    return out


# the columns refresh_recency writes and reads (its -- sets: and -- reads: lines, sql/materialize.sql)
_RECENCY_OUTPUTS = frozenset(registry.sets("refresh_recency"))
_RECENCY_INPUTS = frozenset(registry.reads("refresh_recency"))
_REFRESH_TEMP = ("refresh_hits", "refresh_family_edges", "refresh_target")
_EDGE_QUERIES = tuple(f.edge_query for f in catalog.FAMILIES if f.edge_query)


def _stage_edge_query(conn, fam, params):
    """Compute the family's edge query (catalog.Family.edge_query) for the targets in
    temp.target into a temp table of its name keyed by target_id; returns its columns."""
    allowed = set(fam.edge_requires) | {fam.edge_query}
    head = "WITH " + ",\n".join([target_relation(_TARGETS, True)]
                                + [f"{quote_identifier(h, allowed)} AS MATERIALIZED (\n{query(h)}\n)"
                                   for h in fam.edge_requires]) + "\n"
    body = f"{head}SELECT * FROM (\n{query(fam.edge_query)}\n)"
    table = "temp." + quote_identifier(fam.edge_query, _EDGE_QUERIES)
    return _stage_keyed(conn, table, body, params, fam.edge_query)


def _refresh_hits_sql(table, allowed):
    """The statement of ``refresh_hits`` for one event table, as written in sql/materialize.sql:
    the query reads the CTEs ``refresh_intervals`` (its query) and ``refresh_events``, the
    event table ``table`` (a name of ``allowed``, the plan's tables) read in place. SQLite
    flattens ``refresh_events`` into the query, so it walks the table's index as if the
    query named the table."""
    events = quote_identifier(table, allowed)
    return ("WITH refresh_intervals AS MATERIALIZED (\n" + query("refresh_intervals") + "\n),\n"
            f"refresh_events AS (SELECT shop_id, customer_id, event_time_us FROM main.{events})\n"
            + query("refresh_hits"))


def _drop_refresh_temp(conn):
    for name in _REFRESH_TEMP:
        conn.execute(f"DROP TABLE IF EXISTS temp.{quote_identifier(name, _REFRESH_TEMP)}")


@contextlib.contextmanager
def _refresh_temp_dropped_on_error(conn):
    """Drop refresh's temp tables when the block raises (outside its transaction: after the
    ROLLBACK of the ``atomic`` block it holds)."""
    try:
        yield
    except BaseException:
        _drop_refresh_temp(conn)
        raise


def _refresh_write_sql(plan, bits, staged, edge_staged):
    """INSERT OR REPLACE of every target's row: a family's columns from its staged table when
    the target's mask has the family's bit; a column of the family's edge query from that
    query's staged table when the mask has the family's edge bit (``edge_staged``: family ->
    (table, columns)); from the target's old row otherwise."""
    family_of = {}
    for fam in plan.families:
        family_of[fam.query] = fam.query
        for w in plan.windows:
            family_of[_window_table(fam.query, w)] = fam.query
    aliases = {}
    for _, _, cte, _ in plan.columns:
        if family_of[cte] in staged:
            aliases.setdefault(cte, f"f{len(aliases)}")
    allowed_ctes = set(aliases)
    allowed_cols = {c[3] for c in plan.columns}
    select = ["CAST(:shop_id AS TEXT)", "t.customer_id", "CAST(:as_of AS TEXT)", "CAST(:as_of_us AS INTEGER)"]
    edge_alias = {fam: f"e{i}" for i, fam in enumerate(edge_staged)}
    for name, _, cte, col in plan.columns:
        expr = f"o.{quote_identifier(name, plan._allowed)}"
        fam = family_of[cte]
        if fam in edge_staged and name in edge_staged[fam][1]:
            new = f"{edge_alias[fam]}.{quote_identifier(name, plan._allowed)}"
            expr = f"CASE WHEN t.mask & :bit_{bits[fam][1]} THEN {new} ELSE {expr} END"
        if fam in staged:
            new = f"{aliases[cte]}.{quote_identifier(col, allowed_cols)}"
            expr = f"CASE WHEN t.mask & :bit_{bits[fam][0]} THEN {new} ELSE {expr} END"
        select.append(expr)
    joins = [f"LEFT JOIN temp.{quote_identifier(cte, allowed_ctes)} AS {alias} ON {alias}.target_id = t.target_id"
             for cte, alias in aliases.items()]
    joins += [f"LEFT JOIN temp.{quote_identifier(edge_staged[fam][0], _EDGE_QUERIES)} AS {alias} "
              f"ON {alias}.target_id = t.target_id" for fam, alias in edge_alias.items()]
    cols = ", ".join(quote_identifier(n, plan._allowed) for n in plan.column_names)
    return (f"INSERT OR REPLACE INTO {TABLE} ({cols})\nSELECT " + ",\n    ".join(select)
            + "\nFROM temp.refresh_target AS t\n"
            + f"LEFT JOIN main.{TABLE} AS o ON o.shop_id = :shop_id AND o.customer_id = t.customer_id\n"
            + "\n".join(joins) + "\nORDER BY t.target_id")


def _definitions_changed(run, plan):
    """Why the snapshot's family definitions differ from the plan's (a sentence), or None:
    a family whose SQL hash changed, a family added or removed (materializations.families)."""
    recorded = run.get("families")
    if recorded is None:
        return "the snapshot records no family definitions"
    current = plan.family_hashes()
    parts = []
    changed = sorted(n for n in current if n in recorded and recorded[n] != current[n])
    added = sorted(n for n in current if n not in recorded)
    removed = sorted(n for n in recorded if n not in current)
    for label, names in (("changed", changed), ("added", added), ("removed", removed)):
        if names:
            parts.append(f"{label}: {', '.join(names)}")
    return ("family definitions differ from the snapshot's (" + "; ".join(parts) + ")") if parts else None


def refresh(conn, shop_id, as_of_us, reg=None):
    """Bring the shop's last snapshot forward (or back) to ``as_of_us``, recomputing only
    customers whose values can have changed; a full materialize when there is no usable
    snapshot (none yet, other columns, a family without declared window edges).

    A customer is recomputed family by family: every family when it is logged in
    changed_customers or has an event at as_of itself (between the old and the new
    as_of); a family when one of its events crosses one of that family's window edges
    (``_family_edges``). Its other columns are kept from its old row. Then every row
    gets the new as_of and recency (``refresh_recency``) and the families with a
    ``refresh_all`` bring their columns of every row forward."""
    run = last_run(conn, shop_id)
    windows = run["windows"] if run else DEFAULT_WINDOWS
    families = _run_families(run, reg) if run else None
    plan = Plan(conn, windows, families, reg)
    reason = _definitions_changed(run, plan) if run is not None else None
    if reason is not None:
        result = materialize(conn, shop_id, as_of_us, windows, families, reg=reg)
        result["recomputed_from_scratch"] = reason
        return result
    if (run is None or run["columns"] != plan.column_names
            or table_columns(conn, TABLE) != plan.column_names
            or (plan.everyone_on_as_of_change and run["as_of_us"] != as_of_us)
            or not _has_change_triggers(conn, plan.tables)):
        return materialize(conn, shop_id, as_of_us, windows, families, reg=reg)
    # refresh_recency sets these columns from those inputs: all or none of them must be columns
    recency = _RECENCY_OUTPUTS & set(plan.column_names)
    if recency and not (_RECENCY_OUTPUTS | _RECENCY_INPUTS) <= set(plan.column_names):
        return materialize(conn, shop_id, as_of_us, windows, families, reg=reg)
    started = timeutil.iso(timeutil.now_us())
    lo, hi = sorted((run["as_of_us"], as_of_us))
    fams = [f for f in plan.families if f.refresh_all is None]
    # (full bit, edge bit) of each family: the edge bit marks customers whose only change
    # is an edge crossing, for the family's edge query; the full bit when it has none
    bits = {f.query: (1 << (2 * i), 1 << (2 * i + (1 if f.edge_query else 0))) for i, f in enumerate(fams)}
    edge_rows = sorted({(bits[f.query][1], t, e) for f in fams for t, e in _family_edges(f, plan.windows, reg)
                        if t in plan.tables})
    allowed_tables = set(plan.tables)
    params = plan.params(shop_id, as_of_us)
    params.update({f"bit_{b}": b for pair in bits.values() for b in pair})
    with _refresh_temp_dropped_on_error(conn), atomic(conn):
        catalog.sync_catalog(conn, reg)
        _drop_refresh_temp(conn)
        conn.execute("CREATE TEMP TABLE refresh_hits (customer_id TEXT NOT NULL, events_table TEXT NOT NULL, "
                     "edge_days INTEGER NOT NULL)")
        conn.execute("CREATE TEMP TABLE refresh_family_edges (events_table TEXT NOT NULL, edge_days INTEGER NOT NULL, "
                     "bit INTEGER NOT NULL, PRIMARY KEY (events_table, edge_days, bit))")
        conn.executemany("INSERT INTO temp.refresh_family_edges (bit, events_table, edge_days) VALUES (?, ?, ?)",
                         edge_rows)
        for t in plan.tables:
            edges = sorted({e for _, t2, e in edge_rows if t2 == t})
            conn.execute("INSERT INTO temp.refresh_hits (customer_id, events_table, edge_days)\n"
                         + _refresh_hits_sql(t, allowed_tables),
                         {"shop_id": shop_id, "lo_us": lo, "hi_us": hi, "edges_days": json.dumps(edges),
                          "events_table": t})
        conn.execute("CREATE TEMP TABLE refresh_target (target_id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL, "
                     "as_of_us INTEGER NOT NULL, mask INTEGER NOT NULL)")
        conn.execute("INSERT INTO temp.refresh_target (target_id, customer_id, as_of_us, mask) "
                     + query("refresh_targets"),
                     {"shop_id": shop_id, "as_of_us": as_of_us,
                      "bits": json.dumps(sorted(pair[0] for pair in bits.values()))})
        staged, edge_staged = {}, {}
        with automatic_indexes(conn):
            try:
                for fam in fams:
                    full, edge = bits[fam.query]
                    subsets = [(full, 0)] + ([(edge, full)] if edge != full else [])
                    for bit, unless in subsets:  # targets with bit and without unless
                        if conn.execute("SELECT 1 FROM temp.refresh_target WHERE mask & ? AND NOT mask & ? "
                                        "LIMIT 1", [bit, unless]).fetchone() is None:
                            continue
                        fill_targets(conn, "SELECT target_id, customer_id, as_of_us FROM temp.refresh_target "
                                            "WHERE mask & :bit AND NOT mask & :unless ORDER BY target_id",
                                      {"bit": bit, "unless": unless})
                        if bit == full:
                            sub = Plan(conn, plan.windows, {fam.query}, reg)
                            staged[fam.query] = (sub, sub.stage(conn, params))
                        else:
                            edge_staged[fam.query] = (fam.edge_query, _stage_edge_query(conn, fam, params))
                conn.execute(_refresh_write_sql(plan, bits, staged, edge_staged), params)
            finally:
                for sub, names in staged.values():
                    sub.unstage(conn, names)
                for table, _ in edge_staged.values():
                    conn.execute(f"DROP TABLE IF EXISTS temp.{quote_identifier(table, _EDGE_QUERIES)}")
            if recency:
                conn.execute(query("refresh_recency"), {k: params[k] for k in ("as_of", "as_of_us", "shop_id")})
            else:
                conn.execute(query("refresh_as_of"), {k: params[k] for k in ("as_of", "as_of_us", "shop_id")})
            for fam in plan.families:  # families whose values depend on other customers (catalog.Family)
                if fam.refresh_all is not None:
                    REFRESH_HOOKS[fam.refresh_all](conn, shop_id, as_of_us)
        recomputed = conn.execute("SELECT COUNT(*) FROM temp.refresh_target").fetchone()[0]
        _drop_refresh_temp(conn)
        result = _finish(conn, shop_id, "refresh", plan, as_of_us, started, recomputed, families is None)
    return result


# -- export -----------------------------------------------------------------------
def _json_value(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _end_export(conn, plan, staged, began):
    if staged:
        plan.unstage(conn, staged)
    conn.execute(f"DROP TABLE IF EXISTS {_TARGETS}")
    if began and conn.in_transaction:
        commit(conn)  # only temp tables were written


def export(conn, shop_id, path, *, format="csv", as_of_us=None, windows=None, reg=None):
    """Stream the shop's feature rows to ``path`` (csv or ndjson); returns a summary dict.

    Reads the materialized table when its last snapshot is at ``as_of_us`` (or
    ``as_of_us`` is None and a snapshot exists); otherwise computes the same
    rows on the fly at ``as_of_us`` (None = now). Memory does not grow with
    the number of rows: rows go from the cursor to the file one at a time.
    """
    if format not in EXPORT_FORMATS:
        raise UnknownNameError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    check_output_file(conn, path)  # never the database (or its -wal/-shm/-journal) itself
    run = last_run(conn, shop_id)
    windows = check_windows(windows if windows is not None else (run["windows"] if run else None))
    plan = Plan(conn, windows, _run_families(run, reg) if run else None, reg)
    use_table = (run is not None and run["columns"] == plan.column_names
                 and table_columns(conn, TABLE) == plan.column_names
                 and (as_of_us is None or as_of_us == run["as_of_us"]))
    staged = None
    began = False
    if use_table:
        as_of_us = run["as_of_us"]
        cols = ", ".join(quote_identifier(c, set(plan.column_names)) for c in plan.column_names)
        cursor = conn.execute(f"SELECT {cols} FROM {TABLE} WHERE shop_id = ? ORDER BY customer_id", [shop_id])
    else:
        if as_of_us is None:
            as_of_us = timeutil.now_us()
        if not conn.in_transaction:  # one read snapshot for every statement below
            begin_read(conn)
            began = True
        try:
            fill_targets(conn, query("fill_targets_all_customers"), all_customers_params(shop_id, as_of_us))
            params = plan.params(shop_id, as_of_us)
            with automatic_indexes(conn):
                staged = plan.stage(conn, params)
            cursor = conn.execute(plan.staged_select_sql(), params)
        except BaseException:
            _end_export(conn, plan, staged, began)
            raise
    names = plan.column_names
    count = 0
    try:
        with open(path, "w", newline="", encoding="utf-8") as out:
            if format == "csv":
                writer = csv.writer(out)
                writer.writerow(names)
                for row in cursor:
                    writer.writerow(row)
                    count += 1
            else:
                for row in cursor:
                    out.write(json.dumps(dict(zip(names, map(_json_value, row))), ensure_ascii=False))
                    out.write("\n")
                    count += 1
    finally:
        cursor.close()
        if not use_table:
            _end_export(conn, plan, staged, began)
    return {"path": str(path), "format": format, "rows": count, "as_of": timeutil.iso(as_of_us),
            "source": "materialized" if use_table else "computed", "columns": len(names)}
