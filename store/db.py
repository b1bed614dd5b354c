"""Connections, pragmas and schema migrations: the bottom of the stack.

Connection discipline: a store instance owns one connection, used as the single
writer of its database (writes run in ``BEGIN IMMEDIATE`` transactions written
with ``atomic`` or ``begin``/``commit``/``rollback`` below; see ``store.ingest``). Extra readers are opened read-only (``open_reader``). Every
connection has WAL journaling (file databases) and a busy timeout, so a reader
waits for a writer instead of failing with "database is locked".

Opening a file (``open_store``): the file is examined first without side effects
(an ``immutable=1`` read), and a file that is not a store is refused with
``NotAStoreError`` before anything is written; a file this process may not write
(or whose directory it may not write) is opened read-only, through ``mode=ro``,
or ``immutable=1`` when SQLite cannot open it read-only otherwise (a WAL
database in a read-only directory). SQLite's errors that have a meaning for the
store become its own classes in one place, ``store_error``.
"""

import contextlib
import datetime
import functools
import importlib.util
import math
import numbers
import os
import sqlite3
import typing
from dataclasses import dataclass
from pathlib import Path

from .errors import (DatabaseLockedError, NotAStoreError, OutputIsDatabaseError, ReadOnlyStoreError,
                     SchemaTooNewError, StorageFullError, UnknownNameError)
from .resources import query, resource_dir

BUSY_TIMEOUT_MS = 30_000  # the default busy timeout (busy_timeout= / caf --busy-timeout change it)
MIGRATIONS_TABLE = "_sqlite_migrations"
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
SIDE_FILES = ("-wal", "-journal")  # files beside a database that can hold changes not yet in it
# SQLite's primary result codes (sqlite3 exports them from Python 3.11 on only)
SQLITE_BUSY, SQLITE_READONLY, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 5, 8, 13, 14, 26


def _usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


# PRAGMA threads: how many helper threads SQLite's sorter may use for one sort (0: the calling
# thread alone). Only a sort larger than the page cache uses them (it sorts and merges runs it
# spilled to temporary files), so a request's small sorts never start one; the GROUP BY, ORDER BY
# and window sorts of materialize, refresh and features_at do. One helper when the process may
# use more than one CPU: every family's materialize 216.1 -> 203.9 s at 1,000,000 customers and
# 19.8 -> 19.1 s at 100,000 (peak RSS 65.5 -> 79.3 MB at 1,000,000; benchmarks/README.md,
# 2026-12-04). The worker processes of materialize(workers=N) sort with none (store/partition.py):
# the workers already use the CPUs.
SORTER_THREADS = 1 if _usable_cpus() > 1 else 0


def quote_identifier(name, allowed):
    """Quote an identifier for SQL text, after checking it against an allowlist.

    This is the only place identifiers are put into SQL text; values are always
    bound parameters.
    """
    if name not in allowed:
        raise UnknownNameError(f"{name!r} is not one of: {', '.join(sorted(map(str, allowed)))}")
    return '"' + str(name).replace('"', '""') + '"'


def authorized_actions(conn, sql, params=()):
    """{(action, arg1, arg2, database)} that SQLite's authorizer reports while ``sql`` is
    prepared (through EXPLAIN: nothing is run): e.g. (sqlite3.SQLITE_READ, table, column, 'main').
    What a statement reads and writes, as SQLite sees it, never as a regex would guess."""
    seen = set()

    def authorizer(action, arg1, arg2, database, trigger):
        seen.add((action, arg1, arg2, database))
        return sqlite3.SQLITE_OK

    conn.set_authorizer(authorizer)
    try:
        conn.execute("EXPLAIN " + sql, params).fetchall()
    finally:
        conn.set_authorizer(None)
    return seen


def _load_migrations_file(name):
    path = resource_dir("migrations") / name
    spec = importlib.util.spec_from_file_location("_caf_migrations_" + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_STEPS = _load_migrations_file("steps.py")  # the steps, standard library only
MIGRATION_SET = _STEPS.MIGRATION_SET  # our migration set's name in _sqlite_migrations


@functools.lru_cache(maxsize=1)
def migrations():
    """sqlite-utils' Migrations of the store (migrations/migrations.py), loaded only when a step
    is to be applied: opening an up-to-date store does not import sqlite-utils, which takes a
    second when pandas is installed (it imports pandas)."""
    return _load_migrations_file("migrations.py").migrations


def _apply_steps(conn):
    """Apply the pending steps with sqlite-utils (caller holds the write transaction; the steps
    nest as savepoints). sqlite-utils is imported here only, see ``migrations``."""
    import sqlite_utils
    migrations().apply(sqlite_utils.Database(conn, execute_plugins=False))


def known_steps():
    """Names of every migration step this code knows, in order."""
    return list(_STEPS.STEPS)


def check_busy_timeout(seconds=None):
    """The busy timeout in whole milliseconds for a timeout given in seconds (None: the default, 30 s).

    How long a connection waits for a lock held by another connection before the call fails
    with ``DatabaseLockedError``.
    """
    if seconds is None:
        return BUSY_TIMEOUT_MS
    if (isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not math.isfinite(seconds)
            or not 0 <= seconds <= 86_400):
        raise ValueError(f"busy_timeout must be a number of seconds from 0 to 86400, got {seconds!r}")
    return int(round(float(seconds) * 1000))


def configure(conn, *, read_only=False, busy_timeout_ms=BUSY_TIMEOUT_MS, sorter_threads=SORTER_THREADS):
    """Apply the store's pragmas to a connection (``sorter_threads``: PRAGMA threads, see
    SORTER_THREADS)."""
    conn.isolation_level = None  # we issue BEGIN IMMEDIATE / COMMIT ourselves (atomic, begin, commit)
    # A PRAGMA takes no bound parameter: the values are whole numbers (check_busy_timeout).
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute(f"PRAGMA threads = {int(sorter_threads)}")
    conn.execute("PRAGMA foreign_keys = ON")
    if not read_only:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode not in ("wal", "memory"):
            try:
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError:
                pass  # e.g. a read-only file: stay in its journal mode
        conn.execute("PRAGMA synchronous = NORMAL")
    return conn


@contextlib.contextmanager
def automatic_indexes(conn):
    """Make sure statements prepared inside the block may use automatic indexes.

    Set-based statements (cohorts, materialisation) join per-target CTEs of
    many rows and need them. Store connections keep SQLite's default (on); a
    caller's connection that turned them off gets them for the block. Only
    reading the pragma is free: setting it expires every prepared statement,
    so it is set only when it is off.
    """
    was_on = conn.execute("PRAGMA automatic_index").fetchone()[0]
    if not was_on:
        conn.execute("PRAGMA automatic_index = ON")
    try:
        yield conn
    finally:
        if not was_on:
            conn.execute("PRAGMA automatic_index = OFF")


def file_uri(path, parameters):
    """The SQLite URI of a database file with query ``parameters`` (e.g. ``"mode=ro"``)."""
    return Path(path).resolve().as_uri() + "?" + parameters


def connect(path, *, read_only=False, busy_timeout_ms=BUSY_TIMEOUT_MS, sorter_threads=SORTER_THREADS):
    """Open a connection to a database file (created if missing unless read-only); no checks,
    see ``open_store`` for opening a store."""
    path = Path(path)
    if read_only:
        conn = sqlite3.connect(file_uri(path, "mode=ro"), uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False)
    return configure(conn, read_only=read_only, busy_timeout_ms=busy_timeout_ms, sorter_threads=sorter_threads)


def open_reader(path, *, sorter_threads=SORTER_THREADS):
    """A read-only connection for concurrent readers of a file database."""
    return connect(path, read_only=True, sorter_threads=sorter_threads)


def applied_steps(conn):
    """Names of the steps of our migration set recorded in the database."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [MIGRATIONS_TABLE]
    ).fetchone()
    if not exists:
        return []
    rows = conn.execute(
        "SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY rowid",
        [MIGRATION_SET],
    )
    return [name for (name,) in rows]


def pending_steps(conn):
    done = set(applied_steps(conn))
    return [name for name in known_steps() if name not in done]


def unknown_steps(steps):
    """The names among ``steps`` (applied steps) that this code does not know."""
    known = set(known_steps())
    return tuple(name for name in steps if name not in known)


def refuse_newer(unknown):
    """Raise SchemaTooNewError when ``unknown`` (schema steps this code does not know) is not empty."""
    if unknown:
        raise SchemaTooNewError(
            "this database was written by a newer version of customer-activity-features "
            f"(unknown schema steps: {', '.join(unknown)}); upgrade the library to open it. "
            "The database was not modified."
        )


def check_not_newer(conn):
    """Refuse a database whose schema has steps this code does not know."""
    refuse_newer(unknown_steps(applied_steps(conn)))


def check_up_to_date(conn):
    """Refuse, on a read-only connection, a database whose schema needs upgrading (without trying)."""
    pending = pending_steps(conn)
    if pending:
        raise ReadOnlyStoreError(
            f"the database is read-only and its schema needs upgrading ({', '.join(pending)}): "
            "open it once by someone who may write it ('caf migrate') to upgrade it")


# -- opening a file: is it a store? ------------------------------------------------------
def writable(path):
    """True when this process may write the file and create files beside it (-wal, -shm,
    -journal): what writing a SQLite database needs. Root may write anything."""
    path = Path(path)
    return os.access(path, os.W_OK) and os.access(path.resolve().parent, os.W_OK)


@dataclass(frozen=True)
class FileKind:
    """What a database file holds, as ``examine`` / ``examine_file`` found it.

    ``kind``: 'missing', 'empty' (no bytes, or an SQLite database without schema objects),
    'store' (rows of this store's migration set), 'foreign' (schema objects, none of them a
    store's record), 'not_sqlite' (not an SQLite database file), or 'unknown' (could not be
    read without side effects: left to a check on the real connection).
    """

    kind: str
    names: tuple = ()  # a few schema object names ('foreign')
    objects: int = 0  # how many schema objects ('foreign')
    newer: tuple = ()  # schema steps this code does not know ('store' written by a newer version)


def examine(conn):
    """The FileKind of the database behind a connection (reads only)."""
    try:
        steps = applied_steps(conn)
    except sqlite3.OperationalError:  # another application's _sqlite_migrations table
        steps = []
    if steps:
        return FileKind("store", newer=unknown_steps(steps))
    objects = conn.execute(query("schema_object_count")).fetchone()[0]
    if not objects:
        return FileKind("empty")
    names = tuple(name for (name,) in conn.execute(query("schema_object_names"), {"limit": 5}))
    return FileKind("foreign", names, objects)


def examine_file(path):
    """The FileKind of a database file, read without side effects: the header, then the schema
    through an ``immutable=1`` connection (no lock, no -wal/-shm/-journal file, no write), so a
    refused file stays byte-for-byte as it was. Changes still in a -wal file are not seen (see
    ``pending_side_file``)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return FileKind("missing")
    except OSError:
        return FileKind("unknown")  # e.g. not readable: the real open says why
    if not head:
        return FileKind("empty")
    if head != SQLITE_HEADER:
        return FileKind("not_sqlite")
    try:
        conn = sqlite3.connect(file_uri(path, "mode=ro&immutable=1"), uri=True)
    except sqlite3.Error:
        return FileKind("unknown")
    try:
        return examine(conn)
    except sqlite3.DatabaseError:
        return FileKind("unknown")  # e.g. being written right now
    finally:
        conn.close()


def pending_side_file(path):
    """(name, bytes) of a -wal or -journal file beside ``path`` holding bytes, or None. Such a
    file may hold changes that are not in the database file yet."""
    for suffix in SIDE_FILES:
        side = Path(str(path) + suffix)
        try:
            size = side.stat().st_size
        except OSError:
            continue
        if size:
            return side.name, size
    return None


def check_is_store(found, path, *, allow_new):
    """Raise NotAStoreError unless ``found`` (a FileKind) is a store, or a missing or empty file
    that ``allow_new`` lets become one."""
    kind = found.kind
    if kind == "store" or (allow_new and kind in ("missing", "empty")):
        return
    if kind == "missing":
        raise NotAStoreError(f"cannot open {path}: no such database file")
    if kind == "empty":
        raise NotAStoreError(
            f"cannot open {path}: the file is empty, not a customer-activity-features store; it was "
            "not modified ('caf init', 'caf load' or 'caf demo' create a store)")
    if kind == "not_sqlite":
        raise NotAStoreError(f"cannot open {path}: not a database (not an SQLite file); it was not modified")
    shown = ", ".join(found.names) + (", ..." if found.objects > len(found.names) else "")
    raise NotAStoreError(
        f"cannot open {path}: not a customer-activity-features store, it holds {found.objects} schema "
        f"object(s) of another application ({shown}); it was not modified. Use a new file for the "
        "store (to add the store's tables to this database on purpose, pass a connection: "
        "CustomerActivityFeatures(sqlite3.connect(path)))")


@dataclass(frozen=True)
class OpenedStore:
    """A connection ``open_store`` made: ``read_only`` when it cannot write, ``immutable`` when
    it reads the file through ``immutable=1`` (see ``open_store``)."""

    conn: sqlite3.Connection
    read_only: bool
    immutable: bool


def open_store(path, *, read_only=False, create=True, busy_timeout_ms=BUSY_TIMEOUT_MS, newer_ok=False):
    """Open the store in a database file: a configured connection, nothing migrated yet.

    * The file is examined first without side effects (``examine_file``): a file that is not an
      SQLite database, another application's database, or (unless ``create``) an empty file is
      refused with ``NotAStoreError`` before anything is written; a newer schema with
      ``SchemaTooNewError`` (unless ``newer_ok``: for listing its steps). Both are checked again
      on the real connection before any pragma or write (which decides alone when a -wal or
      -journal file beside the file holds bytes the first look could not see).
    * ``create``: a missing or empty file may become a store (it is created here when missing).
      A missing file with ``read_only`` is a ``ReadOnlyStoreError``.
    * Read-only (``read_only``, or a file or directory this process may not write): ``mode=ro``;
      when SQLite cannot open the file that way (a WAL database whose -shm file cannot be
      created: a read-only directory or mount), ``immutable=1``. An immutable connection takes
      no lock and reads the database file only: it does not see changes another process makes
      while it is open (it may even return wrong results if the file changes under it), which is
      why it is only used where this process cannot write, and refused when a -wal or -journal
      file holds bytes (changes the database file may not have yet): ``ReadOnlyStoreError``
      saying so.
    """
    path = Path(path)
    found = examine_file(path)
    if found.kind == "missing" and read_only:
        raise ReadOnlyStoreError(f"cannot open {path} read-only: no such database file")
    read_only = bool(read_only) or (found.kind != "missing" and not writable(path))
    deferred = found.kind == "unknown" or (found.kind in ("empty", "foreign") and pending_side_file(path))
    if not deferred:
        check_is_store(found, path, allow_new=create)
        if not newer_ok:
            refuse_newer(found.newer)
    immutable = False
    if read_only:
        conn, immutable = _open_read_only(path, busy_timeout_ms)
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False)
    try:
        found = examine(conn)
        if deferred:
            check_is_store(found, path, allow_new=create)
        if not newer_ok:
            refuse_newer(found.newer)
        configure(conn, read_only=read_only, busy_timeout_ms=busy_timeout_ms)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if getattr(exc, "sqlite_errorcode", None) == SQLITE_NOTADB or "not a database" in str(exc):
            raise NotAStoreError(f"cannot open {path}: not a database ({exc}); it was not modified") from exc
        raise_as_store_error(exc)
        raise
    except BaseException:
        conn.close()
        raise
    return OpenedStore(conn, read_only, immutable)


def _cannot_open_read_only(exc):
    """True for the errors of a mode=ro open SQLite cannot serve (it would need to create or
    write a -shm file, or read a -wal it may not read): SQLITE_READONLY_* and SQLITE_CANTOPEN."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (SQLITE_READONLY, SQLITE_CANTOPEN)
    text = str(exc).lower()
    return "readonly" in text or "unable to open" in text


def _open_read_only(path, busy_timeout_ms):
    """(connection, immutable): ``mode=ro``, else ``immutable=1`` when that cannot open it and no
    -wal/-journal file holds bytes. The first statement reads the schema, so a file that cannot
    be read fails here."""
    conn = sqlite3.connect(file_uri(path, "mode=ro"), uri=True, check_same_thread=False)
    try:
        configure(conn, read_only=True, busy_timeout_ms=busy_timeout_ms)  # a recovering writer is waited for
        conn.execute(query("schema_object_count")).fetchone()
        return conn, False
    except sqlite3.OperationalError as exc:
        conn.close()
        if not _cannot_open_read_only(exc):
            raise_as_store_error(exc)
            raise
        refused = exc
    pending = pending_side_file(path)
    if pending is not None:
        name, size = pending
        raise ReadOnlyStoreError(
            f"cannot open {path} read-only: SQLite cannot open it here ({refused}), and {name} holds "
            f"{size:,} bytes that may be changes not yet in the database file, which reading the file "
            f"alone would miss. Someone who may write {path.resolve().parent} must checkpoint it "
            f"first (open the store once read-write, or run: sqlite3 {path} "
            "'PRAGMA wal_checkpoint(TRUNCATE)')") from refused
    conn = sqlite3.connect(file_uri(path, "mode=ro&immutable=1"), uri=True, check_same_thread=False)
    try:
        conn.execute(query("schema_object_count")).fetchone()
    except sqlite3.Error as exc:
        conn.close()
        raise ReadOnlyStoreError(f"cannot open {path} read-only: {refused}; immutable: {exc}") from exc
    return conn, True


class _SchemaImage(typing.NamedTuple):
    """What applying every migration step to an empty database leaves: its objects' SQL, in
    an order that can be replayed (tables, indexes, views, triggers, each in creation order),
    and the rows of each table that has some (the migrations record)."""

    objects: tuple
    rows: tuple  # ((table, columns, rows), ...)


@functools.lru_cache(maxsize=1)
def schema_image():
    """The schema image of this code's steps: the steps applied once per process, the way
    ``migrate`` applies them to an existing database, to an in-memory one, and read back."""
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    try:
        with atomic(scratch):
            _apply_steps(scratch)
        kinds = ("table", "index", "view", "trigger")
        found = scratch.execute(
            "SELECT type, rowid, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'").fetchall()
        objects = tuple(sql for _, _, _, sql in sorted(found, key=lambda o: (kinds.index(o[0]), o[1])))
        tables = [name for kind, _, name, _ in found if kind == "table"]
        rows = []
        for table in tables:
            quoted = quote_identifier(table, tables)
            cursor = scratch.execute(f"SELECT * FROM {quoted}")
            table_rows = tuple(cursor)
            if table_rows:
                rows.append((table, tuple(d[0] for d in cursor.description), table_rows))
        return _SchemaImage(objects, tuple(rows))
    finally:
        scratch.close()


def _is_empty(conn):
    return conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0


def _applied_now():
    """The time a step is recorded as applied, now, in sqlite-utils' format (str of an aware datetime)."""
    return str(datetime.datetime.now(datetime.timezone.utc))


def _create_schema(conn):
    """Give an empty database (caller holds the write transaction) the schema every step
    applied gives it: the image's objects created as SQLite stored them after the steps, its
    rows copied, the steps recorded as applied now. The same result as applying the steps one
    by one (tests/test_schema.py compares them), in a sixth of the time: a table that a step
    altered or rebuilt is created in its final form at once."""
    image = schema_image()
    for sql in image.objects:
        conn.execute(sql)
    tables = [table for table, _, _ in image.rows]
    for table, columns, rows in image.rows:
        if table == MIGRATIONS_TABLE:  # sqlite-utils' record of each step: applied now
            now = _applied_now()
            rows = [tuple(now if c == "applied_at" else v for c, v in zip(columns, row)) for row in rows]
        names = ", ".join(quote_identifier(c, columns) for c in columns)
        conn.executemany(f"INSERT INTO {quote_identifier(table, tables)} ({names}) "
                         f"VALUES ({', '.join('?' * len(columns))})", rows)


_TEMPLATE = {}  # {process id: the template connection} (an SQLite connection is never used across a fork)


def _schema_template():
    """A private in-memory database holding a new store's schema (``_create_schema``), made
    once per process: ``new_memory_database`` copies it."""
    template = _TEMPLATE.get(os.getpid())
    if template is None:
        template = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        with atomic(template):
            _create_schema(template)
        _TEMPLATE[os.getpid()] = template
    return template


def new_memory_database():
    """A new private in-memory database with the store's schema (every step applied), for
    ``CustomerActivityFeatures()`` without a path: a copy of ``_schema_template`` by SQLite's
    online backup (its pages, about a tenth of the cost of creating each object again), the
    steps recorded as applied now. Private to its connection, so no other process can race
    its creation (``migrate`` creates a file's schema under the write lock)."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    _schema_template().backup(conn)
    with atomic(conn):
        conn.execute(f"UPDATE {quote_identifier(MIGRATIONS_TABLE, (MIGRATIONS_TABLE,))} SET applied_at = ?",
                     [_applied_now()])
    return conn


def migrate(conn):
    """Apply pending migration steps; returns the names applied (none when up to date)."""
    check_not_newer(conn)
    pending = pending_steps(conn)
    if not pending:
        return []
    if conn.in_transaction:
        commit(conn)
    try:
        # Take the write lock first (waiting up to the busy timeout), then look
        # again: another process may have migrated meanwhile. Without the lock,
        # processes opening a fresh file at once failed with "database is
        # locked" or "table already exists". The steps nest as savepoints.
        with atomic(conn):
            check_not_newer(conn)
            pending = pending_steps(conn)
            if pending and not applied_steps(conn) and _is_empty(conn):
                _create_schema(conn)
            elif pending:
                _apply_steps(conn)
    except sqlite3.OperationalError as exc:
        if is_read_only_error(exc):
            raise ReadOnlyStoreError(
                f"the database is read-only and its schema needs upgrading ({', '.join(pending)})"
            ) from exc
        raise_as_store_error(exc, conn)
        raise
    return pending


# -- transactions ---------------------------------------------------------------------------
# Every transaction of the store is written with these (no other module issues BEGIN, COMMIT or
# ROLLBACK; store.localtime, below this module, fills its temp tables in one of its own):
# ``atomic`` for a write transaction that is one block of code, ``begin``/``commit``/``rollback``
# where one outlives a block (the buffered single writes of ``store.ingest.Writer``), and
# ``begin_read``/``commit`` for one read snapshot over several statements (temp tables only).
def begin(conn):
    """``BEGIN IMMEDIATE``: take the database's write lock now (waiting up to the busy timeout),
    so that no statement of the transaction can fail later for want of it."""
    conn.execute("BEGIN IMMEDIATE")


def begin_read(conn):
    """A plain (deferred) ``BEGIN``: the statements up to ``commit`` read one snapshot; no write
    lock is taken unless the database is written (temp tables are not)."""
    conn.execute("BEGIN")


def commit(conn):
    """``COMMIT`` the transaction. Raises when none is active: a transaction SQLite rolled back
    itself is never reported as committed."""
    conn.execute("COMMIT")


def rollback(conn):
    """``ROLLBACK`` the transaction, when one is active (SQLite may have rolled it back itself,
    e.g. on a full disk)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


@contextlib.contextmanager
def atomic(conn):
    """One write transaction for the block: ``begin``, then ``commit`` when the block ends, or
    ``rollback`` (and re-raise) when anything is raised, the COMMIT's own error included.
    The block may nest savepoints (the migrations do); it does not translate errors (see
    ``store_errors``)."""
    begin(conn)
    try:
        yield conn
        commit(conn)
    except BaseException:
        rollback(conn)
        raise


@contextlib.contextmanager
def store_errors(conn=None, result=None):
    """SQLite's errors raised in the block leave it as the store's own classes when they have one
    (``raise_as_store_error(exc, conn, result)``); others as they are. Put it around ``atomic``
    so that the transaction is rolled back first."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise_as_store_error(exc, conn, result)
        raise


# -- SQLite's errors as the store's own ------------------------------------------------------
def is_read_only_error(exc):
    """True for SQLITE_READONLY: a write on a read-only connection, file or directory."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == SQLITE_READONLY:
        return True
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text


def is_full_error(exc):
    """True for SQLITE_FULL: the disk is full or PRAGMA max_page_count was reached."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code == SQLITE_FULL or "database or disk is full" in str(exc).lower()


def is_locked_error(exc):
    """True for SQLITE_BUSY: a lock held by another connection outlasted the busy timeout."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF == SQLITE_BUSY
    return "database is locked" in str(exc).lower()


def store_error(exc, conn=None, result=None):
    """The store's own exception for an sqlite3 error, or None when it has none.

    The one place SQLite's errors are translated: SQLITE_READONLY -> ReadOnlyStoreError,
    SQLITE_FULL -> StorageFullError (carrying ``result``, the counts committed before),
    SQLITE_BUSY -> DatabaseLockedError (naming what holds the lock when ``conn`` lets it
    find out, see ``describe_lock``).
    """
    if not isinstance(exc, sqlite3.OperationalError):
        return None
    if is_read_only_error(exc):
        return ReadOnlyStoreError(f"this store is read-only: {exc}")
    if is_full_error(exc):
        return StorageFullError(
            f"the database is full ({exc}): the batch in flight was rolled back, every batch committed "
            "before it is intact; free space (or raise PRAGMA max_page_count) and run the same load "
            "again to continue", result)
    if is_locked_error(exc):
        return describe_lock(conn)
    return None


def raise_as_store_error(exc, conn=None, result=None):
    """Raise ``store_error(exc, conn, result)`` (from ``exc``) when there is one; else return, and
    the caller re-raises ``exc``."""
    error = store_error(exc, conn, result)
    if error is not None:
        raise error from exc


# -- the files of a database ---------------------------------------------------------
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")  # SQLite's side files of a database file
LOCK_INFIX = "-lock-"  # lock files of the store: <database file>-lock-<name> (store.locks)


def database_file(conn):
    """The main database's file (absolute path text), or None for an in-memory or temporary database."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return file or None
    return None


# -- who holds the lock ---------------------------------------------------------------------------
_WAL_WRITE_LOCK_BYTE = 120  # the byte of the -shm file a WAL-mode writer locks (SQLite's WAL_WRITE_LOCK)
_PENDING_BYTE = 0x40000000  # the bytes of the database file a rollback-journal writer locks
_RESERVED_BYTE = _PENDING_BYTE + 1
PROC_LOCKS = "/proc/locks"


def lock_holder(path):
    """'process PID (command line)' holding the write lock of the database file ``path``, from the
    POSIX locks listed in /proc/locks (Linux: SQLite locks byte 120 of the -shm file in WAL mode,
    the reserved/pending bytes of the database file otherwise); None when it cannot tell."""
    wanted = {}
    for file, first, last in ((str(path) + "-shm", _WAL_WRITE_LOCK_BYTE, _WAL_WRITE_LOCK_BYTE),
                              (str(path), _PENDING_BYTE, _RESERVED_BYTE)):
        try:
            st = os.stat(file)
        except OSError:
            continue
        wanted[f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"] = (first, last)
    if not wanted:
        return None
    try:
        with open(PROC_LOCKS, encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 8 or fields[3] != "WRITE":  # '->': a waiter, not a holder
            continue
        span = wanted.get(fields[5])
        try:
            pid, start = int(fields[4]), int(fields[6])
            end = float("inf") if fields[7] == "EOF" else int(fields[7])
        except ValueError:
            continue
        if span is None or end < span[0] or start > span[1] or pid <= 0:
            continue
        if pid == os.getpid():
            return f"another connection of this process (pid {pid})"
        return f"process {pid} ({_command_line(pid)})"
    return None


def _command_line(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
    except OSError:
        return "command line unknown"
    text = " ".join(w.decode("utf-8", "replace") for w in words if w)
    if len(text) > 160:  # the program and the end (the command and its options) say the most
        text = text[:60] + " ... " + text[-95:]
    return text or "command line unknown"


def _running_loads(conn):
    """Loads recorded as running, read without waiting for any lock; [] when they cannot be read."""
    try:
        waited = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            return list(conn.execute(query("running_loads"), {"limit": 3}))
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(waited)}")
    except sqlite3.Error:
        return []


def describe_lock(conn=None):
    """A DatabaseLockedError for a lock that outlasted the busy timeout of ``conn``: what holds
    the lock when the store can tell (a process from /proc/locks; loads recorded as running),
    and what to do."""
    path = timeout = holder = None
    loads = []
    if conn is not None:
        try:
            path = database_file(conn)
            timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0] / 1000
        except sqlite3.Error:
            pass
        loads = _running_loads(conn)
    if path:
        holder = lock_holder(path)
    text = "database is locked: another connection held the lock"
    text += f" on {path}" if path else ""
    text += f" for longer than the busy timeout ({timeout:g} s)" if timeout is not None else \
        " for longer than the busy timeout"
    if holder:
        text += f"; it is held by {holder}"
    if loads:
        text += "; loads recorded as running (in progress, or interrupted): " + ", ".join(
            f"load {load_id} ({kind} from {source!r}{f' for shop {shop!r}' if shop else ''}, started "
            f"{started}, {rows:,} rows so far)" for load_id, shop, kind, source, started, rows in loads)
    if not holder and not loads:
        text += ("; the store cannot tell which connection holds it (a materialize or refresh holds "
                 "the write lock for its whole run)")
    text += ("; wait for it to finish and retry, or open the store with a longer busy timeout "
             "(busy_timeout=SECONDS, caf --busy-timeout SECONDS)")
    return DatabaseLockedError(text, path=path, timeout_seconds=timeout, holder=holder)


# -- the store's own files: lock files, and outputs that must not overwrite them ---------------
def lock_path(conn, name):
    """The path of the store's lock file ``name`` next to its database file, or None in memory."""
    file = database_file(conn)
    return None if file is None else os.path.realpath(file) + LOCK_INFIX + name


def _store_file(target, file):
    """The file of the database ``file`` that writing ``target`` would write (the database, one of
    its side files or a lock file), or None. ``target``: a path, or an open file descriptor."""
    real_file = os.path.realpath(file)
    if isinstance(target, int):
        for candidate in (real_file,) + tuple(real_file + s for s in SIDE_SUFFIXES):
            try:
                if os.path.samestat(os.fstat(target), os.stat(candidate)):
                    return candidate
            except OSError:
                continue
        return None
    real_target = os.path.realpath(target)
    target_exists = os.path.exists(target)
    try:
        same_dir = os.path.samefile(os.path.dirname(real_target), os.path.dirname(real_file))
    except OSError:
        return None
    name, base = os.path.basename(real_target).casefold(), os.path.basename(real_file).casefold()
    for suffix in ("",) + SIDE_SUFFIXES:
        candidate = real_file + suffix
        try:
            if os.path.exists(candidate):
                # any spelling of an existing file: relative, symlink, hard link, another case
                if target_exists and os.path.samefile(target, candidate):
                    return candidate
            elif not target_exists and same_dir and name == base + suffix:
                return candidate  # neither exists yet: the same name (without case) in the same directory
        except OSError:
            continue
    return real_target if same_dir and name.startswith(base + LOCK_INFIX) else None


def check_output_file(conn, path):
    """Refuse an output path (or file descriptor) that is a file of ``conn``'s databases (main or
    attached): the database itself under any spelling, or its -wal/-shm/-journal or lock files.
    Raises ``OutputIsDatabaseError``; returns ``path`` otherwise."""
    target = path if isinstance(path, int) else os.fspath(path)
    for _, _, file in conn.execute("PRAGMA database_list"):
        found = _store_file(target, file) if file else None
        if found is not None:
            what = (f"the store's database {file}" if found == os.path.realpath(file)
                    else f"{found}, a side file of the store's database {file}")
            raise OutputIsDatabaseError(f"refusing to write {target}: it is {what}; "
                                        "choose another output file. Nothing was written.")
    return path
