"""Exception classes. Every error the store raises on purpose is one of these."""


def describe(exc, limit=150):
    """'TypeName: message' of an exception, at most ``limit`` characters; never raises (an
    exception raised by a hostile value may have a ``__str__`` that raises too)."""
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:
        text = type(exc).__name__
    return text[:limit]


class StoreError(Exception):
    """Base class for errors raised by the customer-activity store."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer version of this library.

    The database is left untouched; upgrade the library to open it.
    """


class ReadOnlyStoreError(StoreError):
    """A write was attempted on a database opened (or only openable) read-only."""


class NotAStoreError(StoreError):
    """The file is not a customer-activity-features store: not an SQLite database, an empty
    file where only a command that creates a store may use it, or another application's
    SQLite database (schema objects, but no record of this store's schema steps).

    Raised before anything is written: the file is left byte-for-byte as it was.
    """


class DatabaseLockedError(StoreError):
    """Another connection held the lock the call needed for longer than the busy timeout.

    Not a ``sqlite3.OperationalError`` (like the store's other errors; SQLite's error is
    ``__cause__``): catch this class, or ``StoreError``. The message says what holds the lock
    when the store can tell (a process found in ``/proc/locks``, loads recorded as running)
    and what to do: wait for it and retry, or open the store with a longer ``busy_timeout``.
    ``path`` is the database file (None in memory), ``timeout_seconds`` the busy timeout
    that ran out, ``holder`` the description of the holder (None when unknown).
    """

    def __init__(self, message, *, path=None, timeout_seconds=None, holder=None):
        super().__init__(message)
        self.path = path
        self.timeout_seconds = timeout_seconds
        self.holder = holder


class UnknownNameError(StoreError, ValueError):
    """An identifier (feature, window, table, column, kind) is not in an allowlist."""


class InvalidEventError(ValueError):
    """Raised by ``add_*`` in strict mode; ``field`` names the offending field."""

    def __init__(self, field, reason):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class LoadError(StoreError, ValueError):
    """A file could not be loaded as a whole (missing, unknown kind or format,
    missing columns, bad option). Bad rows never raise: they are rejected."""


class RejectedRatioError(LoadError):
    """A load stopped because more than ``max_rejected_ratio`` of the rows read
    were rejected (checked before each batch is committed). The batch that
    crossed the limit is not written; batches committed before stay, and the
    load (``load_id``) resumes after them when run again with a higher limit or
    none. ``read`` and ``rejected`` are the counts that crossed it."""

    def __init__(self, message, load_id=None, read=0, rejected=0):
        super().__init__(message)
        self.load_id = load_id
        self.read = read
        self.rejected = rejected


class StorageFullError(StoreError):
    """The database file or its disk is full (SQLITE_FULL, or ``PRAGMA max_page_count``
    reached). The transaction in flight was rolled back: every batch committed
    before it is intact, none of it is half-written. Free space (or raise the
    limit) and run the same load again: it continues where it stopped.
    ``result``, when set, holds the counts of what was committed before."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result


class LoadInProgressError(StoreError):
    """Another process is loading the same source (same bytes, kind and options) into this
    store right now, and the load was asked not to wait (``wait=False``, ``caf load --no-wait``)
    or waited longer than it was allowed to. ``holder`` is what that process recorded:
    {'pid', 'host', 'since'} (any may be missing). A load killed mid-way holds nothing: it is
    resumed by the next run, never reported as in progress."""

    def __init__(self, message, holder=None):
        super().__init__(message)
        self.holder = dict(holder or {})


class OutputIsDatabaseError(StoreError, ValueError):
    """An output file (``export``, ``caf export``) is the store's own database, under any
    spelling (relative path, symlink, hard link, another case), or one of its side files
    (``-wal``, ``-shm``, ``-journal``). Nothing was written; the database is untouched."""


class FamilyDefinitionError(StoreError):
    """A feature family file of ``sql/`` is malformed: its header or a column comment cannot be
    read (store/registry.py). The message names the file, the line and the reason."""

    def __init__(self, source, line, reason):
        super().__init__(f"{source}, line {line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


class OutputNotEmptyError(StoreError, ValueError):
    """An output directory (``export_events``, ``caf export-events``) is not empty and
    ``overwrite`` was not given, or it holds files that are not an earlier export. Nothing
    was written."""


class ImportRefusedError(StoreError, ValueError):
    """A feature file (``import_features``, ``caf import-features``) does not match the store: its
    columns or their types differ from ``customer_features``', it holds another shop's rows,
    more than one as_of, or a customer twice. Nothing was written."""


class EngineError(StoreError):
    """Another engine (DuckDB, Spark) cannot run the family SQL: its optional extra is not
    installed, a construct of a family has no exact translation, or the engine failed."""


class NoMaterializationError(StoreError):
    """A command that reads the materialised table (``caf report``) found no materialisation
    of the shop: run ``materialize`` first."""


class MissingExtraError(StoreError, ImportError):
    """A method or command needs an optional extra that is not installed (``[pandas]`` for the
    DataFrame, Arrow and Parquet methods, ``[duckdb]`` for ``engine="duckdb"``, ``[serve]`` for
    ``caf serve``, ``[report]`` for ``caf report``, ``[spark]``). The message names the extra and
    the pip command that installs it; ``extra`` is its name. Raised by ``require_extra``."""

    def __init__(self, message, extra):
        super().__init__(message)
        self.extra = extra


def require_extra(extra, modules, what="this"):
    """The modules named ``modules`` (a tuple of dotted names), imported in order, as a list; the
    first one missing raises ``MissingExtraError`` naming the extra that installs it. The one
    check of every optional extra."""
    import importlib

    out = []
    for name in modules:
        try:
            out.append(importlib.import_module(name))
        except ImportError as exc:
            raise MissingExtraError(f"{what} needs the optional extra [{extra}] ({name} is missing): "
                                    f"pip install 'customer-activity-features[{extra}]'", extra) from exc
    return out
