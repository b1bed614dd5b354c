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


class StorageFullError(StoreError):
    """The database file or its disk is full (SQLITE_FULL, or ``PRAGMA max_page_count``
    reached). The transaction in flight was rolled back: every batch committed
    before it is intact, none of it is half-written. Free space (or raise the
    limit) and run the same load again: it continues where it stopped.
    ``result``, when set, holds the counts of what was committed before."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result
