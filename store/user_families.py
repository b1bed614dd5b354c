"""Users' own feature families: family files registered from the user's folder, checked
against SQLite before anything of them is used.

``load(paths)`` returns the store's ``registry.Registry``: the built-in families plus those of
the files of ``paths`` (a directory: every ``*.sql`` in it, sorted), in exactly the format of
``sql/`` (docs/feature_store.md, "Your own families"). Each family statement is prepared by
SQLite, in a scratch in-memory database holding the store's schema (never the store's file),
with an authorizer that allows only reading (``SQLITE_SELECT``, ``SQLITE_READ`` of the
store's event tables and of ``target``, ``SQLITE_FUNCTION``, ``SQLITE_RECURSIVE``): a
statement that would write, change the schema, attach a file or run a pragma is denied
while it is prepared, so it never runs. Then it is composed and prepared as materialize
runs it (every window). A refusal raises ``FamilyDefinitionError`` naming the file, the line
(the family's header line when SQLite gives none) and the reason; nothing of the store is
registered then.

Refused: a syntax error or more than one statement; a statement that writes or changes the
schema; a table that is not one of the store's event tables (``store.event_days.EVENT_TABLES``), or one
its ``-- tables:`` line does not name; a parameter the store does not bind; no ``target_id``
as the first output column; an output column without its comment line, a comment without
its column; an output column given twice (a derived column the query computes too); a column
or family name already taken by a built-in or an earlier family
(store.registry.read_user_file); a column name that is not a plain identifier; a header
line naming store internals.
"""

import sqlite3

from . import catalog, registry
from .db import configure, migrate
from .errors import FamilyDefinitionError
from .event_days import EVENT_TABLES
from .features import parameters, runnable
from .plan import DEFAULT_WINDOWS, Plan

# The tables a user family may read: the store's event tables, and the target relation.
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                    getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
# The authorizer's action codes by name, for the refusal message.
_ACTION_NAMES = {getattr(sqlite3, f"SQLITE_{name}"): f"SQLITE_{name}" for name in (
    "CREATE_INDEX", "CREATE_TABLE", "CREATE_TEMP_INDEX", "CREATE_TEMP_TABLE", "CREATE_TEMP_TRIGGER",
    "CREATE_TEMP_VIEW", "CREATE_TRIGGER", "CREATE_VIEW", "DELETE", "DROP_INDEX", "DROP_TABLE",
    "DROP_TEMP_INDEX", "DROP_TEMP_TABLE", "DROP_TEMP_TRIGGER", "DROP_TEMP_VIEW", "DROP_TRIGGER", "DROP_VIEW",
    "INSERT", "PRAGMA", "TRANSACTION", "UPDATE", "ATTACH", "DETACH", "ALTER_TABLE", "REINDEX", "ANALYZE",
    "CREATE_VTABLE", "DROP_VTABLE", "SAVEPOINT") if hasattr(sqlite3, f"SQLITE_{name}")}


def known_parameters():
    """The named parameters a family query may use: those the store binds for every query
    (store.features.parameters), ``as_of_us`` and ``as_of``."""
    return {**parameters(""), "as_of_us": 0, "as_of": "1970-01-01T00:00:00Z"}


def load(paths):
    """The Registry of the built-ins plus the family files of ``paths`` (checked; see above).
    No path: the cached built-in registry."""
    paths = list(paths or ())
    if not paths:
        return registry.builtin()
    reg = registry.with_files(paths)
    if reg is registry.builtin():
        return reg
    catalog.derived_columns(reg)  # its derived lines, checked by SQLite (file and line when refused)
    scratch = _scratch()
    try:
        for block in reg.user_blocks():
            check_family(scratch, reg, block)
    finally:
        scratch.close()
    return reg


def _scratch():
    """An in-memory database with the store's schema and an empty ``temp.target``."""
    conn = sqlite3.connect(":memory:")
    configure(conn)
    migrate(conn)
    conn.execute("CREATE TEMP TABLE target (target_id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL, "
                 "as_of_us INTEGER NOT NULL)")
    return conn


class _Guard:
    """The authorizer: reads of allowed tables only; remembers what it denied and read."""

    def __init__(self, tables):
        self.tables = tables
        self.writes = []    # the denied actions that write or change the schema, in order
        self.reads = []     # the denied reads (tables that are not event tables)
        self.read = set()

    def __call__(self, action, arg1, arg2, dbname, source):
        if action == sqlite3.SQLITE_READ:
            if arg1 == "target" and dbname == "temp":
                return sqlite3.SQLITE_OK
            if arg1 in self.tables and dbname == "main":
                self.read.add(arg1)
                return sqlite3.SQLITE_OK
            self.reads.append(arg1)
            return sqlite3.SQLITE_DENY
        if action in _ALLOWED_ACTIONS:
            return sqlite3.SQLITE_OK
        what = " ".join([_ACTION_NAMES.get(action, f"action {action}")] + [str(a) for a in (arg1, arg2) if a])
        if what not in self.writes:
            self.writes.append(what)
        return sqlite3.SQLITE_DENY

    def denied(self):
        if self.writes:
            return f"the statement writes or changes the schema ({', '.join(self.writes)}); a family may only read"
        if self.reads:
            return (f"reads table {self.reads[0]}, which is not one of the store's event tables "
                    f"({', '.join(sorted(self.tables))})")
        return None


def _prepare(conn, sql, params, guard):
    """Prepare (and run over the empty target: no row) ``sql`` under the guard; its column names."""
    conn.set_authorizer(guard)
    try:
        cursor = conn.execute(sql, params)
        try:
            return [d[0] for d in cursor.description or ()]
        finally:
            cursor.close()
    finally:
        conn.set_authorizer(None)


def _reason(exc, guard):
    if guard.denied():
        return guard.denied()
    text = str(exc)
    if isinstance(exc, sqlite3.ProgrammingError) and "binding parameter" in text:
        return f"a parameter the store does not bind: {text} (known: {', '.join(sorted(known_parameters()))})"
    if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.Warning)) and "one statement" in text:
        return "more than one statement; a family is one SELECT"
    if text.startswith("no such table"):
        return f"unknown table: {text}"
    return f"SQLite cannot prepare it: {text}"


def check_family(conn, reg, block):
    """Refuse (FamilyDefinitionError) a user family that is not a read-only, well-formed family
    of the store; ``conn``: the scratch database of ``_scratch``."""
    source, line = block.source, block.line

    def fail(reason):
        raise FamilyDefinitionError(source, line, f"family {block.name}: {reason}")

    fam = block.family
    bad = [t for t in fam.tables if t not in EVENT_TABLES]
    if bad:
        fail(f"-- tables: names {bad[0]}, which is not one of the store's event tables "
             f"({', '.join(sorted(EVENT_TABLES))})")
    params = known_parameters()
    guard = _Guard(EVENT_TABLES)
    try:
        columns = _prepare(conn, runnable(reg, block.name), params, guard)
    except (sqlite3.DatabaseError, sqlite3.ProgrammingError, sqlite3.Warning) as exc:
        fail(_reason(exc, guard))
    undeclared = sorted(guard.read - set(fam.tables))
    if undeclared:
        fail(f"reads {undeclared[0]}, which its '-- tables:' line does not name")
    if not columns or columns[0] != "target_id":
        fail("its first output column must be target_id (one row per target)")
    derived = {column for column, _ in fam.derived}
    twice = sorted(name for name in set(columns) if columns.count(name) > 1)
    if twice:
        fail(f"output column {twice[0]} appears twice" + (
            " (a derived column is computed from its '-- derived:' line only, not by the query)"
            if twice[0] in derived else ""))
    commented = {f.name for f in block.features} | set(block.helpers)
    for name in columns[1:]:
        if name not in commented:
            fail(f"output column {name} has no comment line '-- {name}: <meaning>; <type>, <unit>; <null rule>'")
    for name in sorted(commented - set(columns)):
        fail(f"column {name} is commented but not an output column")
    taken = {name for name, _ in catalog.KEY_COLUMNS}
    for f in block.features:
        if f.name in taken:
            fail(f"column {f.name} is a key column of customer_features")
    # as the store runs it: composed for every window, each statement prepared under the guard
    plan = Plan(conn, DEFAULT_WINDOWS, {block.name}, reg)
    run_params = plan.params("", 0)
    for st in plan.stage_statements():
        guard = _Guard(EVENT_TABLES)
        try:
            _prepare(conn, st.sql + "\nLIMIT 0", {**run_params, **st.parameters}, guard)
        except (sqlite3.DatabaseError, sqlite3.ProgrammingError, sqlite3.Warning) as exc:
            fail("as materialize composes it: " + _reason(exc, guard))
