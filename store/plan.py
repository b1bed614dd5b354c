"""What a materialisation computes and the statements that compute it.

``Plan`` is the one place statements are composed from the family files: for a set of
windows and families (the allowlists ``check_windows`` and ``check_families``), the
columns of ``customer_features`` and the statements that stage each family into a table
of its own (``Plan.stage_statements``: each a query of ``sql/`` or of a user's family file
as written, composed only with the target relation, the CTEs of its ``-- requires:`` line
and the staged tables, its parameters bound; a windowed family once over all time and once
per window), then the one ``SELECT`` joining them. ``materialize``, ``refresh``,
``export``, ``features_at`` and the partition workers all run a ``Plan``;
``caf catalog NAME --sql`` prints its statements (``family_statements``).

The targets of a run are the temp table ``target(target_id, customer_id, as_of_us)``
(``fill_targets``). Column names come only from the registry and the window allowlist,
through ``store.db.quote_identifier``; values are bound.
"""

import dataclasses
import numbers
import sqlite3
import re
import typing

from . import behavior, catalog, registry, timeutil
from .db import authorized_actions, automatic_indexes, quote_identifier
from .errors import StoreError, UnknownNameError
from .features import parameters, runnable, target_relation, window_parameters
from .resources import query
from .runs import AS_OF_TABLE, NEW_TABLE, RELATIONS, STORED_TABLE, TABLE, last_run
from .runs import table_exists as _table_exists

DEFAULT_WINDOWS = (7, 30, 90, 365)


MAX_WINDOW_DAYS = 36_500


ALL_TIME_FREQUENCY_DAYS = 30


# The targets of a run: a temp table named ``target``, read directly by the family
# queries (FROM target AS t), so every join on t.target_id is a rowid lookup.
TARGETS = "temp.target"


@dataclasses.dataclass(frozen=True)
class RefreshHook:
    """A named refresh hook: ``refresh(conn, shop_id, as_of_us, previous_us)`` brings the family's
    columns of every row of the shop from the last run's as_of (previous_us) to a new one (values
    relative to the whole shop, see catalog.Family.refresh_all); ``prepare(conn)`` makes what it
    reads of the stored rows (their indexes) once materialize has swapped a snapshot in."""

    refresh: typing.Callable
    prepare: typing.Callable


# The named refresh hooks a family's ``-- refresh all: HOOK`` line may name (the allowlist).
REFRESH_HOOKS = {"refresh_segments": RefreshHook(behavior.refresh_segments, behavior.index_stored)}


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


def run_families(run, reg=None):
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
    plan = Plan(conn, run["windows"] if run else DEFAULT_WINDOWS, run_families(run, reg) if run else None, reg)
    fam = next((f for f in plan.families if f.query == name), None)
    if fam is None:
        raise UnknownNameError(f"feature family {name!r} is not in the shop's materialisation")
    own = {name, *fam.keyed} | {window_table(name, w) for w in plan.windows}
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
                self.columns.append((f"{f.name}_{w}d", catalog.SQL_TYPES[f.type], window_table(f.query, w), f.name))
        self.column_names = [name for name, _ in catalog.KEY_COLUMNS] + [c[0] for c in self.columns]
        names = [c[0] for c in self.columns]
        if len(set(names)) != len(names):
            raise StoreError("two materialized columns have the same name")
        # The columns the families declare derived (catalog.derived_columns): not stored, computed
        # by the view customer_features from as_of_us and their family's stored columns.
        declared = catalog.derived_columns(self.reg)
        self.derived = {c: declared[c] for c in self.feature_names if c in declared}
        self.stored_names = [name for name, _ in catalog.KEY_COLUMNS if name not in ("as_of", "as_of_us")] + [
            c for c in self.feature_names if c not in self.derived]
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
        """CREATE TABLE of the stored rows (``stored_names``: the keys shop_id and customer_id and
        every feature column that is not derived, with their declared types)."""
        cols = [f"{quote_identifier(name, self.allowed_columns)} {decl}" for name, decl in catalog.KEY_COLUMNS
                if name in self.stored_names]
        stored = set(self.stored_names)
        cols += [d for d, (name, *_) in zip(self.feature_column_defs(), self.columns) if name in stored]
        return (f"CREATE TABLE {check_schema(schema)}.{quote_identifier(table, (STORED_TABLE, NEW_TABLE))} (\n    "
                + ",\n    ".join(cols) + ",\n    PRIMARY KEY (shop_id, customer_id)\n)")

    def prepare_stored(self, conn):
        """What the plan's refresh hooks read of the stored rows (``RefreshHook.prepare``): run
        once the rows are swapped in as ``STORED_TABLE``."""
        for fam in self.families:
            if fam.refresh_all is not None:
                REFRESH_HOOKS[fam.refresh_all].prepare(conn)

    def view_sql(self, view=TABLE, stored=STORED_TABLE, as_of_table=AS_OF_TABLE):
        """CREATE VIEW ``view``: every column of the plan (``column_names``, in order) over the
        stored rows ``stored`` and the shops' as_of rows ``as_of_table`` (``view_sql``)."""
        return view_sql(self.reg, view, stored, as_of_table, self.column_names, self.stored_names)

    @property
    def stored_positions(self):
        """The positions of the stored columns (``stored_names``) in a row of every column
        (``column_names``): what an inserter of whole rows keeps (operator.itemgetter)."""
        return [self.column_names.index(c) for c in self.stored_names]

    @property
    def feature_names(self):
        """The feature columns (every column but the keys of catalog.KEY_COLUMNS), in table order."""
        return [c[0] for c in self.columns]

    def feature_column_defs(self):
        """``"name" TYPE`` of every feature column, in table order (the declared types of
        customer_features, so a table declared with them converts values as it does)."""
        return [f"{quote_identifier(name, self.allowed_columns)} {sqltype}" for name, sqltype, _, _ in self.columns]

    @property
    def allowed_columns(self):
        """The allowlist of column names for quote_identifier: every column of the table."""
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
        staged = []
        try:
            for st in self.stage_statements(one_as_of, schema):
                staged.append(st.table)
                self.stage_statement(conn, st, params, schema)
        except BaseException:
            self.unstage(conn, staged, schema)
            raise
        return staged

    def stage_statement(self, conn, statement, params, schema="temp"):
        """Run one statement of ``stage_statements`` (for the targets of ``schema.target``) into
        its table ``schema.<statement.table>``; returns the table's columns but target_id."""
        schema = check_schema(schema)
        table = f"{schema}." + quote_identifier(statement.table, self.staged_tables)
        return stage_keyed(conn, table, statement.sql, {**params, **statement.parameters}, statement.table)

    @property
    def staged_tables(self):
        """The names of the tables ``stage`` may create (the allowlist of their identifiers)."""
        return {cte for _, _, cte, _ in self.columns} | {f.query for f in self.families} | {
            k for f in self.families for k in f.keyed}

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
        first = [target_relation(f"{check_schema(schema)}.target", True)] if one_as_of else []
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
            if name not in windowed:
                statements.append(Statement(name, stage_sql(self.reg, name, helpers, first,
                                                                self._own_columns(name)), {}))
                continue
            statements.append(Statement(name, stage_sql(self.reg, name, helpers, first),
                                        window_parameters(None, ALL_TIME_FREQUENCY_DAYS)))
            cols = ", ".join(quote_identifier(c, set(windowed[name])) for c in windowed[name])
            for w in self.windows:
                statements.append(Statement(window_table(name, w),
                                            stage_sql(self.reg, name, helpers, first, "target_id, " + cols),
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
        schema = check_schema(schema)
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

    def _staged_select(self, keys, schema, stored_only=False):
        schema = check_schema(schema)
        columns = [c for c in self.columns if not (stored_only and c[0] in self.derived)]
        aliases = {}
        for _, _, cte, _ in columns:
            aliases.setdefault(cte, f"f{len(aliases)}")
        allowed_ctes = set(aliases)
        allowed_cols = {c[3] for c in columns}
        select = list(keys)
        for name, _, cte, col in columns:
            select.append(f"{aliases[cte]}.{quote_identifier(col, allowed_cols)}")
        joins = [f"LEFT JOIN {schema}.{quote_identifier(cte, allowed_ctes)} AS {alias} "
                 f"ON {alias}.target_id = t.target_id" for cte, alias in aliases.items()]
        return ("SELECT " + ",\n    ".join(select) + f"\nFROM {schema}.target AS t\n" + "\n".join(joins)
                + "\nORDER BY t.target_id")

    def staged_insert_sql(self, table, schema="temp", into="main"):
        """INSERT into the stored table ``into.table`` of the stored columns (``stored_names``)
        of the staged rows (``staged_select_sql(schema)`` without as_of and the derived columns)."""
        cols = ", ".join(quote_identifier(n, self.allowed_columns) for n in self.stored_names)
        return (f"INSERT INTO {check_schema(into)}.{quote_identifier(table, (STORED_TABLE, NEW_TABLE))} ({cols})\n"
                + self._staged_select(["CAST(:shop_id AS TEXT)", "t.customer_id"], schema, stored_only=True))

    def insert_values_sql(self, table, into="main"):
        """INSERT of one stored row (``stored_names``, the table's order) into the stored table
        ``into.table``, its values bound as ``?`` (the rows another engine computed:
        store.engines, store.parquet; ``stored_positions`` picks them from a row of every column)."""
        cols = ", ".join(quote_identifier(n, self.allowed_columns) for n in self.stored_names)
        marks = ", ".join("?" for _ in self.stored_names)
        return (f"INSERT INTO {check_schema(into)}.{quote_identifier(table, (STORED_TABLE, NEW_TABLE))} ({cols}) "
                f"VALUES ({marks})")

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


def view_sql(reg, view, stored, as_of_table, columns, stored_columns):
    """CREATE VIEW ``view`` (customer_features, or the previous snapshot's) with the columns
    ``columns`` in order, over the stored rows ``stored`` (columns ``stored_columns``) joined to
    the shop's as_of row of ``as_of_table``: shop_id, customer_id, as_of, as_of_us and every
    stored column as they are; a derived column (catalog.derived_columns) as its declared
    expression, as written, evaluated over that row (its names resolve to the one column of that
    name of the join: as_of_us of the as_of row, the others stored); a column with neither (a declaration
    that changed since the stored rows were written) NULL. The one place the view is composed."""
    declared = catalog.derived_columns(reg)
    stored_set = set(stored_columns)
    allowed = set(columns) | stored_set
    select = []
    for name in columns:
        quoted = quote_identifier(name, allowed)
        if name in ("shop_id", "customer_id"):
            select.append(f"s.{quoted} AS {quoted}")
        elif name in ("as_of", "as_of_us"):
            select.append(f"a.{quoted} AS {quoted}")
        elif name in stored_set:
            select.append(f"s.{quoted} AS {quoted}")
        elif name in declared and declared[name].inputs - {"as_of_us"} <= stored_set:
            select.append(f"({declared[name].expr}) AS {quoted}")
        else:
            select.append(f"NULL AS {quoted}")
    return (f"CREATE VIEW main.{quote_identifier(view, RELATIONS)} AS SELECT\n    " + ",\n    ".join(select)
            + f"\nFROM main.{quote_identifier(stored, RELATIONS)} AS s\n"
            f"JOIN main.{quote_identifier(as_of_table, RELATIONS)} AS a ON a.shop_id = s.shop_id")


def stage_sql(reg, name, helpers, first=(), columns="*", substitute=None):
    """The SELECT that stages the query ``name`` of the registry ``reg``, as written: ``WITH``
    the relations ``first`` (the target relation, or none), then the queries ``helpers`` (names
    of ``reg``) as MATERIALIZED CTEs named after them, then ``SELECT columns FROM (<the
    query>)``, each query as the store runs it (``features.runnable``: with its derived
    columns). ``columns``: ``*`` or identifiers this module quoted. ``substitute``: {helper:
    another query of ``reg``} whose text is the CTE's body in its place (the same columns, read
    from elsewhere). Plan.stage_statements and refresh's edge queries compose their statements
    here."""
    allowed = set(helpers)
    substitute = substitute or {}
    head = ",\n".join(list(first) + [f"{quote_identifier(h, allowed)} AS MATERIALIZED (\n"
                                      f"{runnable(reg, substitute.get(h, h))}\n)" for h in helpers])
    head = f"WITH {head}\n" if head else ""
    return f"{head}SELECT {columns} FROM (\n{runnable(reg, name)}\n)"


class Statement(typing.NamedTuple):
    """One statement of ``Plan.stage``: the SELECT ``sql`` filling the staged table ``table``,
    run with the plan's parameters and, over them, ``parameters`` (a windowed family's
    window values: ``features.window_parameters``; empty for the others)."""

    table: str
    sql: str
    parameters: dict


_SCHEMAS = re.compile(r"main|temp|part[0-9]{1,3}|scratch")


def check_schema(name):
    """A schema name from the allowlist: main, temp, scratch (a worker's file; the rows another
    engine computed, attached), partN (a worker's file, attached)."""
    if not _SCHEMAS.fullmatch(name):
        raise ValueError(f"not a staging schema: {name!r}")
    return name


def attach(conn, cleanup, path, schema):
    """ATTACH the database file ``path`` as ``schema`` (``check_schema``) and return the name;
    ``cleanup`` (an ExitStack closed after the COMMIT or ROLLBACK: DETACH is refused inside
    a transaction) detaches it."""
    schema = check_schema(schema)
    conn.execute(f"ATTACH DATABASE ? AS {schema}", [str(path)])
    cleanup.callback(_detach, conn, schema)
    return schema


def _detach(conn, schema):
    if not conn.in_transaction:
        conn.execute(f"DETACH DATABASE {check_schema(schema)}")


def stage_keyed(conn, table, body, params, name):
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


def window_table(family, w):
    """The staged table of a windowed family's run for the window of ``w`` days."""
    return f"{family}_{w}d"


def all_customers_params(shop_id, as_of_us, lo="", hi=None):
    """Parameters of fill_targets_all_customers: the customers with lo <= id < hi (default: all;
    ``hi`` None is the open upper bound)."""
    return {"shop_id": shop_id, "as_of_us": as_of_us, "lo": lo, "hi": hi}


def fill_targets(conn, sql, params):
    """(Re)create the targets table ``temp.target(target_id, customer_id, as_of_us)`` that the
    family queries read, filled by ``sql`` (an INSERT's SELECT from sql/, bound ``params``),
    and index it by customer; ``drop_targets`` removes it."""
    conn.execute(f"DROP TABLE IF EXISTS {TARGETS}")
    conn.execute("CREATE TEMP TABLE target (target_id INTEGER PRIMARY KEY, "
                 "customer_id TEXT NOT NULL, as_of_us INTEGER NOT NULL)")
    conn.execute(f"INSERT INTO {TARGETS} (target_id, customer_id, as_of_us) " + sql, params)
    # Lets the planner look a target up by customer when a family query starts from an
    # event table (otherwise it may scan every target per event).
    conn.execute("CREATE INDEX temp.target_customer ON target (customer_id)")


def drop_targets(conn):
    conn.execute(f"DROP TABLE IF EXISTS {TARGETS}")


# -- the tables a materialisation reads ----------------------------------------------------------
def tables_read(conn, sql, params):
    """{(schema, table)} that ``sql`` reads, as SQLite's authorizer reports them when the
    statement is prepared (``store.db.authorized_actions``: nothing is run)."""
    return {(db, table) for action, table, _column, db in authorized_actions(conn, sql, params)
            if action == sqlite3.SQLITE_READ and table is not None and db is not None}


def input_tables(conn, plan):
    """The tables of ``main`` a materialisation of ``plan`` reads, sorted: its families' ``tables``
    lines and the tables the targets query (``fill_targets_all_customers``) reads, as SQLite's
    authorizer sees them. What another engine is given (store.engines, store.parquet)."""
    targets = tables_read(conn, query("fill_targets_all_customers"), all_customers_params("", 0))
    return sorted(set(plan.tables) | {t for db, t in targets if db == "main"})
