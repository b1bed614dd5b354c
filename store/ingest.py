"""Writing events: buffered single calls, streamed bulk loads, recorded rejections.

Durability contract (also in the README):

* single ``add_*`` calls are written into an open ``BEGIN IMMEDIATE``
  transaction and committed when any of these happens first: a read through
  the store, ``flush()``, ``close()`` or leaving the ``with`` block,
  ``MAX_PENDING`` buffered events, or ``MAX_PENDING_SECONDS`` after the
  transaction began (a timer commits an idle buffer on connections the store
  opened itself; on a caller's connection the next call or read does);
* a bulk call commits every batch of ``BATCH_SIZE`` offered records in its own
  transaction, so a crash loses at most the batch in flight, never part of one;
* an event is durable once its transaction has committed (WAL with
  ``synchronous=NORMAL``: durable across a process crash; across a power loss
  the last transactions before it may roll back, never half of one);
* re-running the same call stores nothing twice: events by their natural key
  (a duplicate), rejections by (shop, kind, reason, payload) (migration 0005;
  the call's result still counts every offered bad record as rejected).
"""

import functools
from itertools import islice
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from . import timeutil, validate
from .errors import InvalidEventError, StoreError
from . import db
from .db import quote_identifier, raise_as_store_error
from .resources import query

MAX_PENDING = 5_000
MAX_PENDING_SECONDS = 0.25
BATCH_SIZE = 5_000
HISTORY_BATCH_SIZE = 10_000  # records validated and inserted per executemany by load_history


@dataclass(frozen=True)
class Kind:
    """One kind of event: how its values become a row, and where the row goes."""

    name: str  # as recorded in rejected_events.kind
    table: str
    fields: tuple  # accepted keys of a bulk record, in the order of row()'s arguments
    row: object  # validate.*_row
    insert: str  # name of the INSERT query in sql/ingest.sql

    @functools.cached_property
    def field_set(self):
        return frozenset(self.fields)


KINDS = {
    "purchase": Kind("purchase", "purchases",
                     ("customer_id", "order_value", "purchase_date", "order_id"),
                     validate.purchase_row, "insert_purchase"),
    "session": Kind("session", "sessions",
                    ("customer_id", "duration_seconds", "device_type", "session_date", "session_id",
                     "session_start", "session_end", "page_views", "browser", "referrer", "channel"),
                    validate.session_row, "insert_session"),
    "cart_event": Kind("cart_event", "cart_events",
                       ("customer_id", "event_type", "cart_value", "event_date", "cart_id"),
                       validate.cart_event_row, "insert_cart_event"),
    "support_interaction": Kind("support_interaction", "support_interactions",
                                ("customer_id", "ticket_id", "response_time_hours", "escalated", "interaction_date"),
                                validate.support_row, "insert_support_interaction"),
    "refund": Kind("refund", "refunds",
                   ("customer_id", "refund_value", "refund_date", "refund_id", "order_id"),
                   validate.refund_row, "insert_refund"),  # insert_refund: sql/refunds.sql
    "interaction": Kind("interaction", "interactions",
                        ("customer_id", "event_type", "event_date", "session_id", "page_type", "product_id",
                         "category", "search_query", "view_duration_seconds", "device_type", "event_id"),
                        validate.interaction_row, "insert_interaction"),
    "attribution": Kind("attribution", "purchase_attributions",
                        ("customer_id", "order_id", "source", "medium", "attribution_date"),
                        validate.attribution_row, "insert_attribution"),
}


_METADATA_KEYS = frozenset(("customer_id", "metadata", "created_at"))  # of a set_customers_metadata record

# Identifiers load_history puts into SQL text (store.db.quote_identifier checks them).
_HISTORY_TABLES = frozenset(kind.table for kind in KINDS.values())
_HISTORY_SCHEMA = frozenset(name for t in _HISTORY_TABLES for name in (f"{t}_event_id", f"changed_customers_{t}_insert"))


@dataclass
class IngestResult:
    """What became of the offered records: accepted + rejected + duplicates = offered."""

    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)

    @property
    def offered(self):
        return self.accepted + self.rejected + self.duplicates

    def as_dict(self):
        return {
            "offered": self.offered,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "rejected_by_reason": dict(self.rejected_by_reason),
        }


def _record_values(kind, record):
    if not issubclass(type(record), dict):
        raise validate.Rejection("record", f"must be a dict, got {type(record).__name__}")
    if kind.field_set.issuperset(record):
        return map(record.get, kind.fields)
    unknown = [key for key in record if key not in kind.field_set]
    if unknown:
        shown = ", ".join(validate.shown(k) for k in unknown[:5])  # never raises (huge int keys)
        raise validate.Rejection("record", f"unknown field(s) {shown}; expected {', '.join(kind.fields)}"[:300])
    return [record.get(name) for name in kind.fields]


def _payload(record):
    if issubclass(type(record), dict):  # type(), not isinstance(): a hostile __class__ may raise
        return validate.to_json(record)
    return validate.to_json({"record": record})


def _checked(make, *args):
    """``make(*args)``, raising nothing but ``validate.Rejection``: an exception raised by a hostile
    value's own methods while it is read (``__eq__``, ``__hash__``, ``__class__``, ``__iter__``,
    a tzinfo ...) and not already turned into a field's rejection becomes the rejection
    ``record: a value could not be read (...)``, so that it is recorded (or raised as
    ``InvalidEventError`` in strict mode) like any other, and never loses a bulk batch."""
    try:
        return make(*args)
    except validate.Rejection:
        raise
    except MemoryError:
        raise
    except Exception as exc:
        raise validate.unreadable(exc) from None


def _record_row(kind, shop_id, record):
    """The row of one bulk record (a dict of ``kind.fields``), or ``validate.Rejection``."""
    return kind.row(shop_id, timeutil.now_us(), *_record_values(kind, record))


class Writer:
    """The single writer of a store: buffers single events, streams bulk loads."""

    def __init__(self, conn, shop_id, *, strict=False, use_timer=True):
        self.conn = conn
        self.shop_id = shop_id
        self.strict = strict
        self.use_timer = use_timer
        self.lock = threading.RLock()
        self._pending = 0
        self._began = 0.0
        self._timer = None
        self._sql = {name: query(kind.insert) for name, kind in KINDS.items()}
        self._sql_reject = query("insert_rejected_event")
        self._sql_customer = query("upsert_customer")

    # -- transactions -------------------------------------------------------
    # The single writes' transaction stays open across calls (see the module docstring), so it is
    # written with db.begin / db.commit / db.rollback; a bulk batch or a first load is one
    # db.atomic block.
    def _begin(self):
        with db.store_errors(self.conn):
            db.begin(self.conn)
        self._began = time.monotonic()
        self._pending = 0

    def _ensure_transaction(self):
        if not self.conn.in_transaction:
            if self._timer is not None:  # the timer of a transaction SQLite rolled back itself (e.g. disk full)
                self._timer.cancel()
                self._timer = None
            self._begin()
            if self.use_timer:
                self._timer = threading.Timer(MAX_PENDING_SECONDS, self._timed_commit, args=(self._began,))
                self._timer.daemon = True
                self._timer.start()

    def _timed_commit(self, began):
        with self.lock:
            try:
                if self.conn.in_transaction and self._began == began:
                    self.commit()
            except (sqlite3.Error, StoreError):
                # Nobody to tell in this thread (a full disk, a closed connection): the events
                # stay buffered, and the next call, read, flush() or close() raises the error.
                pass

    def _cancel_timer(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def commit(self):
        """Commit buffered events (a no-op when nothing is buffered)."""
        with self.lock:
            self._cancel_timer()
            if self.conn.in_transaction:
                with db.store_errors(self.conn):
                    db.commit(self.conn)
            self._pending = 0

    def rollback(self):
        with self.lock:
            self._cancel_timer()
            db.rollback(self.conn)
            self._pending = 0

    def _after_write(self):
        self._pending += 1
        if self._pending >= MAX_PENDING or time.monotonic() - self._began >= MAX_PENDING_SECONDS:
            self.commit()

    # -- single events ------------------------------------------------------
    def add(self, kind_name, values, payload=None):
        """Store one event; True when stored, False when rejected or a duplicate.

        ``values`` are the event's values in the order of ``Kind.fields``; the
        rejection payload is built from them only when the event is rejected
        (or is ``payload``, JSON text, when the caller gives one).
        """
        kind = KINDS[kind_name]
        with self.lock:
            try:
                row = _checked(kind.row, self.shop_id, timeutil.now_us(), *values)
            except validate.Rejection as rejection:
                if self.strict:
                    raise InvalidEventError(rejection.field, rejection.why) from None
                if payload is None:
                    payload = _payload(dict(zip(kind.fields, values)))
                self._ensure_transaction()
                try:
                    self._write_rejection(kind.name, payload, rejection.reason)
                except sqlite3.OperationalError as exc:
                    raise_as_store_error(exc, self.conn)
                    raise
                self._after_write()
                return False
            self._ensure_transaction()
            try:
                stored = self.conn.execute(self._sql[kind_name], row).rowcount == 1
            except sqlite3.OperationalError as exc:
                raise_as_store_error(exc, self.conn)
                raise
            self._after_write()
            return stored

    def set_metadata(self, customer, metadata, payload, *, created_at=None):
        with self.lock:
            try:
                row = _checked(self._customer_row, customer, metadata, created_at)
            except validate.Rejection as rejection:
                if self.strict:
                    raise InvalidEventError(rejection.field, rejection.why) from None
                self._ensure_transaction()
                try:
                    self._write_rejection("customer", payload, rejection.reason)
                except sqlite3.OperationalError as exc:
                    raise_as_store_error(exc, self.conn)
                    raise
                self._after_write()
                return False
            self._ensure_transaction()
            try:
                self.conn.execute(self._sql_customer, row)
            except sqlite3.OperationalError as exc:
                raise_as_store_error(exc, self.conn)
                raise
            self._after_write()
            return True

    def _customer_row(self, customer, metadata, created_at=None):
        return (self.shop_id, validate.customer_id(customer), validate.metadata_json(metadata),
                timeutil.iso(timeutil.now_us()), validate.created_at(created_at))

    def _write_rejection(self, kind, payload, reason):
        self.conn.execute(self._sql_reject,
                          (self.shop_id, kind, payload, reason, timeutil.iso(timeutil.now_us())))

    # -- bulk ---------------------------------------------------------------
    def bulk(self, kind_name, records, *, batch_size=BATCH_SIZE, progress=None):
        """Stream an iterable of dicts into the store, one transaction per batch."""
        kind = KINDS[kind_name]
        sql = self._sql[kind_name]
        result = IngestResult()
        with self.lock:
            self.commit()
            for rows, rejections in self._batches(kind, records, batch_size):
                self._write_batch(sql, rows, rejections, result)
                rows = rejections = None  # not kept while the next batch is read
                if progress is not None:
                    progress(result)
        return result

    def _batches(self, kind, records, batch_size):
        """(rows, rejections) for each batch of ``batch_size`` offered records, in the order offered.

        Records in the common shape go through the kind's fast path (validate.FAST_ROWS), every
        other record through ``kind.row``: the same rows, rejections and reasons either way.
        """
        factory = validate.FAST_ROWS.get(kind.name)
        fast = factory(self.shop_id, kind.fields) if factory is not None else None
        iterator = iter(records)
        base = 0
        batch_size = max(1, int(batch_size))
        while True:
            batch = rows = None  # the previous batch's records and rows are not kept while reading on
            batch = list(islice(iterator, batch_size))
            if not batch:
                return
            try:
                rows = list(map(fast, batch)) if fast is not None else [None] * len(batch)
            except Exception:  # a hostile dict key (its __eq__ or __hash__ raises): every record the general way
                rows = [None] * len(batch)
            rejections = []
            if None in rows:  # records off the fast path (or every record of a kind without one)
                for position, row in enumerate(rows):
                    if row is not None:
                        continue
                    record = batch[position]
                    try:
                        rows[position] = _checked(_record_row, kind, self.shop_id, record)
                    except validate.Rejection as rejection:
                        if self.strict:
                            raise InvalidEventError(rejection.field,
                                                    f"record {base + position}: {rejection.why}") from None
                        rejections.append((self.shop_id, kind.name, _payload(record), rejection.reason))
                if rejections:
                    rows = [row for row in rows if row is not None]
            base += len(batch)
            yield rows, rejections

    # -- large first load -------------------------------------------------------
    def load_history(self, kind_name, records, *, batch_size=HISTORY_BATCH_SIZE, progress=None):
        """Load a kind's history in one transaction (all or nothing).

        Into an empty event table the table's unique event-id index and its change-tracking insert
        trigger are dropped, the rows inserted, and both rebuilt (with the changed_customers rows
        the trigger would have written) before the one commit; into a table holding rows the
        records are inserted as ``bulk`` does, only in one transaction. Same validation,
        rejections, reasons and counts as ``bulk``. An error, an interruption or a crash before
        the commit leaves the store as it was (docs/first_load.md).
        """
        kind = KINDS[kind_name]
        conn = self.conn
        table = quote_identifier(kind.table, _HISTORY_TABLES)
        sql = self._sql[kind_name]
        result = IngestResult()
        with self.lock:
            self.commit()
            with db.store_errors(conn), db.atomic(conn):
                empty = conn.execute(f"SELECT 1 FROM main.{table} LIMIT 1").fetchone() is None
                deferred = self._deferred_schema(kind.table) if empty else []
                for name, type_, _ in deferred:  # rebuilt below, in this same transaction
                    conn.execute(f"DROP {'INDEX' if type_ == 'index' else 'TRIGGER'} "
                                 f"main.{quote_identifier(name, _HISTORY_SCHEMA)}")
                received = timeutil.iso(timeutil.now_us())
                valid = inserted = 0
                for rows, rejections in self._batches(kind, records, batch_size):
                    if rows:
                        inserted += conn.executemany(sql, rows).rowcount
                        valid += len(rows)
                    if rejections:
                        conn.executemany(self._sql_reject, [r + (received,) for r in rejections])
                        result.rejected += len(rejections)
                        result.rejected_by_reason.update(r[3] for r in rejections)
                    rows = rejections = None  # not kept while the next batch is read
                    if progress is not None:
                        result.accepted, result.duplicates = inserted, valid - inserted
                        progress(result)
                for _, type_, create in deferred:
                    if type_ == "index":
                        inserted -= self._build_unique_index(table, create)
                for _, type_, create in deferred:
                    if type_ == "trigger":
                        conn.execute(create)
                        # what the trigger would have recorded row by row: every customer loaded
                        conn.execute(f"INSERT OR IGNORE INTO changed_customers (shop_id, customer_id) "
                                     f"SELECT DISTINCT shop_id, customer_id FROM main.{table}")
            result.accepted = inserted
            result.duplicates = valid - inserted
            if progress is not None:
                progress(result)
        return result

    def _deferred_schema(self, table):
        """(name, type, sql) of the unique event-id index and the change-tracking insert trigger of
        ``table``, from sqlite_master (the migrations' own text, so the rebuilt objects are the same)."""
        wanted = {f"{table}_event_id": "index", f"changed_customers_{table}_insert": "trigger"}
        rows = self.conn.execute(query("history_deferred_schema"), list(wanted))
        return [(name, type_, sql) for name, type_, sql in rows if wanted.get(name) == type_]

    def _build_unique_index(self, table, create):
        """Build the unique event-id index after a first load; when one natural key was loaded under
        different (customer, time) keys, keep the first of them in (customer, time) order, which is
        the first offered for input sorted by customer and time. Returns the rows removed."""
        conn = self.conn
        conn.execute("SAVEPOINT history_index")
        removed = 0
        try:
            conn.execute(create)
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK TO history_index")
            removed = conn.execute(
                f"DELETE FROM main.{table} WHERE (shop_id, customer_id, event_time_us, event_id) IN ("
                f"SELECT shop_id, customer_id, event_time_us, event_id FROM ("
                f"SELECT shop_id, customer_id, event_time_us, event_id, row_number() OVER ("
                f"PARTITION BY shop_id, event_id ORDER BY customer_id, event_time_us) AS position "
                f"FROM main.{table}) WHERE position > 1)").rowcount
            conn.execute(create)
        conn.execute("RELEASE history_index")
        return removed

    def bulk_metadata(self, records, *, batch_size=BATCH_SIZE):
        """Stream {customer_id, metadata[, created_at]} dicts into the customers table."""
        result = IngestResult()
        with self.lock:
            self.commit()
            batch = []
            for record in records:
                batch.append(record)
                if len(batch) >= batch_size:
                    self._metadata_batch(batch, result)
                    batch = []
            if batch:
                self._metadata_batch(batch, result)
        return result

    def _metadata_batch(self, batch, result):
        rows, rejections = [], []
        for record in batch:
            try:
                rows.append(_checked(self._metadata_record_row, record))
            except validate.Rejection as rejection:
                if self.strict:
                    raise InvalidEventError(rejection.field, rejection.why) from None
                rejections.append((self.shop_id, "customer", _payload(record), rejection.reason))
        self._write_batch(self._sql_customer, rows, rejections, result)

    def _metadata_record_row(self, record):
        if not isinstance(record, dict) or set(record) - _METADATA_KEYS:
            raise validate.Rejection("record", "must be a dict with keys customer_id, metadata "
                                               "and optionally created_at")
        return self._customer_row(record.get("customer_id"), record.get("metadata"), record.get("created_at"))

    def _write_batch(self, sql, rows, rejections, result):
        with db.store_errors(self.conn, result), db.atomic(self.conn):
            # rowcount (sqlite3_changes summed per row) counts only the rows this
            # statement wrote, not rows written by triggers (total_changes does).
            inserted = self.conn.executemany(sql, rows).rowcount if rows else 0
            if rejections:
                received = timeutil.iso(timeutil.now_us())
                self.conn.executemany(self._sql_reject, [r + (received,) for r in rejections])
        result.accepted += inserted
        result.duplicates += len(rows) - inserted
        result.rejected += len(rejections)
        result.rejected_by_reason.update(r[3] for r in rejections)
