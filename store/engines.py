"""The family SQL on other engines: DuckDB now, Apache Spark through the same statements.

The statements are those the store composes for a materialisation (``store.plan``: the
targets query ``fill_targets_all_customers``, the view ``purchase_local_time``, every
``Plan.stage_statements`` statement, then ``Plan.staged_select_sql``), written in the
SQLite dialect. ``statements_for`` turns them into another dialect, on sqlglot's parsed
tree only (no SQL text is rewritten):

* the parameters are bound on the tree (a value becomes a literal; a REAL is
  ``CAST(<literal> AS DOUBLE)``, an integer a BIGINT literal; text a string literal);
* ``temp.`` / ``main.`` prefixes and ``AS [NOT] MATERIALIZED`` are dropped;
* ``TOTAL(x)`` becomes ``COALESCE(SUM(CAST(x AS DOUBLE)), 0.0)`` (a ``FILTER`` kept on the SUM);
* fractional literals (``1.0``: DECIMAL elsewhere) are DOUBLE; ``CAST(.. AS INTEGER)`` is BIGINT;
* SQLite's scalar ``MAX(a, b)`` / ``MIN(a, b)`` (NULL when an argument is NULL) become
  ``GREATEST`` / ``LEAST`` guarded by a NULL test (they skip NULLs elsewhere);
* ``strftime(fmt, x, 'unixepoch')`` becomes the engine's formatting of the UTC timestamp;
* the division of two integers (typed from the table schemas with sqlglot's type
  annotation, through every CTE and subquery) is the engine's integer division
  (``//`` in DuckDB, ``DIV`` in Spark); every division's divisor is ``NULLIF(d, 0)``
  (SQLite gives NULL for a division by zero);
* a comparison used as a number (``SUM(x = 'a')``) is cast to BIGINT, a number used as a
  condition is compared with 0; a selected boolean is a BIGINT (SQLite's 0/1).

``statements_for`` raises ``EngineError`` on any construct it cannot translate exactly (a
division whose operand types it cannot infer, an unknown SQLite function); tests/test_engines.py
(the lint) runs it over every built-in family and the documented user family, for each dialect.

For Spark (the caller runs the statements; ``statements_for("spark", ...)``): each relation a
temporary view of its statement's result (checkpointed between families), the session in UTC
with ANSI mode off, the statements in order; the final SELECT's rows are those of
customer_features in customer id order.

Each statement creates one relation (``EngineStatement.relation``); the last is the
final SELECT (relation None). ``run_duckdb`` runs them in DuckDB over the shop's events,
moved from the store in Arrow record batches (``copy_to_duckdb``: read by SQLite itself
through the ADBC SQLite driver from the store's file), and streams the result back
(``write_duckdb``: Arrow batches into a SQLite file of the run's scratch directory, which the
store's connection attaches and copies from). duckdb, sqlglot, pyarrow and the ADBC SQLite
driver are the optional extra ``[duckdb]``, imported here only, inside the functions that
need them.
"""

import contextlib
import functools
import itertools
import math
import os
import sqlite3
import typing

from . import plan as _plan
from . import scratch
from .db import BUSY_TIMEOUT_MS, database_file, file_uri, quote_identifier
from .errors import EngineError, require_extra
from .parallel import partition_bounds
from .plan import attach
from .resources import query

DIALECTS = ("duckdb", "spark")

# The relations besides the event tables that the family statements read.
TARGET = "target"
LOCAL_TIME_VIEW = "purchase_local_time"
TZ_TABLES = {
    "caf_tz": (("name", "TEXT"), ("fixed_offset_us", "BIGINT")),
    "caf_tz_offsets": (("start_us", "BIGINT"), ("offset_us", "BIGINT")),
}
# SQLite declared types -> engine-neutral types (of the store's tables: migrations/).
_DECLARED = {"INTEGER": "BIGINT", "INT": "BIGINT", "REAL": "DOUBLE", "TEXT": "TEXT", "BLOB": "BLOB",
             "BOOLEAN": "BIGINT", "NUMERIC": "DOUBLE", "": "TEXT"}


class EngineStatement(typing.NamedTuple):
    """One transpiled statement: ``sql`` (in the engine's dialect) computes the relation
    ``relation`` (a view for ``purchase_local_time``, a table otherwise; None: the final SELECT)."""

    relation: typing.Optional[str]
    sql: str
    view: bool = False


def require(extra, *modules):
    """Import the optional modules of an extra (``store.errors.require_extra``: a
    ``MissingExtraError`` naming the extra when one is missing)."""
    out = require_extra(extra, modules, "another engine")
    return out[0] if len(out) == 1 else out


def check_dialect(dialect):
    if dialect not in DIALECTS:
        raise EngineError(f"unknown engine dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    return dialect


# -- schemas -----------------------------------------------------------------------------------
def table_schema(conn, table):
    """{column: engine type} of a store table (a name of the plan's allowlist), from its declaration."""
    cols = conn.execute("SELECT name, type FROM pragma_table_info(?)", [table]).fetchall()
    if not cols:
        raise EngineError(f"table {table!r} does not exist")
    return {name: _DECLARED.get((decl or "").upper().split("(")[0].strip(), "TEXT") for name, decl in cols}


def input_schemas(conn, plan):
    """{relation: {column: type}} of every relation the statements read before they make
    their own: the store's tables that exist, the targets and the timezone tables."""
    schemas = {}
    for t in _plan.input_tables(conn, plan):
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [t]).fetchone():
            schemas[t] = table_schema(conn, t)
    for name, cols in TZ_TABLES.items():
        schemas[name] = dict(cols)
    return schemas


# -- the statements ------------------------------------------------------------------------
def targets_sql():
    """The targets query the engines run: fill_targets_all_customers, as SQLite runs it."""
    return query("fill_targets_all_customers")


def statements_for(dialect, plan, params, schemas, *, lo=None, hi=None):
    """[EngineStatement] in order: ``target`` (the targets, every customer of the shop with
    lo <= id < hi, None: unbounded), the view ``purchase_local_time`` (when a statement reads
    it), every family statement of ``plan`` (``Plan.stage_statements``, each into the
    relation of its name), then the final SELECT of every column of customer_features
    (``Plan.staged_select_sql``), in customer id order.

    ``params``: the plan's parameters (``Plan.params``; every target has the one as_of
    ``params['as_of_us']``); ``schemas``: ``input_schemas``. The statements of a user's
    registered family (``plan.reg``) are made the same way."""
    check_dialect(dialect)
    schemas = {k: dict(v) for k, v in schemas.items()}
    out = []
    targets = {**params, **_plan.all_customers_params(params["shop_id"], params["as_of_us"], lo or "", hi)}
    out.append(_statement(dialect, TARGET, targets_sql(), targets, schemas))
    body = [(st.table, st.sql, {**params, **st.parameters}) for st in plan.stage_statements(one_as_of=False)]
    if any(LOCAL_TIME_VIEW in sql for _, sql, _ in body):  # the name is an identifier of the statements
        out.append(_statement(dialect, LOCAL_TIME_VIEW, query(LOCAL_TIME_VIEW), params, schemas, view=True))
    for table, sql, values in body:
        out.append(_statement(dialect, table, sql, values, schemas))
    out.append(_statement(dialect, None, plan.staged_select_sql(), params, schemas))
    return out


def _statement(dialect, relation, sql, values, schemas, view=False):
    frozen = tuple(sorted((k, tuple(v.items())) for k, v in schemas.items()))
    text, out = _translated(dialect, sql, tuple(sorted(values.items())), frozen)
    if relation is not None:
        schemas[relation] = dict(out)
    return EngineStatement(relation, text, view)


@functools.lru_cache(maxsize=512)
def _translated(dialect, sql, values, schemas):
    """(SQL text in ``dialect``, output schema) of a statement: cached, as the same statements
    with the same values and schemas translate the same (tests, verify then materialize)."""
    tree, out = _translated_tree(sql, values, schemas)
    return render(tree.copy(), dialect), out


@functools.lru_cache(maxsize=256)
def _translated_tree(sql, values, schemas):
    """The translated tree (the same for every dialect; callers render a copy) and its output schema."""
    tree = translate(sql, dict(values), {k: dict(v) for k, v in schemas})
    return tree, tuple(output_schema(tree).items())


# strftime fields in Spark (``date_format`` patterns; %w is dayofweek - 1)
_SPARK_PATTERNS = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss", "%j": "DDD"}


def render(tree, dialect):
    """The translated tree as SQL text of ``dialect`` (the engine-specific spellings last)."""
    from sqlglot import exp

    def spell(node):
        if isinstance(node, exp.Anonymous) and node.name == "CAF_STRFTIME_UTC":
            fmt, seconds = node.expressions
            seconds = exp.cast(seconds.copy(), _t("BIGINT"))
            if dialect == "duckdb":
                ts = exp.Anonymous(this="make_timestamp", expressions=[
                    exp.Mul(this=seconds, expression=exp.Literal.number(1_000_000))])
                return exp.Anonymous(this="strftime", expressions=[ts, fmt.copy()])
            ts = exp.Anonymous(this="timestamp_seconds", expressions=[seconds])
            if fmt.this == "%w":
                return exp.cast(exp.Sub(this=exp.Anonymous(this="dayofweek", expressions=[ts]),
                                        expression=exp.Literal.number(1)), _t("STRING"))
            return exp.Anonymous(this="date_format", expressions=[ts, exp.Literal.string(_SPARK_PATTERNS[fmt.this])])
        return node
    return tree.transform(spell, copy=False).sql(dialect=dialect)


def output_schema(tree):
    """{column: type} of a translated statement's result (its annotated select list)."""
    out = {}
    for s in tree.selects:
        t = s.type
        out[s.alias_or_name] = "TEXT" if t is None or t.this.name in ("UNKNOWN", "NULL") else t.sql()
    return out


# -- the translation (on sqlglot's tree) -----------------------------------------------------
def translate(sql, values, schemas):
    """The SQLite statement ``sql`` with ``values`` bound, as a sqlglot tree that means the
    same in every dialect of DIALECTS (see the module docstring); raises EngineError on a
    construct it cannot translate exactly."""
    sqlglot = require("duckdb", "sqlglot")
    from sqlglot import exp
    from sqlglot.optimizer.annotate_types import annotate_types
    from sqlglot.optimizer.qualify import qualify

    _types()
    tree = _parse(sql).copy()
    tree = _bind(tree, values)
    for t in tree.find_all(exp.Table):  # temp. / main. prefixes
        t.set("db", None)
        t.set("catalog", None)
    for cte in tree.find_all(exp.CTE):
        cte.set("materialized", None)
    tree = tree.transform(_rewrite_functions, copy=False)
    _inline_windows(tree)
    schema = {k: dict(v) for k, v in schemas.items()}
    _fix_booleans(tree)
    try:
        tree = qualify(tree, schema=schema, dialect="sqlite", validate_qualify_columns=False,
                       quote_identifiers=False, identify=False)
        tree = annotate_types(tree, schema=schema, dialect="sqlite")
    except sqlglot.errors.SqlglotError as exc:
        raise EngineError(f"cannot type a statement: {exc}") from exc
    _fix_divisions(tree)
    return tree


@functools.lru_cache(maxsize=256)
def _parse(sql):
    """sqlglot's tree of a SQLite statement (cached: a windowed family's statements share their
    text; callers copy it)."""
    sqlglot = require("duckdb", "sqlglot")
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.ParseError as exc:
        raise EngineError(f"cannot parse a statement: {exc}") from exc
    for node in tree.walk():  # the family files' comments stay in sql/ (shorter statements)
        node.comments = None
    return tree


_TYPE = {}


def _types():
    """The DataType nodes the translation casts to (built once, not parsed from text per cast)."""
    if not _TYPE:
        from sqlglot import exp

        _TYPE.update(DOUBLE=exp.DataType(this=exp.DataType.Type.DOUBLE),
                     BIGINT=exp.DataType(this=exp.DataType.Type.BIGINT),
                     STRING=exp.DataType(this=exp.DataType.Type.TEXT))


def _t(name):
    """A new DataType node (DOUBLE, BIGINT, STRING)."""
    return _TYPE[name].copy()


def _bind(tree, values):
    from sqlglot import exp

    def bind(node):
        if isinstance(node, exp.Placeholder):
            if node.name not in values:
                raise EngineError(f"no value for the parameter :{node.name}")
            return literal(values[node.name])
        return node
    return tree.transform(bind, copy=False)


def literal(value):
    """A bound value as a sqlglot literal: NULL, BIGINT, DOUBLE (a CAST) or text."""
    from sqlglot import exp

    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Literal.number(int(value))
    if isinstance(value, int):
        return exp.cast(exp.Literal.number(value), _t("BIGINT"))
    if isinstance(value, float):
        return exp.cast(exp.Literal.number(repr(value)), _t("DOUBLE"))
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise EngineError(f"cannot bind a value of type {type(value).__name__}")


def _rewrite_functions(node):
    from sqlglot import exp

    if isinstance(node, exp.Anonymous):
        name = node.name.upper()
        if name == "TOTAL":
            if len(node.expressions) != 1:
                raise EngineError("TOTAL takes one argument")
            return _total(node.expressions[0])
        if name == "STRFTIME":
            return _strftime(node)
        raise EngineError(f"the SQLite function {node.name}() has no translation")
    if isinstance(node, exp.Filter) and isinstance(node.this, exp.Anonymous) and node.this.name.upper() == "TOTAL":
        inner = exp.Sum(this=exp.cast(node.this.expressions[0].copy(), _t("DOUBLE")))
        return exp.Coalesce(this=exp.Filter(this=inner, expression=node.expression.copy()),
                            expressions=[exp.cast(exp.Literal.number("0.0"), _t("DOUBLE"))])
    if isinstance(node, (exp.Greatest, exp.Least)):
        args = [node.this] + list(node.expressions)
        if len(args) > 1 and not node.args.get("_guarded"):
            cls = type(node)
            plain = cls(this=args[0].copy(), expressions=[a.copy() for a in args[1:]], _guarded=True)
            null = exp.or_(*[exp.Is(this=a.copy(), expression=exp.null()) for a in args])
            return exp.Case(ifs=[exp.If(this=null, true=exp.null())], default=plain)
    if isinstance(node, exp.Literal) and not node.is_string and not node.this.lstrip("-").isdigit():
        if not isinstance(node.parent, exp.Cast):
            return exp.cast(node.copy(), _t("DOUBLE"))
    if isinstance(node, exp.Cast) and node.to.this in (exp.DataType.Type.INT, exp.DataType.Type.SMALLINT,
                                                       exp.DataType.Type.TINYINT):
        node.set("to", _t("BIGINT"))
    if isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.FLOAT:
        node.set("to", _t("DOUBLE"))
    return node


def _inline_windows(tree):
    """Named windows (``WINDOW w AS (...)``, ``OVER w``, ``OVER (w ROWS ...)``) written out in
    each ``OVER``: Spark refuses a frame added to a named window."""
    from sqlglot import exp

    for select in list(tree.find_all(exp.Select)):
        named = {w.name: w for w in select.args.get("windows") or []}
        if not named:
            continue
        for win in list(select.find_all(exp.Window)):
            ref = win.args.get("alias")
            if ref is None or win.find_ancestor(exp.Select) is not select or ref.name not in named:
                continue
            spec = named[ref.name]
            for key in ("partition_by", "order"):
                if spec.args.get(key) and not win.args.get(key):
                    win.set(key, spec.args[key].copy() if isinstance(spec.args[key], exp.Expression)
                            else [e.copy() for e in spec.args[key]])
            if spec.args.get("spec") and not win.args.get("spec"):
                win.set("spec", spec.args["spec"].copy())
            win.set("alias", None)
        select.set("windows", None)


def _total(arg):
    from sqlglot import exp

    return exp.Coalesce(this=exp.Sum(this=exp.cast(arg.copy(), _t("DOUBLE"))),
                        expressions=[exp.cast(exp.Literal.number("0.0"), _t("DOUBLE"))])


# strftime formats the adapter translates (SQLite's 'unixepoch' modifier: seconds since 1970 UTC)
STRFTIME_FORMATS = {"%Y", "%m", "%d", "%H", "%M", "%S", "%w", "%j"}


def _strftime(node):
    from sqlglot import exp

    args = node.expressions
    if (len(args) != 3 or not args[0].is_string or not args[2].is_string or args[2].this != "unixepoch"
            or args[0].this not in STRFTIME_FORMATS):
        raise EngineError(f"strftime is translated only as strftime(one of {sorted(STRFTIME_FORMATS)}, "
                          f"seconds, 'unixepoch'), got {node.sql('sqlite')}")
    # The engine-neutral form: the calendar field of the UTC timestamp, as text like SQLite's.
    return exp.Anonymous(this="CAF_STRFTIME_UTC", expressions=[args[0].copy(), args[1].copy()])


def _is(node, *types):
    t = node.type
    return t is not None and t.this in types


def _nonzero(divisor):
    """``NULLIF(divisor, 0)`` (SQLite's x / 0 is NULL), unless it is one already or a non-zero literal."""
    from sqlglot import exp

    inner = divisor
    while isinstance(inner, exp.Paren):
        inner = inner.this
    if isinstance(inner, exp.Nullif) or (isinstance(inner, exp.Literal) and not inner.is_string
                                         and float(inner.this) != 0):
        return divisor
    return exp.Nullif(this=divisor, expression=exp.Literal.number(0))


def _wrap(node, make):
    """Put ``make(node)`` (a new node holding ``node`` itself, not a copy) in ``node``'s place."""
    parent, key, index = node.parent, node.arg_key, node.index
    new = make(node)
    parent.set(key, new, index=index)
    return new


def _fix_divisions(tree):
    """Each division as integer or fractional division, from its operand types (annotated)."""
    from sqlglot import exp

    T = exp.DataType.Type
    ints = set(exp.DataType.INTEGER_TYPES)
    reals = set(exp.DataType.REAL_TYPES)
    for node in list(tree.find_all(exp.Div)):
        left, right = node.this, node.expression
        if _is(left, *ints) and _is(right, *ints):
            new = _wrap(node, lambda n: exp.IntDiv(this=n.this, expression=_nonzero(n.expression)))
            new.type = _t("BIGINT")
        elif (_is(left, *ints, *reals) and _is(right, *ints, *reals)) or _is(left, T.NULL) or _is(right, T.NULL):
            new = _wrap(node, lambda n: exp.Div(this=n.this, expression=_nonzero(n.expression), typed=False,
                                                safe=False))
            new.type = _t("DOUBLE")
        else:
            raise EngineError(f"cannot type the division {node.sql('sqlite')} (operands {left.type}, "
                              f"{right.type}): make it explicit (CAST ... AS REAL or INTEGER)")


def _fix_booleans(tree):
    """SQLite has no booleans: a comparison is the integer 0/1 and any number is a condition.
    On the tree's structure: a predicate (comparison, AND/OR/NOT, IN, IS, BETWEEN, LIKE) used
    anywhere but in a condition becomes ``CAST(... AS BIGINT)``; an operand of a condition
    that is not a predicate becomes ``(x <> 0)``."""
    from sqlglot import exp

    def is_predicate(node):
        while isinstance(node, exp.Paren):
            node = node.this
        return isinstance(node, (exp.Predicate, exp.Connector, exp.Not, exp.Boolean))

    def in_condition(node):
        """Whether ``node`` (not a Paren) is in a place SQLite reads as a condition."""
        parent, key = node.parent, node.arg_key
        while isinstance(parent, exp.Paren):
            parent, key = parent.parent, parent.arg_key
        if isinstance(parent, (exp.Connector, exp.Not, exp.Where, exp.Having, exp.Qualify)):
            return True
        if isinstance(parent, exp.If) and key == "this":
            return not (isinstance(parent.parent, exp.Case) and parent.parent.args.get("this") is not None)
        if isinstance(parent, exp.Join) and key == "on":
            return True
        return False

    for node in list(tree.walk()):
        if node.parent is None or isinstance(node, (exp.Paren, exp.Null, exp.Select, exp.Subquery, exp.Union,
                                                     exp.Star)):
            continue
        if is_predicate(node):
            if not in_condition(node) and not isinstance(node, exp.Boolean):
                _wrap(node, lambda n: exp.cast(exp.Paren(this=n), _t("BIGINT"), copy=False))
        elif in_condition(node) and isinstance(node, exp.Expression) and not isinstance(
                node, (exp.Where, exp.Having, exp.Qualify, exp.Join)):
            _wrap(node, lambda n: exp.Paren(this=exp.NEQ(this=n, expression=exp.Literal.number(0))))
    return tree


# -- DuckDB ------------------------------------------------------------------------------------
DEFAULT_MEMORY_LIMIT = "1GB"   # DuckDB's memory_limit when the caller sets none (it spills beyond it)
BATCH_ROWS = 50_000            # rows per Arrow record batch moved between the store and DuckDB
_ARROW_TYPES = {"BIGINT": "int64", "DOUBLE": "float64", "TEXT": "string", "BLOB": "binary"}


def duckdb_connection(memory_limit=None, temp_directory=None, threads=None):
    """A new DuckDB connection to a new in-memory database under ``memory_limit`` (e.g.
    '1GB'; default DEFAULT_MEMORY_LIMIT), spilling to ``temp_directory`` (default: the system's
    temporary directory). Insertion order is not preserved (every result that needs an order
    has an ORDER BY), which lets DuckDB stream under the limit."""
    import tempfile

    duckdb = require("duckdb", "duckdb")
    config = {"memory_limit": memory_limit or DEFAULT_MEMORY_LIMIT,
              "temp_directory": temp_directory or tempfile.gettempdir(),
              "preserve_insertion_order": "false"}
    if threads:
        config["threads"] = int(threads)
    try:
        dcon = duckdb.connect(":memory:", config=config)
    except duckdb.Error as exc:
        raise EngineError(f"DuckDB refused its settings: {exc}") from exc
    dcon.execute("SET enable_progress_bar = false")  # the caller's terminal is the store's, not DuckDB's
    return dcon


@contextlib.contextmanager
def duckdb_session(memory_limit=None, temp_directory=None):
    """A DuckDB connection to a new in-memory database that spills to a new directory of
    ``temp_directory`` (removed on exit): its tables (the copied events, the staged families)
    and its intermediate results live in DuckDB's buffer pool under ``memory_limit`` and go
    to that directory beyond it, so memory stays bounded by the limit, not by the number of
    events. (A database file instead was measured slower at 100,000 customers, 20.4 against
    17.7 s end to end, for the same bound: benchmarks/README.md.)"""
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="caf-duckdb-", dir=temp_directory)
    try:
        dcon = duckdb_connection(memory_limit, folder)
        try:
            yield dcon
        finally:
            dcon.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


READ_BATCH_ROWS = 65_536       # rows per Arrow batch the ADBC SQLite driver reads from the store's file
# The first row of each read from the store's file: a value of each column's type. The ADBC
# SQLite driver infers a column's Arrow type from the first batch it reads (a column of NULLs
# would be int64, and a text value after it an error); this row fixes the types and is dropped.
_TYPING_VALUES = {"BIGINT": "0", "DOUBLE": "0.0", "TEXT": "''", "BLOB": "x''"}


def _adbc():
    return require("duckdb", "adbc_driver_sqlite.dbapi")


def copy_to_duckdb(conn, dcon, shop_id, schemas, through_connection=False):
    """Copy the shop's rows of each store table of ``schemas`` (and the timezone tables of the
    connection) into DuckDB tables of the same names and column types, streamed in Arrow
    record batches (memory bounded by a batch). Returns {table: rows}.

    The tables of a store file are read by SQLite itself into Arrow, without a Python object
    per value: the ADBC SQLite driver, over a read-only connection to the file in one read
    transaction (one snapshot of every table). That is the committed state, so the caller
    must not have changed these tables in its open transaction; ``materialize`` holds the
    write lock meanwhile, so no other writer can commit and the snapshot is the one ``conn``
    reads. The timezone tables (temporary tables of ``conn``) and the tables of a store with no
    file (in memory), or every table with ``through_connection``, are fetched through ``conn``
    (``_copy_through_python``; benchmarks/engine_transfer.py compares the two ways)."""
    path = None if through_connection else database_file(conn)
    counts = {}
    for table, cols in schemas.items():
        _create_duckdb_table(dcon, table, cols, schemas)
    from_file = [t for t in schemas if path is not None and t not in TZ_TABLES]
    if from_file:
        from concurrent.futures import ThreadPoolExecutor

        bounds = partition_bounds(conn, shop_id, READERS) or [("", None)]
        with ThreadPoolExecutor(len(bounds), thread_name_prefix="caf-read") as pool:
            parts = list(pool.map(lambda b: _copy_range_from_file(path, dcon, shop_id, from_file, schemas, *b),
                                  bounds))
        for part in parts:
            for table, n in part.items():
                counts[table] = counts.get(table, 0) + n
    for table, cols in schemas.items():
        if table not in counts:
            counts[table] = _copy_through_python(conn, dcon, shop_id, table, cols, schemas)
    return counts


def _create_duckdb_table(dcon, table, cols, schemas):
    allowed = set(cols)
    decl = ", ".join(f"{quote_identifier(c, allowed)} {cols[c] if cols[c] != 'TEXT' else 'VARCHAR'}"
                     for c in cols)
    dcon.execute(f"CREATE TABLE {quote_identifier(table, set(schemas))} ({decl})")


def _shop_rows_sql(table, cols, schemas, schema="main", first="", bounded=(False, False)):
    """(SELECT ``first`` and the columns ``cols`` of the shop's rows of a store table, whether
    it takes the shop id as its first parameter). ``bounded``: (a lower, an upper) bound on
    customer_id as the next parameters (``customer_id >= ?``, ``customer_id < ?``; each a
    range of the key when the table has shop_id)."""
    allowed = set(cols)
    quoted = ", ".join(quote_identifier(c, allowed) for c in cols)
    where = ["shop_id = ?"] if "shop_id" in cols else []
    where += [cond for cond, on in zip(("customer_id >= ?", "customer_id < ?"), bounded) if on]
    source = f"{schema}.{quote_identifier(table, set(schemas))}"
    return (f"SELECT {first}{quoted} FROM {source}" + (" WHERE " + " AND ".join(where) if where else ""),
            "shop_id" in cols)


READERS = 2  # threads reading the store's file into DuckDB, each a range of customer ids


def _copy_range_from_file(path, dcon, shop_id, tables, schemas, lo, hi):
    """The shop's rows with lo <= customer_id < hi (hi None: no upper bound) of ``tables``
    read from the store file ``path`` into DuckDB, on a connection and a DuckDB cursor of this
    thread's own; a table without customer_id is read whole by the range that starts at ''.
    Returns {table: rows}."""
    dbapi = _adbc()
    try:
        source = dbapi.connect(file_uri(path, "mode=ro"))
    except dbapi.Error as exc:
        raise EngineError(f"cannot read the store file {path}: {exc}") from exc
    counts = {}
    cursor = dcon.cursor()
    try:
        with contextlib.closing(source.cursor()) as cur:  # two readers may start at once
            cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_MS)}")
            cur.fetchall()
        for table in tables:
            if "customer_id" in schemas[table]:
                counts[table] = _copy_from_file(source, cursor, shop_id, table, schemas, lo, hi)
            elif not lo:
                counts[table] = _copy_from_file(source, cursor, shop_id, table, schemas, "", None)
    finally:
        cursor.close()
        source.close()
    return counts


def _copy_from_file(source, dcon, shop_id, table, schemas, lo, hi):
    """The shop's rows of ``table`` with lo <= customer_id < hi ('' and None: unbounded) read by
    ADBC connection ``source`` into the DuckDB table."""
    dbapi = _adbc()
    duckdb = require("duckdb", "duckdb")
    cols = schemas[table]
    allowed = set(cols)
    select, by_shop = _shop_rows_sql(table, cols, schemas, first="1, ", bounded=(bool(lo), hi is not None))
    params = ([shop_id] if by_shop else []) + ([lo] if lo else []) + ([hi] if hi is not None else [])
    typing_row = ", ".join(f"{_TYPING_VALUES[cols[c]]} AS {quote_identifier(c, allowed)}" for c in cols)
    sql = f"SELECT 0 AS caf_row, {typing_row} UNION ALL {select}"
    quoted = ", ".join(quote_identifier(c, allowed) for c in cols)
    cur = source.cursor()
    try:
        cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(READ_BATCH_ROWS)})
        cur.execute(sql, params)
        dcon.register("caf_source", cur.fetch_record_batch())
        try:
            return dcon.execute(f"INSERT INTO {quote_identifier(table, set(schemas))} SELECT {quoted} "
                                "FROM caf_source WHERE caf_row = 1").fetchone()[0]
        finally:
            dcon.unregister("caf_source")
    except (dbapi.Error, duckdb.Error, OSError) as exc:
        raise EngineError(f"cannot copy the table {table} into DuckDB: {exc}") from exc
    finally:
        cur.close()


def _copy_through_python(conn, dcon, shop_id, table, cols, schemas):
    """The rows of ``table`` fetched through ``conn`` ``BATCH_ROWS`` at a time, each batch an
    Arrow record batch appended to the DuckDB table."""
    pa = require("duckdb", "pyarrow")
    names = list(cols)
    arrow_schema = pa.schema([(c, getattr(pa, _ARROW_TYPES.get(cols[c], "string"))()) for c in names])
    select, by_shop = _shop_rows_sql(table, cols, schemas, "temp" if table in TZ_TABLES else "main")
    cur = conn.execute(select, [shop_id] if by_shop else [])
    tq = quote_identifier(table, set(schemas))
    n = 0
    while True:
        rows = cur.fetchmany(BATCH_ROWS)
        if not rows:
            break
        columns = list(zip(*rows))
        batch = pa.RecordBatch.from_arrays([pa.array(columns[i], type=arrow_schema.field(i).type)
                                            for i in range(len(names))], schema=arrow_schema)
        dcon.register("caf_batch", batch)
        dcon.execute(f"INSERT INTO {tq} SELECT * FROM caf_batch")
        dcon.unregister("caf_batch")
        n += len(rows)
    return n


def run_duckdb(dcon, statements):
    """Run ``statements`` (``statements_for('duckdb', ...)``) in DuckDB: ``stage_duckdb`` of
    every relation, then ``select_duckdb``: the final SELECT's rows as Arrow record batches."""
    stage_duckdb(dcon, statements[:-1])
    return select_duckdb(dcon, statements)


def stage_duckdb(dcon, statements):
    """Each statement's relation a DuckDB table (a view for ``purchase_local_time``)."""
    duckdb = require("duckdb", "duckdb")
    allowed = {st.relation for st in statements}
    for st in statements:
        try:
            dcon.execute(f"CREATE OR REPLACE {'VIEW' if st.view else 'TABLE'} "
                         f"{quote_identifier(st.relation, allowed)} AS {st.sql}")
        except duckdb.Error as exc:
            raise EngineError(f"DuckDB failed on {st.relation}: {exc}") from exc


FINAL_CHUNK_TARGETS = 100_000  # targets per run of the final SELECT (select_duckdb)
_ALL = "_all"  # suffix of a staged table renamed while its name is a view of one chunk
CHUNK_TABLE = "caf_chunk"


def select_duckdb(dcon, statements, chunk_targets=None):
    """Yield the rows of the final SELECT (the last of ``statements``, run after the others
    are staged) as Arrow record batches of at most ``BATCH_ROWS`` rows, in target order,
    computed ``chunk_targets`` (default FINAL_CHUNK_TARGETS) targets at a time.

    The final SELECT joins ``target`` to every staged table on ``target_id``; over a whole
    shop DuckDB holds one hash table per staged table at once (about 33), which at 1,000,000
    customers does not fit a 1GB ``memory_limit`` (the join cannot spill). So the SELECT runs
    as written once per range of target ids: each table it reads (``target`` and the staged
    tables) is renamed ``<name>_all`` and ``<name>`` becomes a view of that range's rows (the
    bounds in a one-row table, set with bound parameters), so a run's hash tables hold one
    chunk's rows. Ranges in increasing order, each ordered by the SELECT: the target order."""
    duckdb = require("duckdb", "duckdb")
    chunk_targets = chunk_targets or FINAL_CHUNK_TARGETS
    tables = [st.relation for st in statements[:-1] if not st.view]
    allowed = set(tables) | {t + _ALL for t in tables}
    final = statements[-1].sql
    try:
        lo, hi = dcon.execute(f"SELECT MIN(target_id), MAX(target_id) FROM {TARGET}").fetchone()
        dcon.execute(f"CREATE TABLE {CHUNK_TABLE} (lo BIGINT, hi BIGINT)")
        dcon.execute(f"INSERT INTO {CHUNK_TABLE} VALUES (0, 0)")
        for t in tables:
            name, whole = quote_identifier(t, allowed), quote_identifier(t + _ALL, allowed)
            dcon.execute(f"ALTER TABLE {name} RENAME TO {whole}")
            dcon.execute(f"CREATE VIEW {name} AS SELECT x.* FROM {whole} AS x, {CHUNK_TABLE} AS c "
                         "WHERE x.target_id >= c.lo AND x.target_id < c.hi")
        start = lo or 0
        while lo is not None and start <= hi:
            dcon.execute(f"UPDATE {CHUNK_TABLE} SET lo = ?, hi = ?", [start, start + chunk_targets])
            yield from dcon.sql(final).to_arrow_reader(BATCH_ROWS)
            start += chunk_targets
    except duckdb.Error as exc:
        raise EngineError(f"DuckDB failed on the final select: {exc}") from exc


def ahead(items, depth=4):
    """Yield the items of the iterator ``items`` in order, produced by a thread of their own up
    to ``depth`` items ahead of the consumer: DuckDB computes the next record batches while the
    caller writes the last ones (both outside Python's GIL). An exception of the producer is
    raised here; closing this generator stops the producer and waits for it."""
    import queue
    import threading

    channel = queue.Queue(depth)
    stop = threading.Event()

    def put(entry):
        while not stop.is_set():
            try:
                channel.put(entry, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce():
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((False, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((False, exc))

    thread = threading.Thread(target=produce, name="caf-ahead", daemon=True)
    thread.start()
    try:
        while True:
            more, value = channel.get()
            if not more:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()
        thread.join()


ROWS_SCHEMA = "scratch"  # the schema name the rows computed elsewhere are attached under


def write_batches(conn, cleanup, workdir, plan, table, batches):
    """Insert Arrow record batches of the stored columns (``plan.stored_names``, in that order)
    into the store table ``table`` inside the caller's write transaction, without a Python
    object per value: the batches go into a SQLite file in ``workdir`` with the same table
    definition (the ADBC SQLite driver's bulk ingest, each column cast to its declared type),
    which ``conn`` attaches (``cleanup``, an ExitStack closed after the COMMIT or ROLLBACK,
    detaches it) and copies from in one ``INSERT ... SELECT`` (same definition: SQLite copies
    the records as they are). Returns the number of rows inserted."""
    dbapi, duckdb, pa = require("duckdb", "adbc_driver_sqlite.dbapi", "duckdb", "pyarrow")
    rows_file = os.path.join(workdir, "rows.db")
    with contextlib.closing(sqlite3.connect(rows_file, isolation_level=None)) as rows_db:
        rows_db.execute(plan.create_sql(table))
        types = table_schema(rows_db, table)
    arrow_schema = pa.schema([(c, getattr(pa, _ARROW_TYPES[types[c]])()) for c in plan.stored_names])

    def typed():
        for batch in batches:
            yield pa.RecordBatch.from_arrays([batch.column(k).cast(field.type) for k, field in enumerate(arrow_schema)],
                                             schema=arrow_schema)
    target = dbapi.connect(file_uri(rows_file, "mode=rw"))
    try:
        with contextlib.closing(target.cursor()) as cur:
            cur.adbc_ingest(table, pa.RecordBatchReader.from_batches(arrow_schema, typed()), mode="append")
        target.commit()
    except (dbapi.Error, duckdb.Error, pa.ArrowException, OSError) as exc:
        raise EngineError(f"cannot write the computed rows: {exc}") from exc
    finally:
        target.close()
    schema = attach(conn, cleanup, rows_file, ROWS_SCHEMA)
    qt = quote_identifier(table, (table,))
    return conn.execute(f"INSERT INTO main.{qt} SELECT * FROM {schema}.{qt}").rowcount


def write_duckdb(conn, plan, table, shop_id, params, cleanup, *, memory_limit=None):
    """Compute the rows of ``plan`` for every customer of the shop in DuckDB and insert their
    stored columns into the store table ``table`` (customer_features_new; the caller swaps it
    in), inside the caller's write transaction. The statements are made (``statements_for``);
    the shop's rows of the tables they read are copied into a new DuckDB database
    (``copy_to_duckdb``; ``duckdb_session``, under ``memory_limit``) in a scratch directory
    of this run (``store.scratch.run_dir``: ``cleanup``, an ExitStack closed after the COMMIT
    or ROLLBACK, deletes it); the statements run there; the final SELECT's stored columns go
    into ``table`` in Arrow record batches (``write_batches``), DuckDB computing the next
    batches while the last are written (``ahead``).

    Returns (rows written, {"translate": s, "read": s, "compute": s, "write": s}), wall
    seconds of each step (translate: making the statements; read: the copy into DuckDB;
    compute: the family statements; write: the final SELECT, computed as its batches are
    written, and the copy into ``table``)."""
    import time

    require("duckdb", "adbc_driver_sqlite.dbapi", "duckdb", "pyarrow", "sqlglot")  # the extra, before any work
    started = time.perf_counter()
    schemas = input_schemas(conn, plan)
    statements = statements_for("duckdb", plan, params, schemas)
    translated = time.perf_counter()
    workdir = scratch.run_dir(cleanup)
    positions = plan.stored_positions  # the final select has every column
    with duckdb_session(memory_limit, workdir) as dcon:
        copy_to_duckdb(conn, dcon, shop_id, schemas)
        read = time.perf_counter()
        stage_duckdb(dcon, statements[:-1])
        computed = time.perf_counter()
        batches = ahead(batch.select(positions) for batch in select_duckdb(dcon, statements))
        try:
            n = write_batches(conn, cleanup, workdir, plan, table, batches)
        finally:
            batches.close()  # the producing thread is done before DuckDB's connection closes
    done = time.perf_counter()
    return n, {"translate": round(translated - started, 3), "read": round(read - translated, 3),
               "compute": round(computed - read, 3), "write": round(done - computed, 3)}


def duckdb_rows(conn, plan, shop_id, params, *, lo=None, hi=None, memory_limit=None):
    """Yield the rows of ``plan`` (every column of customer_features, customer id order) for the
    shop's customers with lo <= id < hi, computed in DuckDB (a row source of ROW_SOURCES)."""
    schemas = input_schemas(conn, plan)
    statements = statements_for("duckdb", plan, params, schemas, lo=lo, hi=hi)
    with duckdb_session(memory_limit) as dcon:
        copy_to_duckdb(conn, dcon, shop_id, schemas)
        for batch in run_duckdb(dcon, statements):  # int64, double and string columns: int, float, str
            yield from zip(*(column.to_pylist() for column in batch.columns))


# The engines ``verify`` compares with SQLite: dialect -> row source (conn, plan, shop_id, params,
# lo=, hi=, memory_limit=) yielding the plan's rows in customer id order. Spark registers its own.
ROW_SOURCES = {"duckdb": duckdb_rows}

REAL_TOLERANCE = 1e-12  # verify: REALs equal within this relative difference (absolute near 0)


def cells_equal(a, b):
    """verify's rule for one cell: integers and text exact (same type), REALs within REAL_TOLERANCE."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=REAL_TOLERANCE, abs_tol=REAL_TOLERANCE)
    return type(a) is type(b) and a == b


def verify(conn, shop_id, dialect, as_of_us, *, sample=2000, reg=None, windows=None, families=None,
           memory_limit=None, examples=5):
    """Compute the rows of every family (or ``families``) for the first ``sample`` customers of
    the shop (0: every customer) at ``as_of_us`` on SQLite and on ``dialect``, and compare
    them cell by cell (``cells_equal``). Nothing is written to the store. DuckDB reads the
    store file's committed state in a read transaction of its own (``copy_to_duckdb``), after
    SQLite's has begun: a write another process commits in between shows as mismatched cells of
    the customers it changed. Returns
    {"engine", "as_of", "customers", "rows", "columns", "cells", "mismatched_cells",
    "mismatched_rows", "by_column": {column: mismatches}, "examples": [...], "seconds": {...}}."""
    import time

    check_dialect(dialect)
    if dialect not in ROW_SOURCES:
        raise EngineError(f"no row source for {dialect!r} (known: {', '.join(ROW_SOURCES)})")
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
        raise ValueError(f"sample must be a whole number of customers >= 0, got {sample!r}")
    from .db import automatic_indexes, begin_read, rollback

    plan = _plan.Plan(conn, windows, families, reg)
    params = plan.params(shop_id, as_of_us)
    began = not conn.in_transaction
    if began:
        begin_read(conn)
    staged = []
    try:
        targets = query("fill_targets_all_customers")
        _plan.fill_targets(conn, targets, _plan.all_customers_params(shop_id, as_of_us))
        hi = None
        if sample:
            row = conn.execute(f"SELECT customer_id FROM {_plan.TARGETS} WHERE target_id = ?", [sample + 1]).fetchone()
            hi = row[0] if row else None
            if hi is not None:
                _plan.fill_targets(conn, targets, _plan.all_customers_params(shop_id, as_of_us, "", hi))
        t0 = time.perf_counter()
        with automatic_indexes(conn):
            staged = plan.stage(conn, params)
        mine = conn.execute(plan.staged_select_sql(), params)
        sqlite_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        other = ROW_SOURCES[dialect](conn, plan, shop_id, params, lo=None, hi=hi, memory_limit=memory_limit)
        names = plan.column_names
        by_column, shown = {}, []
        rows = cells = bad_rows = 0
        extra = 0
        for a, b in itertools.zip_longest(mine, other):
            if a is None or b is None:
                extra += 1
                continue
            rows += 1
            cells += len(names)
            bad = [i for i, (x, y) in enumerate(zip(a, b)) if not cells_equal(x, y)]
            if bad:
                bad_rows += 1
                for i in bad:
                    by_column[names[i]] = by_column.get(names[i], 0) + 1
                    if len(shown) < examples:
                        shown.append({"customer_id": a[1], "column": names[i], "sqlite": a[i], dialect: b[i]})
        other_seconds = time.perf_counter() - t0
    finally:
        plan.unstage(conn, staged)
        _plan.drop_targets(conn)
        if began:
            rollback(conn)
    return {"engine": dialect, "as_of": params["as_of"], "customers": rows + extra, "rows": rows,
            "columns": len(plan.column_names), "cells": cells,
            "mismatched_cells": sum(by_column.values()) + extra * len(plan.column_names),
            "mismatched_rows": bad_rows + extra, "by_column": by_column, "examples": shown,
            "seconds": {"sqlite": round(sqlite_seconds, 3), dialect: round(other_seconds, 3)}}
