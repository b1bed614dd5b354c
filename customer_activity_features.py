"""customer-activity-features: a persistent feature store for e-commerce customer activity.

The public API. ``CustomerActivityFeatures`` keeps events in indexed SQLite
tables and computes every feature with a named, parameterized SQL query from
``sql/``; ``calculate_purchase_features`` and ``calculate_session_features``
compute the same features over plain lists of dicts.

    >>> from customer_activity_features import CustomerActivityFeatures
    >>> with CustomerActivityFeatures("shop.db") as store:
    ...     store.add_purchase("c1", 25.0, "2024-05-01T10:00:00Z")
    ...     store.get_total_purchase_value("c1", as_of="2024-06-01T00:00:00Z")
"""

from __future__ import annotations

import functools
import sqlite3
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeGuard, TypeVar, Union, cast, overload

from store import db as _db
from store import localtime as _localtime
from store import rfm as _rfm
from store import runs as _runs
from store import catalog as _catalog
from store import engines as _engines
from store import features as _features
from store import export as _export
from store import materialize as _materialize
from store import parquet as _parquet
from store.spark import materialize_on_spark  # noqa: F401  (public: docs/scale-out.md)
from store import parallel as _parallel
from store import plan as _plan
from store import refresh as _refresh
from store import point_in_time as _point_in_time
from store import timeutil
from store import user_families as _user_families
from store import validate as _validate
from store.errors import (  # noqa: F401  (re-exported)
    DatabaseLockedError,
    EngineError,
    FamilyDefinitionError,
    ImportRefusedError,
    InvalidEventError,
    LoadError,
    LoadInProgressError,
    MissingExtraError,
    NotAStoreError,
    OutputIsDatabaseError,
    OutputNotEmptyError,
    ReadOnlyStoreError,
    RejectedRatioError,
    SchemaTooNewError,
    StorageFullError,
    StoreError,
    UnknownNameError,
)
from store.features import (  # noqa: F401  (documented constants, re-exported)
    CART_MAX_ABANDONED,
    CART_MIN_CONVERSION_RATIO,
    DECLINING_RATIO,
    DEFAULT_FREQUENCY_DAYS,
    FeatureReader,
    LONG_WINDOW_DAYS,
    RECENCY_CONCERN_DAYS,
    SHORT_WINDOW_DAYS,
    SUPPORT_ESCALATION_RATIO,
    SUPPORT_MAX_TICKETS,
    TRADEOFF_KEYS,
)
from store import ingest as _ingest
from store.ingest import IngestResult, Writer  # noqa: F401
from store.rfm import CalibrationHoldoutRow, RFMRow  # noqa: F401  (the rows rfm_summary/... yield)

if TYPE_CHECKING:
    import sqlite_utils  # at run time only when the caller passes a Database (_is_sqlite_utils_database)

if TYPE_CHECKING:  # the extra [pandas]; imported by the methods that need it, never here
    import pandas
    import pyarrow

    from store.loaders import LoadReport

# -- the types of the public API (docs/typing.md) ------------------------------------------------
#: An instant: a datetime (naive: local time), a date (local midnight) or ISO-8601 text.
TimeLike = Union[datetime, date, str]
#: A customer id: text, or an integer (17850 and 17850.0 are the customer '17850').
CustomerId = Union[str, int, float]
#: One record of a bulk call (``add_purchases``, ...): a dict keyed by the single call's parameters.
Record = Mapping[str, Any]
#: A flat dict of features (``get_all_features``, a row of ``features_at``, ...).
FeatureDict = dict[str, Any]
#: What a bulk call's ``progress`` receives after every batch: the running IngestResult (a load's:
#: its LoadReport).
Progress = Callable[[Any], object]
#: A feature family file, or a directory of them, or several.
FeaturePaths = Union[str, Path, Iterable[Union[str, Path]]]
_R = TypeVar("_R")
_T = TypeVar("_T")

__all__ = [
    "CustomerActivityFeatures",
    "calculate_purchase_features",
    "calculate_session_features",
    "IngestResult",
    "StoreError",
    "SchemaTooNewError",
    "ReadOnlyStoreError",
    "NotAStoreError",
    "DatabaseLockedError",
    "StorageFullError",
    "UnknownNameError",
    "FamilyDefinitionError",
    "InvalidEventError",
    "LoadError",
    "LoadInProgressError",
    "RejectedRatioError",
    "OutputIsDatabaseError",
    "OutputNotEmptyError",
    "ImportRefusedError",
    "MissingExtraError",
    "materialize_on_spark",
]

# The numeric, non-boolean top-level features of get_all_features that get_cohort_summary averages
# (read from the registry: store.features.SUMMARY_KEYS); a store with user families also averages
# their integer and real columns.
SUMMARY_FEATURES = _features.SUMMARY_KEYS


class _Legacy:
    def __repr__(self) -> str:
        return "<not given>"


_LEGACY = _Legacy()  # features_at's days= was not given: the current row shape


_PLAIN_RESULTS = (bool, int, float, str, dict, list, tuple)  # never iterators (add_* return bool)


class _class_or_instance(Generic[_R]):
    """A method callable on the class (``self`` None) or on an instance."""

    def __init__(self, function: Callable[[Any], _R]) -> None:
        self.function = function
        functools.update_wrapper(cast(Any, self), function)

    def __get__(self, obj: Any, cls: type | None = None) -> Callable[[], _R]:
        return functools.partial(self.function, obj)


def _translated(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def translated(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            _db.raise_as_store_error(exc, getattr(self, "conn", None))
            raise
        if result is None or isinstance(result, _PLAIN_RESULTS):  # the common case, checked cheaply
            return result
        if isinstance(result, Iterator):  # rows streamed after the call returned
            return _translated_rows(self.conn, result)
        return result

    return translated


def _translated_rows(conn: sqlite3.Connection, rows: Iterator[_T]) -> Iterator[_T]:
    try:
        yield from rows
    except sqlite3.OperationalError as exc:
        _db.raise_as_store_error(exc, conn)
        raise


def _translating_errors(cls: type[_T]) -> type[_T]:
    """The API boundary: SQLite's errors that mean something for the store (read-only, full,
    locked) leave every public method, and every iterator one returns, as the store's own
    classes (``store.db.store_error``), whichever layer below raised them."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and callable(member) and not isinstance(member, (staticmethod, classmethod)):
            setattr(cls, name, _translated(member))
    return cls


def _is_sqlite_utils_database(db: Any) -> TypeGuard[sqlite_utils.Database]:
    """Whether ``db`` is a ``sqlite_utils.Database``, without importing sqlite-utils (a second
    when pandas is installed): a caller holding one has imported it already."""
    module = sys.modules.get("sqlite_utils")
    return module is not None and isinstance(db, module.Database)


@_translating_errors
class CustomerActivityFeatures:
    """Customer-activity events in SQLite, and the features computed from them.

    ``db``: ``None`` for a private in-memory store, a path, an open ``sqlite3.Connection``
    or a ``sqlite_utils.Database``. Opening applies pending schema migrations; a database
    written by a newer version is refused with ``SchemaTooNewError``. ``shop_id`` scopes
    every read and write to one shop. With ``strict=True`` invalid events raise
    ``InvalidEventError`` (a ``ValueError``) instead of being recorded as rejected.

    A path is examined before anything is written: a missing or empty file becomes a store
    (unless ``create=False``); a file that is not an SQLite database, or another
    application's SQLite database, is refused with ``NotAStoreError`` and left untouched.
    (A connection you pass is yours: the store's tables are created in it whatever else it
    holds.) ``read_only=True``, or a file or directory this process may not write, opens
    the file read-only: reads are served, writes raise ``ReadOnlyStoreError``; in a
    read-only directory through ``immutable=1`` (``immutable`` is then True; see
    README "Opening a database file"). ``busy_timeout``: seconds a call waits for a lock held by
    another connection before it raises ``DatabaseLockedError`` (default 30).
    """

    def __init__(self, db: str | Path | sqlite3.Connection | sqlite_utils.Database | None = None, *,
                 shop_id: str = "", strict: bool = False, timezone: str = "UTC", read_only: bool = False,
                 create: bool = True, busy_timeout: float | None = None,
                 feature_paths: FeaturePaths | None = None) -> None:
        if not isinstance(shop_id, str):
            raise TypeError(f"shop_id must be a string, got {type(shop_id).__name__}")
        if read_only and not isinstance(db, (str, Path)):
            raise TypeError("read_only=True needs a database path")
        if not create and db is None:
            raise TypeError("create=False needs a database path or connection")
        busy_ms = _db.check_busy_timeout(busy_timeout)
        if isinstance(feature_paths, (str, bytes, Path)):
            feature_paths = [feature_paths]
        # The store's feature registry: the built-in families plus the user's family files,
        # checked before the database is opened (a refused file: FamilyDefinitionError).
        self.registry = _user_families.load(feature_paths)
        self.read_only = bool(read_only)
        self.immutable = False
        # The store's timezone (IANA name): periods, times of day and weekdays are local to it.
        self.timezone = _localtime.check_timezone(timezone)
        self.shop_id = shop_id
        self.strict = strict
        self._owns_connection = False
        if db is None:
            conn = _db.new_memory_database()
            self._owns_connection = True
            self.path = None
        elif _is_sqlite_utils_database(db):
            conn = db.conn
            self.path = None
        elif isinstance(db, sqlite3.Connection):
            conn = db
            self.path = None
        elif isinstance(db, (str, Path)):
            self.path = Path(db)
            # Examined, opened (read-only when asked or when we may not write) and configured.
            opened = _db.open_store(self.path, read_only=read_only, create=create and not read_only,
                                    busy_timeout_ms=busy_ms)
            conn, self.read_only, self.immutable = opened.conn, opened.read_only, opened.immutable
            self._owns_connection = True
        else:
            raise TypeError(
                "db must be None, a path, a sqlite3.Connection or a sqlite_utils.Database, "
                f"got {type(db).__name__}"
            )
        try:
            try:
                if self.path is None:  # a connection: checked and configured here
                    if not create:
                        _db.check_is_store(_db.examine(conn), "the connection's database", allow_new=False)
                    _db.check_not_newer(conn)  # before any pragma or write
                    _db.configure(conn, busy_timeout_ms=busy_ms)
                if self.read_only:
                    _db.check_up_to_date(conn)  # nothing to upgrade: a read-only open writes nothing
                else:
                    _db.migrate(conn)
                    _write_catalog(conn, self.registry)
                _localtime.install(conn, self.timezone)  # temp tables only: fine read-only
            except sqlite3.OperationalError as exc:
                _db.raise_as_store_error(exc, conn)
                raise
        except BaseException:
            if self._owns_connection:
                conn.close()
            raise
        self.conn = conn
        self._writer = Writer(conn, shop_id, strict=strict, use_timer=self._owns_connection)
        self._reader = FeatureReader(conn, shop_id, self.registry)
        self._closed = False

    # -- lifecycle -------------------------------------------------------------
    def flush(self) -> None:
        """Commit every buffered event now."""
        self._writer.commit()

    def close(self) -> None:
        """Commit buffered events and close the connection (if the store opened it)."""
        if self._closed:
            return
        self._writer.commit()
        self._closed = True
        if self._owns_connection:
            self.conn.close()

    def __enter__(self) -> CustomerActivityFeatures:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "memory/connection"
        return f"<CustomerActivityFeatures {where} shop_id={self.shop_id!r}>"

    # -- ingest: single events -------------------------------------------------
    def add_purchase(self, customer_id: CustomerId, order_value: float, purchase_date: TimeLike | None = None, *,
                     order_id: str | int | None = None) -> bool:
        """Store a purchase; True when stored, False when rejected or already stored."""
        return self._writer.add(
            "purchase", (customer_id, order_value, purchase_date, order_id))

    def add_session(self, customer_id: CustomerId, duration_seconds: float | None, device_type: str | None = None,
                    session_date: TimeLike | None = None, *, session_id: str | int | None = None,
                    session_start: TimeLike | None = None, session_end: TimeLike | None = None,
                    page_views: int | None = None, browser: str | None = None, referrer: str | None = None,
                    channel: str | None = None) -> bool:
        """Store a session; a missing device is 'unknown'.

        Optional extras (docs/behavior.md): session_start/session_end (times; a None
        duration is derived from them, a None session_date is session_start),
        page_views (count), browser, referrer and channel (text).
        """
        return self._writer.add(
            "session", (customer_id, duration_seconds, device_type, session_date, session_id,
                        session_start, session_end, page_views, browser, referrer, channel))

    def add_interaction(self, customer_id: CustomerId, event_type: str, event_date: TimeLike | None = None, *,
                        session_id: str | int | None = None, page_type: str | None = None,
                        product_id: str | int | None = None, category: str | None = None,
                        search_query: str | None = None, view_duration_seconds: float | None = None,
                        device_type: str | None = None, event_id: str | int | None = None) -> bool:
        """Store a clickstream interaction; event_type is one of store.validate.INTERACTION_TYPES."""
        return self._writer.add(
            "interaction", (customer_id, event_type, event_date, session_id, page_type, product_id, category,
                            search_query, view_duration_seconds, device_type, event_id))

    def add_attribution(self, customer_id: CustomerId, order_id: str | int, source: str, medium: str | None = None,
                        attribution_date: TimeLike | None = None) -> bool:
        """Store the marketing source (and medium) of an order; one attribution per order id."""
        return self._writer.add(
            "attribution", (customer_id, order_id, source, medium, attribution_date))

    def add_cart_event(self, customer_id: CustomerId, event_type: str, cart_value: float | None = None,
                       event_date: TimeLike | None = None, *, cart_id: str | int | None = None) -> bool:
        """Store a cart event; event_type is 'abandoned' or 'converted', the value may be None."""
        return self._writer.add(
            "cart_event", (customer_id, event_type, cart_value, event_date, cart_id))

    def add_support_interaction(self, customer_id: CustomerId, ticket_id: str | int,
                                response_time_hours: float | None = None, escalated: bool = False,
                                interaction_date: TimeLike | None = None) -> bool:
        """Store a support interaction; the ticket id is its event id."""
        return self._writer.add(
            "support_interaction", (customer_id, ticket_id, response_time_hours, escalated, interaction_date))

    def set_customer_metadata(self, customer_id: CustomerId, metadata: Mapping[str, Any] | None, *,
                              created_at: TimeLike | None = None) -> bool:
        """Replace a customer's metadata (stored as JSON; non-dict metadata becomes {}).

        ``created_at`` (a time) records when the account was created; None keeps
        the stored creation time.
        """
        payload = (_payload(customer_id=customer_id, metadata=metadata) if created_at is None else
                   _payload(customer_id=customer_id, metadata=metadata, created_at=created_at))
        return self._writer.set_metadata(customer_id, metadata, payload, created_at=created_at)

    # -- ingest: bulk ------------------------------------------------------------
    def add_purchases(self, records: Iterable[Record], *, batch_size: int = 5000,
                         progress: Progress | None = None) -> IngestResult:
        """Stream dicts with keys customer_id, order_value, purchase_date, order_id."""
        return self._writer.bulk("purchase", records, batch_size=batch_size, progress=progress)

    def add_sessions(self, records: Iterable[Record], *, batch_size: int = 5000,
                        progress: Progress | None = None) -> IngestResult:
        """Stream dicts with keys customer_id, duration_seconds, device_type, session_date, session_id
        (and optionally session_start, session_end, page_views, browser, referrer, channel)."""
        return self._writer.bulk("session", records, batch_size=batch_size, progress=progress)

    def add_interactions(self, records: Iterable[Record], *, batch_size: int = 5000,
                            progress: Progress | None = None) -> IngestResult:
        """Stream dicts with keys customer_id, event_type, event_date, session_id, page_type, product_id,
        category, search_query, view_duration_seconds, device_type, event_id (all but the first two optional)."""
        return self._writer.bulk("interaction", records, batch_size=batch_size, progress=progress)

    def add_attributions(self, records: Iterable[Record], *, batch_size: int = 5000,
                            progress: Progress | None = None) -> IngestResult:
        """Stream dicts with keys customer_id, order_id, source, medium, attribution_date."""
        return self._writer.bulk("attribution", records, batch_size=batch_size, progress=progress)

    def add_cart_events(self, records: Iterable[Record], *, batch_size: int = 5000,
                           progress: Progress | None = None) -> IngestResult:
        """Stream dicts with keys customer_id, event_type, cart_value, event_date, cart_id."""
        return self._writer.bulk("cart_event", records, batch_size=batch_size, progress=progress)

    def add_support_interactions(self, records: Iterable[Record], *, batch_size: int = 5000,
                                    progress: Progress | None = None) -> IngestResult:
        """Stream dicts with keys customer_id, ticket_id, response_time_hours, escalated, interaction_date."""
        return self._writer.bulk("support_interaction", records, batch_size=batch_size, progress=progress)

    def add_refund(self, customer_id: CustomerId, refund_value: float, refund_date: TimeLike | None = None, *,
                   refund_id: str | int | None = None, order_id: str | int | None = None) -> bool:
        """Store a refund or cancellation (refund_value >= 0); refund_id is the credit note /
        cancellation number, order_id the refunded order when known."""
        return self._writer.add(
            "refund", (customer_id, refund_value, refund_date, refund_id, order_id))

    def add_refunds(self, records: Iterable[Record], *, batch_size: int = 5000,
                       progress: Progress | None = None) -> IngestResult:
        """Stream dicts with keys customer_id, refund_value, refund_date, refund_id, order_id."""
        return self._writer.bulk("refund", records, batch_size=batch_size, progress=progress)

    def load_history(self, kind: str, records: Iterable[Record], *, batch_size: int = 10_000,
                     progress: Progress | None = None) -> IngestResult:
        """Load a large history of one kind of event (``'purchase'``, ``'session'``, ``'cart_event'``,
        ``'support_interaction'``, ``'refund'``, ``'interaction'``, ``'attribution'``): the records
        of the matching ``add_*`` method, validated and counted the same way, written in one
        transaction (all or nothing). Fastest into an empty store with records sorted by customer
        and time; see docs/first_load.md."""
        if kind not in _ingest.KINDS:
            raise UnknownNameError(f"{kind!r} is not an event kind; expected one of: {', '.join(_ingest.KINDS)}")
        return self._writer.load_history(kind, records, batch_size=batch_size, progress=progress)

    def load(self, kind: str, source: str | Path, *, fmt: str | None = None, mapping: Mapping[str, str] | None = None,
             date_format: str | None = None, timezone: str | None = None, progress: Progress | None = None,
             encoding: str | None = None, delimiter: str | None = None, max_rejected_ratio: float | None = None,
             wait: bool | float = True) -> LoadReport:
        """Load a dump file (or '-' for stdin) of ``kind``; see ``store.loaders.load_into`` and docs/loading.md.

        ``encoding``: the file's text encoding (e.g. ``'cp1252'``; default UTF-8); ``delimiter``: the
        CSV field delimiter (default sniffed); ``max_rejected_ratio``: stop with ``RejectedRatioError``
        once more than this share of the rows read is rejected; ``wait``: a load of the same source
        already running in another process is waited for (True), refused with
        ``LoadInProgressError`` (False) or waited for at most that many seconds."""
        from store import loaders as _loaders
        return _loaders.load_into(self._writer, kind, source, read_only=self.read_only, fmt=fmt, mapping=mapping,
                                  date_format=date_format, timezone=timezone, progress=progress,
                                  encoding=encoding, delimiter=delimiter, max_rejected_ratio=max_rejected_ratio,
                                  wait=wait)

    def set_customers_metadata(self, records: Iterable[Record], *, batch_size: int = 5000) -> IngestResult:
        """Stream dicts with keys customer_id and metadata (and optionally created_at)."""
        return self._writer.bulk_metadata(records, batch_size=batch_size)

    # -- reads -------------------------------------------------------------------
    def _read(self, customer_id: CustomerId | None, as_of: TimeLike | None) -> tuple[str | None, int]:
        """(normalized id or None, as_of_us), after committing buffered writes."""
        self._writer.commit()
        as_of_us = timeutil.as_of_us(as_of)
        if not customer_id:
            return None, as_of_us
        try:
            return _validate.customer_id(customer_id), as_of_us
        except _validate.Rejection as rejection:
            raise ValueError(str(rejection)) from None

    def _family(self, family: str, column: str, customer_id: CustomerId | None, days: float | None,
                as_of: TimeLike | None, empty: Any, frequency: bool = False) -> Any:
        cid, as_of_us = self._read(customer_id, as_of)
        if cid is None:
            return empty
        if frequency:
            days = DEFAULT_FREQUENCY_DAYS if days is None else days
            row = self._reader.family(family, cid, as_of_us, frequency_days=days)
        else:
            row = self._reader.family(family, cid, as_of_us, days=days)
        return row[column]

    def get_purchase_frequency(self, customer_id: CustomerId | None, days: float = 30, *,
                               as_of: TimeLike | None = None) -> float:
        """Purchases in the last ``days`` per 30 days; 0.0 when days <= 0."""
        return float(self._family("purchase_features", "purchase_frequency", customer_id, days, as_of, 0.0, True))

    def get_average_order_value(self, customer_id: CustomerId | None, days: float | None = None, *,
                                as_of: TimeLike | None = None) -> float:
        return float(self._family("purchase_features", "average_order_value", customer_id, days, as_of, 0.0))

    def get_purchase_recency(self, customer_id: CustomerId | None, *, as_of: TimeLike | None = None) -> int | None:
        """Whole days from the last purchase to ``as_of``; None when there is none."""
        return self._family("purchase_features", "purchase_recency_days", customer_id, None, as_of, None)

    def get_total_purchase_value(self, customer_id: CustomerId | None, days: float | None = None, *,
                                 as_of: TimeLike | None = None) -> float:
        return float(self._family("purchase_features", "total_purchase_value", customer_id, days, as_of, 0.0))

    def get_session_frequency(self, customer_id: CustomerId | None, days: float = 30, *,
                              as_of: TimeLike | None = None) -> float:
        return float(self._family("session_features", "session_frequency", customer_id, days, as_of, 0.0, True))

    def get_average_session_duration(self, customer_id: CustomerId | None, days: float | None = None, *,
                                     as_of: TimeLike | None = None) -> float:
        return float(self._family("session_features", "average_session_duration", customer_id, days, as_of, 0.0))

    def get_device_usage_pattern(self, customer_id: CustomerId | None, days: float | None = None, *,
                                 as_of: TimeLike | None = None) -> dict[str, int]:
        """{device: session count}, most used first."""
        cid, as_of_us = self._read(customer_id, as_of)
        return {} if cid is None else dict(self._reader.devices(cid, as_of_us, days=days))

    def get_primary_device(self, customer_id: CustomerId | None, days: float | None = None, *,
                           as_of: TimeLike | None = None) -> str | None:
        """The most used device; a tie goes to the device seen first (then to the name)."""
        cid, as_of_us = self._read(customer_id, as_of)
        if cid is None:
            return None
        devices = self._reader.devices(cid, as_of_us, days=days)
        return devices[0][0] if devices else None

    def get_abandoned_cart_count(self, customer_id: CustomerId | None, days: float | None = None, *,
                                 as_of: TimeLike | None = None) -> int:
        return int(self._family("cart_features", "abandoned_cart_count", customer_id, days, as_of, 0))

    def get_cart_conversion_ratio(self, customer_id: CustomerId | None, days: float | None = None, *,
                                  as_of: TimeLike | None = None) -> float:
        return float(self._family("cart_features", "cart_conversion_ratio", customer_id, days, as_of, 0.0))

    def get_abandoned_cart_value(self, customer_id: CustomerId | None, days: float | None = None, *,
                                 as_of: TimeLike | None = None) -> float:
        return float(self._family("cart_features", "abandoned_cart_value", customer_id, days, as_of, 0.0))

    def get_support_ticket_count(self, customer_id: CustomerId | None, days: float | None = None, *,
                                 as_of: TimeLike | None = None) -> int:
        return int(self._family("support_features", "support_ticket_count", customer_id, days, as_of, 0))

    def get_average_response_time(self, customer_id: CustomerId | None, days: float | None = None, *,
                                  as_of: TimeLike | None = None) -> float | None:
        value = self._family("support_features", "average_response_time_hours", customer_id, days, as_of, None)
        return None if value is None else float(value)

    def get_escalation_count(self, customer_id: CustomerId | None, days: float | None = None, *,
                             as_of: TimeLike | None = None) -> int:
        return int(self._family("support_features", "escalation_count", customer_id, days, as_of, 0))

    def get_escalation_ratio(self, customer_id: CustomerId | None, days: float | None = None, *,
                             as_of: TimeLike | None = None) -> float:
        return float(self._family("support_features", "escalation_ratio", customer_id, days, as_of, 0.0))

    def get_activity_retention_tradeoff(self, customer_id: CustomerId | None, *,
                                        as_of: TimeLike | None = None) -> dict[str, Any]:
        """Rule-based retention flags; thresholds are the module's documented constants."""
        cid, as_of_us = self._read(customer_id, as_of)
        if cid is None:
            return {}
        return self._reader.tradeoff(cid, as_of_us)

    def get_all_features(self, customer_id: CustomerId | None, days: float | None = None, *,
                         as_of: TimeLike | None = None) -> FeatureDict:
        """Every seed feature of one customer, as a flat dict (three indexed queries)."""
        cid, as_of_us = self._read(customer_id, as_of)
        if cid is None:
            return {}
        return self._reader.all_features(cid, as_of_us, days=days)

    def get_behavior_features(self, customer_id: CustomerId | None, as_of: TimeLike | None = None) -> FeatureDict:
        """Every behaviour feature of one customer (docs/behavior.md), one SQL statement.

        Flat dict in the column order of the behavior_features statement (sql/behavior_features.sql),
        each value of its registry type (store.behavior.KEY_TYPES); undefined values are None.
        churn_probability and lifetime_value_prediction are not built (no predictive
        models): historical_value, risk_score and the retention flags take their place.
        """
        from store import behavior as _behavior
        cid, as_of_us = self._read(customer_id, as_of)
        if cid is None:
            return {}
        return _behavior.one(self.conn, self.shop_id, cid, as_of_us)

    def get_cohort_behavior_features(self, customer_ids: Iterable[CustomerId | None], *,
                                     as_of: TimeLike | None = None) -> dict[Any, FeatureDict]:
        """{customer id: get_behavior_features(id)} for a cohort, set-based (one statement)."""
        from store import behavior as _behavior
        self._writer.commit()
        as_of_us = timeutil.as_of_us(as_of)
        targets, originals = self._cohort_targets(customer_ids, as_of_us)
        if not targets:
            return {}
        return {originals[tid]: features
                for tid, features in _behavior.iter_cohort(self.conn, self.shop_id, targets)}

    def get_feature_summary(self, customer_id: CustomerId | None, *, as_of: TimeLike | None = None) -> dict[str, Any]:
        """The features of one customer grouped into sections."""
        f = self.get_all_features(customer_id, as_of=as_of)
        if not f:
            return {}
        t = f["activity_retention_tradeoff"]
        return {
            "customer_id": customer_id,
            "purchase_metrics": {
                "frequency_per_month": f["purchase_frequency"],
                "average_order_value": f["average_order_value"],
                "days_since_last_purchase": f["purchase_recency_days"],
                "total_value": f["total_purchase_value"],
            },
            "engagement_metrics": {
                "session_frequency_per_month": f["session_frequency"],
                "average_duration_seconds": f["average_session_duration"],
                "primary_device": f["primary_device"],
            },
            "cart_metrics": {
                "conversion_ratio": f["cart_conversion_ratio"],
                "abandoned_count": f["abandoned_cart_count"],
                "abandoned_value": f["abandoned_cart_value"],
            },
            "support_metrics": {
                "ticket_count": f["support_ticket_count"],
                "average_response_hours": f["average_response_time_hours"],
                "escalation_ratio": f["escalation_ratio"],
            },
            "retention_indicators": {
                "retention_concern": t["retention_concern"],
                "activity_trend": t["activity_trend"],
                "declining_engagement": t["declining_engagement"],
            },
        }

    # -- cohorts -------------------------------------------------------------------
    @staticmethod
    def _normalized_ids(customer_ids: Iterable[Any]) -> Iterator[tuple[str, Any]]:
        """(normalized id, caller's id) for each id of a cohort, lazily: falsy ids skipped,
        an invalid id a ValueError."""
        for raw in customer_ids:
            if not raw:
                continue
            try:
                yield _validate.customer_id(raw), raw
            except _validate.Rejection as rejection:
                raise ValueError(str(rejection)) from None

    def _cohort_targets(self, customer_ids: Iterable[Any],
                        as_of_us: int) -> tuple[list[tuple[int, str, int]], list[Any]]:
        """[(target_id, normalized id, as_of_us)] and {target_id: caller's id}: falsy ids
        skipped, duplicates collapsed (first spelling kept)."""
        seen: dict[str, Any] = {}
        for cid, raw in self._normalized_ids(customer_ids):
            seen.setdefault(cid, raw)
        targets = [(i, cid, as_of_us) for i, cid in enumerate(seen)]
        return targets, list(seen.values())

    def _id_chunks(self, customer_ids: Iterable[Any]) -> Iterator[list[tuple[str, Any]]]:
        """Chunks [(normalized id, caller's id)] of up to ``store.features.STREAM_CHUNK``
        distinct ids, read lazily from ``customer_ids`` (the rules of ``_cohort_targets``
        within a chunk; an id repeated across chunks is dropped by ``iter_keyed_ids``)."""
        chunk: dict[str, Any] = {}
        for cid, raw in self._normalized_ids(customer_ids):
            chunk.setdefault(cid, raw)
            if len(chunk) >= _features.STREAM_CHUNK:
                yield list(chunk.items())
                chunk = {}
        if chunk:
            yield list(chunk.items())

    def get_cohort_features(self, customer_ids: Iterable[CustomerId | None], days: float | None = None, *,
                            as_of: TimeLike | None = None) -> dict[Any, FeatureDict]:
        """{customer id: get_all_features(id, days)} computed set-based for the whole cohort."""
        self._writer.commit()
        as_of_us = timeutil.as_of_us(as_of)
        targets, originals = self._cohort_targets(customer_ids, as_of_us)
        if not targets:
            return {}
        ids = [cid for _, cid, _ in targets]  # target i is ids[i] (enumerate in _cohort_targets)
        return {originals[tid]: features
                for tid, features in self._reader.iter_cohort((), days=days, as_of_us=as_of_us, ids=ids)}

    def get_cohort_summary(self, customer_ids: Iterable[CustomerId | None], days: float | None = None, *,
                           as_of: TimeLike | None = None) -> dict[str, Any]:
        """{'size': distinct non-empty ids, 'aggregates': {feature: mean over non-None values}}."""
        self._writer.commit()
        as_of_us = timeutil.as_of_us(as_of)
        targets, _ = self._cohort_targets(customer_ids, as_of_us)
        if not targets:
            return {"size": 0, "aggregates": {}}
        means = self._reader.cohort_summary(targets, days=days)  # aggregated in SQL (AVG leaves NULL out)
        return {"size": len(targets),
                "aggregates": {k: float(v) for k, v in means.items() if v is not None}}

    # -- feature store (docs/feature_store.md) --------------------------------------
    def iter_features(self, customer_ids: Iterable[CustomerId | None] | None = None, *, days: float | None = None,
                      as_of: TimeLike | None = None) -> Iterator[tuple[Any, FeatureDict]]:
        """Yield (customer_id, get_all_features dict) for a cohort (in first-seen order, falsy ids
        skipped, duplicates once), or for every customer of the shop when ``customer_ids`` is
        None (in customer id order), streamed from SQL with bounded memory whatever the number
        of ids: ``customer_ids`` (any iterable, e.g. a generator) is read a chunk of
        ``store.features.STREAM_CHUNK`` ids at a time, so an invalid id raises ValueError when
        its chunk is reached; a constant number of statements per chunk."""
        self._writer.commit()
        as_of_us = timeutil.as_of_us(as_of)
        if customer_ids is None:
            select = ("fill_targets_all_customers", _plan.all_customers_params(self.shop_id, as_of_us))
            return ((cid, features) for _, cid, _, features
                    in self._reader.iter_cohort((), days=days, select=select, with_keys=True, as_of_us=as_of_us))
        return self._reader.iter_keyed_ids(self._id_chunks(customer_ids), as_of_us=as_of_us, days=days)

    @overload
    def features_at(self, pairs: Iterable[tuple[CustomerId | None, TimeLike | None]], *, exclusive: bool = ...,
                    windows: Sequence[int] = ..., families: Iterable[str] | None = ...,
                    days: _Legacy = ...) -> Iterator[FeatureDict]: ...

    @overload
    def features_at(self, pairs: Iterable[tuple[CustomerId | None, TimeLike | None]], *, exclusive: bool = ...,
                    windows: Sequence[int] = ..., families: Iterable[str] | None = ...,
                    days: float | None) -> Iterator[tuple[str | None, datetime, FeatureDict]]: ...

    def features_at(self, pairs: Iterable[tuple[CustomerId | None, TimeLike | None]], *, exclusive: bool = False,
                    windows: Sequence[int] = _plan.DEFAULT_WINDOWS, families: Iterable[str] | None = None,
                    days: float | None | _Legacy = _LEGACY
                    ) -> Iterator[FeatureDict] | Iterator[tuple[str | None, datetime, FeatureDict]]:
        """Point-in-time rows: for each (customer_id, cutoff) pair, in order (duplicates kept),
        yield a dict keyed by the columns of customer_features (shop_id, customer_id, as_of,
        as_of_us, then every feature): the row ``materialize(as_of=cutoff, windows=windows,
        families=families)`` writes for that customer, computed set-based from events at or
        before that pair's cutoff only (RFM scores and segments ranked in the shop as of the
        cutoff). ``exclusive=True``: events at exactly the cutoff do not count; every feature
        column is then that of materialize(as_of=cutoff - 1 microsecond), while as_of/as_of_us
        stay the pair's cutoff. ``customer_id`` is normalized; an id the shop does not know gets
        the values of a customer without events; a falsy id gives customer_id and every feature
        None. ``pairs`` (any iterable, e.g. a generator) is read ``store.features.STREAM_CHUNK``
        pairs at a time, so memory is bounded and an invalid pair raises ValueError when its
        chunk is read. A cutoff of None is now (one instant for the whole call).

        ``days=`` (deprecated, removed in the next release) gives the former shape:
        (customer_id, cutoff datetime, get_all_features(customer_id, days, as_of=cutoff))."""
        self._writer.commit()
        if not isinstance(days, _Legacy):  # days= given: the former rows
            if exclusive or families is not None or _plan.check_windows(windows) != _plan.DEFAULT_WINDOWS:
                raise TypeError("features_at(days=...) gives the former (customer_id, cutoff, "
                                "get_all_features) tuples and takes no exclusive, windows or families")
            warnings.warn("features_at(pairs, days=...) and its (customer_id, cutoff, get_all_features) "
                          "tuples are deprecated and go in the next release; features_at(pairs) yields "
                          "flat customer_features rows (docs/feature_store.md)", DeprecationWarning,
                          stacklevel=3)
            return _legacy_features_at(self._reader, pairs, days)
        windows = _plan.check_windows(windows)
        _plan.check_families(families, self.registry)
        if not isinstance(exclusive, bool):
            raise TypeError(f"exclusive must be True or False, got {exclusive!r}")
        return _point_in_time.rows(self.conn, self.shop_id, _checked_pairs(pairs), windows=windows,
                                   families=families, exclusive=exclusive, lock=self._writer.lock,
                                   reg=self.registry)

    def materialize(self, as_of: TimeLike | None = None, windows: Sequence[int] = (7, 30, 90, 365), *,
                    families: Iterable[str] | None = None, workers: int = 1, engine: str = "sqlite",
                    memory_limit: str | None = None) -> dict[str, Any]:
        """Rebuild the customer_features table (one row per customer of the shop) at ``as_of``
        (default now) and swap it in atomically; returns a summary of the run.

        ``families``: names of feature families (``materialize_families()``) to limit the
        columns to; None = every family. ``refresh`` and ``export`` keep the same columns.
        ``workers``: processes computing customer ranges in parallel (e.g. ``os.cpu_count()``),
        each over a read-only connection, merged by this store's single writer; same rows.
        Needs a file database: an in-memory store computes in this process whatever the value.
        ``engine``: ``"sqlite"`` (default) or ``"duckdb"`` (extra ``[duckdb]``): the same family
        SQL, transpiled, computed in an in-memory DuckDB over a copy of the shop's events, the
        same rows written back (README "Other engines"); ``memory_limit`` (e.g. ``"2GB"``) is
        DuckDB's, beyond which it spills to the temporary directory (default
        ``store.engines.DEFAULT_MEMORY_LIMIT``). ``workers`` applies to sqlite only."""
        windows = _plan.check_windows(windows)
        _plan.check_families(families, self.registry)
        workers = _parallel.check_workers(workers)
        engine = _materialize.check_engine(engine)
        if engine != "sqlite" and workers != 1:
            raise ValueError("workers applies to engine='sqlite' only (DuckDB uses its own threads)")
        with self._writer.lock:
            self._writer.commit()
            return _materialize.materialize(self.conn, self.shop_id, timeutil.as_of_us(as_of), windows,
                                            families, workers, reg=self.registry, engine=engine,
                                            memory_limit=memory_limit)

    def verify_engine(self, engine: str = "duckdb", *, as_of: TimeLike | None = None, sample: int = 2000,
                      memory_limit: str | None = None) -> dict[str, Any]:
        """Compute every family's columns for the first ``sample`` customers of the shop (0: all)
        at ``as_of`` (default: the last materialisation's, else now) on SQLite and on ``engine``
        and compare every cell: integers and text exact, REALs within 1e-12 relative
        (``store.engines.cells_equal``). Nothing is written. Returns the counts
        (``mismatched_cells`` 0 when the engines agree), see ``store.engines.verify``."""
        with self._writer.lock:
            self._writer.commit()
            if as_of is None:
                run = _runs.last_run(self.conn, self.shop_id)
                as_of_us = run["as_of_us"] if run else timeutil.now_us()
            else:
                as_of_us = timeutil.as_of_us(as_of)
            return _engines.verify(self.conn, self.shop_id, engine, as_of_us, sample=sample, reg=self.registry,
                                   memory_limit=memory_limit)

    @_class_or_instance
    def materialize_families(self: CustomerActivityFeatures | None = None) -> list[str]:
        """The names of the feature families ``materialize(families=...)`` accepts, in catalog order
        (called on the class: the built-in families; on a store: its registry's, user families too)."""
        return list(_plan.family_names(None if self is None else self.registry))

    def family_sql(self, name: str) -> str:
        """The statements ``materialize`` runs to compute the feature family ``name`` (a name of
        ``materialize_families()``), as text: each is run as ``INSERT INTO temp.<table> (...)``
        followed by the SELECT shown, with the windows and families of the last run, and with
        the parameter values its ``-- parameters:`` line gives (a windowed family's window)
        over those every statement shares (``shop_id``, ``as_of_us`` and the constants)."""
        self._writer.commit()
        statements = _plan.family_statements(self.conn, self.shop_id, name, self.registry)
        return "\n\n".join(_plan.statement_text(st) for st in statements)

    def refresh(self, as_of: TimeLike | None = None) -> dict[str, Any]:
        """Bring the last materialisation to ``as_of`` (default now), recomputing only the customers
        whose values can have changed; equal to materialize(as_of) with the same windows."""
        with self._writer.lock:
            self._writer.commit()
            return _refresh.refresh(self.conn, self.shop_id, timeutil.as_of_us(as_of), self.registry)

    def catalog(self) -> list[dict[str, Any]]:
        """The definition record of every feature, as a list of dicts (also in feature_catalog)."""
        records = [f.as_record() for f in _catalog.features(self.registry)]
        if not self.read_only:
            with self._writer.lock:
                self._writer.commit()
                _write_catalog(self.conn, self.registry)
        return records

    def export(self, path: str | Path, *, format: str = "csv", as_of: TimeLike | None = None) -> dict[str, Any]:
        """Stream the shop's feature rows to ``path`` as csv, ndjson or parquet: the materialised
        rows when the last snapshot is at ``as_of`` (or as_of is None), else rows computed at
        ``as_of``. Parquet (the extra ``[pandas]``, else ``MissingExtraError``) is written a record
        batch at a time, typed as ``to_arrow()`` types it.
        A ``path`` that is the store's database (any spelling) or one of its -wal/-shm/-journal
        files is refused with ``OutputIsDatabaseError``, nothing written."""
        with self._writer.lock:
            self._writer.commit()
            return _export.export(self.conn, self.shop_id, path, format=format,
                                       as_of_us=None if as_of is None else timeutil.as_of_us(as_of),
                                       reg=self.registry)

    # -- DataFrames and Arrow (the extra [pandas]; docs/frames.md) -------------------
    def features_frame(self, entity_df: pandas.DataFrame, *, customer_col: str = "customer_id",
                       time_col: str = "cutoff", exclusive: bool = False,
                       windows: Sequence[int] = _plan.DEFAULT_WINDOWS,
                       families: Iterable[str] | None = None) -> pandas.DataFrame:
        """A training frame: ``entity_df`` (a pandas DataFrame of (customer, cutoff) rows, with any
        other columns, e.g. labels) with every feature column of ``features_at`` appended, point in
        time per row: row i holds the features of ``(entity_df[customer_col][i],
        entity_df[time_col][i])``, computed by ``features_at(pairs, exclusive=exclusive,
        windows=windows, families=families)``. The entity frame's columns, row order and index are
        kept (duplicate pairs too). The pairs are read and the rows converted a record batch
        (``store.frames.BATCH_ROWS`` rows) at a time, so memory beyond the frame is bounded.
        Columns are typed as the catalog says (``store.frames``: integers ``Int64``, booleans
        ``boolean``, reals ``float64``, text ``string``; NULL missing). An invalid id or cutoff is
        the ValueError of ``features_at``, and so is a missing cutoff (None, NaT, NaN: no "now"
        here); a missing id gives NULL features; a feature name already in ``entity_df`` is a
        ValueError.
        Needs the extra ``[pandas]`` (else ``MissingExtraError``)."""
        from store import frames as _frames
        pa, pd = _frames.require("features_frame()")
        self._writer.commit()
        # the plan features_at computes (its windows and families checked here): the columns and their types
        plan = _plan.Plan(self.conn, _plan.check_windows(windows), families, self.registry)
        columns = _frames.feature_types(plan, self.registry)
        _frames.check_entity(pd, entity_df, customer_col, time_col, [name for name, _ in columns])
        rows = self.features_at(_frames.entity_pairs(pd, entity_df, customer_col, time_col), exclusive=exclusive,
                                windows=windows, families=families)
        return _frames.features_frame(pa, pd, entity_df, rows, columns)

    def to_arrow(self, *, as_of: TimeLike | None = None) -> pyarrow.Table:
        """The shop's feature rows as a ``pyarrow.Table``: the rows ``export`` writes (the
        materialised ``customer_features`` rows when the last snapshot is at ``as_of`` or as_of
        is None, else rows computed at ``as_of``), in customer id order, typed as the catalog
        says (``store.frames``), read a record batch at a time. Needs the extra ``[pandas]``."""
        with self._writer.lock:
            self._writer.commit()
            return _export.to_arrow(self.conn, self.shop_id,
                                    None if as_of is None else timeutil.as_of_us(as_of), reg=self.registry)

    def to_pandas(self, *, as_of: TimeLike | None = None) -> pandas.DataFrame:
        """``to_arrow(as_of=as_of)`` as a pandas DataFrame (one row per customer, the columns of
        ``customer_features``, a default index): integers ``Int64``, booleans ``boolean``, reals
        ``float64``, text ``string``, NULL missing. Needs the extra ``[pandas]``."""
        from store import frames as _frames
        pa, pd = _frames.require("to_pandas()")
        return _frames.to_pandas(pa, pd, self.to_arrow(as_of=as_of))

    def rfm_summary_frame(self, observation_end: TimeLike | None = None, *, freq: str = "D",
                          freq_multiplier: float = 1, include_first: bool = False,
                          include_zero_values: bool = True) -> pandas.DataFrame:
        """``rfm_summary(...)`` as a pandas DataFrame indexed by customer_id, columns frequency,
        recency, T, monetary_value (float64), as lifetimes' summary_data_from_transaction_data
        returns it. Needs the extra ``[pandas]``."""
        from store import frames as _frames
        pa, pd = _frames.require("rfm_summary_frame()")
        rows = self.rfm_summary(observation_end, freq=freq, freq_multiplier=freq_multiplier,
                                include_first=include_first, include_zero_values=include_zero_values)
        return _frames.indexed_frame(pa, pd, _rfm.RFMRow._fields, rows)

    def calibration_and_holdout_frame(self, calibration_end: TimeLike, observation_end: TimeLike | None = None, *,
                                      freq: str = "D", freq_multiplier: float = 1, include_first: bool = False,
                                      include_zero_values: bool = True) -> pandas.DataFrame:
        """``calibration_and_holdout(...)`` as a pandas DataFrame indexed by customer_id (the
        columns of CalibrationHoldoutRow, float64), as lifetimes' calibration_and_holdout_data
        returns it. Needs the extra ``[pandas]``."""
        from store import frames as _frames
        pa, pd = _frames.require("calibration_and_holdout_frame()")
        rows = self.calibration_and_holdout(calibration_end, observation_end, freq=freq,
                                            freq_multiplier=freq_multiplier, include_first=include_first,
                                            include_zero_values=include_zero_values)
        return _frames.indexed_frame(pa, pd, _rfm.CalibrationHoldoutRow._fields, rows)

    def export_events(self, path: str | Path, *, buckets: int = _parquet.DEFAULT_BUCKETS,
                      overwrite: bool = False) -> dict[str, Any]:
        """Write this shop's event tables (those a materialisation reads) and the store
        timezone's tables to the directory ``path`` as Parquet, hive-partitioned by
        ``crc32(customer_id) mod buckets``, with the manifest ``_caf_events.json``; streamed
        from one read snapshot. Returns the manifest (dict). For ``materialize_on_spark``
        (docs/scale-out.md). Needs pyarrow (extra ``[spark]``); a non-empty ``path`` raises
        ``OutputNotEmptyError`` unless ``overwrite`` (which replaces an earlier export only)."""
        with self._writer.lock:
            self._writer.commit()
            return _parquet.export_events(self.conn, self.shop_id, self.timezone, path, buckets=buckets,
                                          overwrite=overwrite, reg=self.registry)

    def import_features(self, path: str | Path, *, windows: Sequence[int] = (7, 30, 90, 365),
                        families: Iterable[str] | None = None) -> dict[str, Any]:
        """Replace this shop's rows of customer_features by the Parquet file or directory ``path``
        (rows computed elsewhere, e.g. by ``materialize_on_spark``) with the same atomic swap as
        ``materialize``, recorded as a materialisation of kind ``import``; returns its summary.
        ``windows`` and ``families`` name the columns the file must have (those ``materialize``
        would write). A file whose columns or types differ, with another shop's rows, more than
        one as_of or a customer twice raises ``ImportRefusedError``; nothing is written."""
        windows = _plan.check_windows(windows)
        _plan.check_families(families, self.registry)
        with self._writer.lock:
            self._writer.commit()
            return _parquet.import_features(self.conn, self.shop_id, path, windows=windows, families=families,
                                            reg=self.registry)

    # -- RFM/T summaries (lifetimes conventions; docs/rfm.md) ----------------------
    def get_sequence_features(self, customer_id: CustomerId | None, *,
                              as_of: TimeLike | None = None) -> dict[str, float | None]:
        """Purchase-sequence statistics of one customer (sql/sequence.sql, docs/rfm.md): gap mean,
        population std, CV and median in days, periodicity, order-value trend; None when undefined."""
        cid, as_of_us = self._read(customer_id, as_of)
        if cid is None:
            return {}
        row = self._reader.family("sequence_features", cid, as_of_us)
        row.pop("target_id", None)
        return row

    def rfm_summary(self, observation_end: TimeLike | None = None, *, freq: str = "D", freq_multiplier: float = 1,
                    include_first: bool = False, include_zero_values: bool = True) -> Iterator[RFMRow]:
        """Iterator of RFMRow(customer_id, frequency, recency, T, monetary_value), by customer id.

        As lifetimes' summary_data_from_transaction_data: purchase times truncated to
        periods ('D', 'W' Monday-Sunday, 'h') in the store's timezone; purchases in a
        period after observation_end's period dropped; observation_end defaults to the
        last purchase. Zero-value purchases count, as every transaction does in lifetimes;
        include_zero_values=False leaves them out (docs/rfm.md says when a modeller would).
        Streamed from one SQL statement.
        """
        self._writer.commit()
        return _rfm.summary(self.conn, self.shop_id, observation_end, freq=freq,
                            freq_multiplier=freq_multiplier, include_first=include_first,
                            include_zero=include_zero_values)

    def calibration_and_holdout(self, calibration_end: TimeLike, observation_end: TimeLike | None = None, *,
                                freq: str = "D", freq_multiplier: float = 1, include_first: bool = False,
                                include_zero_values: bool = True) -> Iterator[CalibrationHoldoutRow]:
        """Iterator of CalibrationHoldoutRow (frequency_cal, recency_cal, T_cal, monetary_value_cal,
        frequency_holdout, monetary_value_holdout, duration_holdout), by customer id.

        As lifetimes' calibration_and_holdout_data (zero-value purchases count unless
        include_zero_values=False). ValueError when the holdout period is empty or holds
        no purchase. Streamed from one SQL statement.
        """
        self._writer.commit()
        return _rfm.calibration_and_holdout(self.conn, self.shop_id, calibration_end, observation_end,
                                            freq=freq, freq_multiplier=freq_multiplier,
                                            include_first=include_first, include_zero=include_zero_values)


def _checked_pairs(pairs: Iterable[Any], now_us: int | None = None) -> Iterator[tuple[str, int]]:
    """(normalized customer id or '' for a falsy id, cutoff in microseconds) for each pair,
    lazily; a pair that is not (customer_id, as_of), an invalid id or an invalid cutoff is a
    ValueError naming its position. A cutoff of None is ``now_us`` (default: the first time
    one is met), the same instant for every pair."""
    now = now_us
    for i, pair in enumerate(pairs):
        try:
            raw, cutoff = pair
        except (TypeError, ValueError):
            raise ValueError(f"pair {i}: expected (customer_id, as_of), got {pair!r}"[:200]) from None
        cid = ""
        if raw:
            try:
                cid = _validate.customer_id(raw)
            except _validate.Rejection as rejection:
                raise ValueError(f"pair {i}: {rejection}") from None
        if cutoff is None:
            if now is None:
                now = timeutil.now_us()
            cutoff_us = now
        else:
            try:
                cutoff_us = timeutil.to_us(cutoff)
            except ValueError as exc:
                raise ValueError(f"pair {i}: {exc}") from None
        yield cid, cutoff_us


def _legacy_features_at(reader: FeatureReader, pairs: Iterable[Any],
                        days: float | None) -> Iterator[tuple[str | None, datetime, FeatureDict]]:
    """The former features_at rows (deprecated: ``features_at(days=...)``)."""
    targets = ((i, cid, cutoff_us) for i, (cid, cutoff_us) in enumerate(_checked_pairs(pairs)))
    # Falsy ids are kept as '' (no event can have that id) so that rows stay in pair order.
    for _, cid, cutoff_us, features in reader.iter_cohort(targets, days=days, with_keys=True):
        yield (cid or None), timeutil.from_us(cutoff_us), (features if cid else {})


def _write_catalog(conn: sqlite3.Connection, reg: Any = None) -> None:
    """The feature catalog is in the database from the first open on (read it with sqlite3).
    Written only when the stored records differ from the code's; a read-only database, or a
    write lock held by another connection, leaves the stored records as they are (the records
    are the code's either way)."""
    try:
        _catalog.ensure_catalog(conn, reg)
    except sqlite3.OperationalError as exc:
        if not (_db.is_read_only_error(exc) or _db.is_locked_error(exc)):
            raise


def _payload(**values: Any) -> str:
    return _validate.to_json(values)


# -- helpers over plain lists of dicts ---------------------------------------------
_HELPER_CUSTOMER = "customer"


def _helper_store(records: Iterable[Any] | None, kind: str, value_key: str,
                  extra: Callable[[dict[str, Any]], Record]) -> CustomerActivityFeatures:
    store = CustomerActivityFeatures()
    rows = []
    for record in records if records is not None else ():
        if not isinstance(record, dict) or record.get(value_key) is None:
            continue
        date = record.get("date")
        if isinstance(date, str):
            try:
                timeutil.parse_datetime(date)
            except ValueError:
                continue
        rows.append(extra(record))
    getattr(store, kind)(rows)
    return store


def calculate_purchase_features(purchases: Iterable[Mapping[str, Any]] | None, days: float | None = None, *,
                                as_of: TimeLike | None = None) -> dict[str, Any]:
    """Purchase features of one customer's purchases, given as [{'value': ..., 'date': ...}].

    Non-dict records, records without a value and records with an unparseable
    date are skipped. Returns {frequency, average_order_value, recency_days, total_value}.
    """
    with _helper_store(purchases, "add_purchases", "value", lambda r: {
        "customer_id": _HELPER_CUSTOMER, "order_value": r["value"], "purchase_date": r.get("date")}) as store:
        return {
            "frequency": store.get_purchase_frequency(_HELPER_CUSTOMER, days or DEFAULT_FREQUENCY_DAYS, as_of=as_of),
            "average_order_value": store.get_average_order_value(_HELPER_CUSTOMER, days, as_of=as_of),
            "recency_days": store.get_purchase_recency(_HELPER_CUSTOMER, as_of=as_of),
            "total_value": store.get_total_purchase_value(_HELPER_CUSTOMER, days, as_of=as_of),
        }


def calculate_session_features(sessions: Iterable[Mapping[str, Any]] | None, days: float | None = None, *,
                               as_of: TimeLike | None = None) -> dict[str, Any]:
    """Session features of one customer's sessions, given as [{'duration': ..., 'device': ..., 'date': ...}].

    Returns {frequency, average_duration, device_pattern, primary_device}.
    """
    with _helper_store(sessions, "add_sessions", "duration", lambda r: {
        "customer_id": _HELPER_CUSTOMER, "duration_seconds": r["duration"],
        "device_type": r.get("device"), "session_date": r.get("date")}) as store:
        return {
            "frequency": store.get_session_frequency(_HELPER_CUSTOMER, days or DEFAULT_FREQUENCY_DAYS, as_of=as_of),
            "average_duration": store.get_average_session_duration(_HELPER_CUSTOMER, days, as_of=as_of),
            "device_pattern": store.get_device_usage_pattern(_HELPER_CUSTOMER, days, as_of=as_of),
            "primary_device": store.get_primary_device(_HELPER_CUSTOMER, days, as_of=as_of),
        }
