"""Connections, pragmas and schema migrations: the bottom of the stack.

Connection discipline: a store instance owns one connection, used as the single
writer of its database (writes run in ``BEGIN IMMEDIATE`` transactions, see
``store.ingest``). Extra readers are opened read-only (``open_reader``). Every
connection has WAL journaling (file databases) and a busy timeout, so a reader
waits for a writer instead of failing with "database is locked".
"""

import contextlib
import importlib.util
import os
import sqlite3
from pathlib import Path

import sqlite_utils

from .errors import OutputIsDatabaseError, ReadOnlyStoreError, SchemaTooNewError, StoreError, UnknownNameError
from .resources import resource_dir

BUSY_TIMEOUT_MS = 30_000
MIGRATIONS_TABLE = "_sqlite_migrations"


def quote_identifier(name, allowed):
    """Quote an identifier for SQL text, after checking it against an allowlist.

    This is the only place identifiers are put into SQL text; values are always
    bound parameters.
    """
    if name not in allowed:
        raise UnknownNameError(f"{name!r} is not one of: {', '.join(sorted(map(str, allowed)))}")
    return '"' + str(name).replace('"', '""') + '"'


def _load_migrations():
    path = resource_dir("migrations") / "migrations.py"
    spec = importlib.util.spec_from_file_location("_caf_migrations", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.migrations


MIGRATIONS = _load_migrations()


def known_steps():
    """Names of every migration step this code knows, in order."""
    return [m.name for m in MIGRATIONS._migrations]


def configure(conn, *, read_only=False):
    """Apply the store's pragmas to a connection."""
    conn.isolation_level = None  # we issue BEGIN IMMEDIATE / COMMIT ourselves
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
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


def connect(path, *, read_only=False):
    """Open a connection to a database file (created if missing unless read-only)."""
    path = Path(path)
    if read_only:
        uri = path.resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False)
    return configure(conn, read_only=read_only)


def open_reader(path):
    """A read-only connection for concurrent readers of a file database."""
    return connect(path, read_only=True)


def applied_steps(conn):
    """Names of the steps of our migration set recorded in the database."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [MIGRATIONS_TABLE]
    ).fetchone()
    if not exists:
        return []
    rows = conn.execute(
        "SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY rowid",
        [MIGRATIONS.name],
    )
    return [name for (name,) in rows]


def pending_steps(conn):
    done = set(applied_steps(conn))
    return [name for name in known_steps() if name not in done]


def check_not_newer(conn):
    """Refuse a database whose schema has steps this code does not know."""
    unknown = [name for name in applied_steps(conn) if name not in set(known_steps())]
    if unknown:
        raise SchemaTooNewError(
            "this database was written by a newer version of customer-activity-features "
            f"(unknown schema steps: {', '.join(unknown)}); upgrade the library to open it. "
            "The database was not modified."
        )


def check_file_not_newer(path):
    """Refuse a database file with unknown schema steps without touching it at all.

    Reads through an ``immutable=1`` connection: no lock, no -wal/-shm side
    files, so a refused file (even one in WAL mode opened read-only) stays
    byte-for-byte as it was. A file that cannot be read this way (e.g. being
    written right now) is left to the normal check on the real connection.
    """
    uri = Path(path).resolve().as_uri() + "?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error:
        return
    try:
        check_not_newer(conn)
    except sqlite3.DatabaseError:
        pass
    finally:
        conn.close()


def migrate(conn):
    """Apply pending migration steps; returns the names applied (none when up to date)."""
    check_not_newer(conn)
    pending = pending_steps(conn)
    if not pending:
        return []
    if conn.in_transaction:
        conn.execute("COMMIT")
    database = sqlite_utils.Database(conn, execute_plugins=False)
    try:
        # Take the write lock first (waiting up to the busy timeout), then look
        # again: another process may have migrated meanwhile. Without the lock,
        # processes opening a fresh file at once failed with "database is
        # locked" or "table already exists". The steps nest as savepoints.
        conn.execute("BEGIN IMMEDIATE")
        try:
            check_not_newer(conn)
            pending = pending_steps(conn)
            if pending:
                MIGRATIONS.apply(database)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc) or "read-only" in str(exc):
            raise ReadOnlyStoreError(
                f"the database is read-only and its schema needs upgrading ({', '.join(pending)})"
            ) from exc
        raise
    return pending


# -- the files of a database ---------------------------------------------------------
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")  # SQLite's side files of a database file
LOCK_INFIX = "-lock-"  # lock files of the store: <database file>-lock-<name> (store.locks)


def database_file(conn):
    """The main database's file (absolute path text), or None for an in-memory or temporary database."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return file or None
    return None


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
