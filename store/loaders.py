"""Loading historical dumps (CSV, TSV, JSON array, NDJSON; gzip; stdin) into the store.

Public API (stable; the ``caf load`` / ``caf stats`` commands are built on it)::

    from store.loaders import load, list_loads, KINDS, PRESETS, FORMATS, LoadReport

    report = load(store, "online-retail", "online_retail.csv.gz")   # = store.load(...)
    report.read == report.accepted + report.rejected + report.duplicates   # always

See docs/loading.md for every mapping decision. In short:

* ``kind`` is a generic kind (``purchases``, ``sessions``, ``carts``,
  ``support``, ``customers``, ``refunds``, ``interactions``,
  ``attributions``), whose file columns are mapped to
  the store's fields with ``mapping``, or a preset for a real public format
  (``online-retail``, ``rees46``, ``incidents``).
* A *row* is one input record: a CSV/TSV data line (the header excluded), one
  element of a JSON array, one non-blank NDJSON line. For the presets a row is
  an invoice line (online-retail), a clickstream event (rees46) and a state
  change of an incident (incidents). Every row read is accepted, rejected
  (recorded in ``rejected_events`` with its reason, its load and its row
  number) or counted as a duplicate.
* Naive timestamps are read in ``timezone`` (an IANA name; default **UTC**
  for files, unlike the ``add_*`` methods whose naive datetimes are local
  time), parsed with ``date_format`` (a ``strptime`` format) when given, else
  as ISO-8601.
* Loads are idempotent (a completed load of the same bytes, kind and options
  is recognised by its sha256 and reported as ``already_loaded``; nothing is
  written) and resumable (a killed load, run again, continues its ``loads``
  row and ends with exactly the rows of an uninterrupted load).
* A load claims its source (store, shop, kind, bytes, options) for as long as
  it runs (``store.locks``: a lock file next to the database, released by the
  kernel when the process ends, even killed). A second load of the same
  source meanwhile, from any process, waits for the first and then reports
  ``already_loaded`` (or resumes it, if the first was killed); with
  ``wait=False`` it raises ``LoadInProgressError`` instead.
"""

import contextlib
import csv
import errno
import json
import json.encoder
import numbers
import sqlite3
import time
from collections import Counter
from hashlib import blake2b, sha256
from operator import add, itemgetter
from dataclasses import dataclass, field

from . import formats, locks, timeutil, validate
from . import db
from .db import lock_path, quote_identifier
from .errors import LoadError, LoadInProgressError, ReadOnlyStoreError, RejectedRatioError
from .formats import FORMATS, customer_text, number
from .resources import query
from .validate import Rejection, event_id

KINDS = ("purchases", "sessions", "carts", "support", "customers", "refunds", "interactions", "attributions")
PRESETS = ("online-retail", "rees46", "incidents")
BATCH_ROWS = 20_000  # input rows per committed batch (a kill loses at most one batch of work)

@dataclass
class LoadReport:
    """What a load did. ``read == accepted + rejected + duplicates`` once it has finished.

    Counts are of input rows (see the module docstring for what a row is).

    * ``status``: ``'completed'``, ``'already_loaded'`` (the same bytes were
      loaded before with the same kind and options: nothing was written, the
      counts are 0 and ``previous`` holds the earlier ``loads`` row),
      ``'running'`` (only in reports passed to ``progress`` callbacks) or
      ``'waiting'`` (passed to ``progress`` once, before any row is read, when
      another process is loading the same source and this load waits for it;
      ``waiting_for`` is then that process's {'pid', 'host', 'since'});
    * ``pending``: rows staged but not yet aggregated (presets; 0 at the end);
    * ``tables``: {table name: rows inserted into it by this load};
    * ``bytes_read`` / ``total_bytes``: progress through the (possibly
      compressed) source file, for progress bars;
    * ``encoding``: the text encoding read (``'UTF-8'`` by default);
      ``delimiter``: the CSV/TSV delimiter used (None for JSON), with
      ``delimiter_sniffed`` True when it was detected rather than given.
    """

    kind: str
    source: str
    load_id: int = None
    sha256: str = None
    size: int = 0
    format: str = None
    status: str = "running"
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    pending: int = 0
    rejected_by_reason: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)
    seconds: float = 0.0
    bytes_read: int = 0
    total_bytes: int = 0
    resumed: bool = False
    previous: dict = None
    encoding: str = "UTF-8"
    delimiter: str = None
    delimiter_sniffed: bool = False
    waiting_for: dict = None

    def as_dict(self):
        """A JSON-ready dict of the report."""
        return {
            "kind": self.kind, "source": self.source, "load_id": self.load_id, "sha256": self.sha256,
            "size": self.size, "format": self.format, "status": self.status, "read": self.read,
            "accepted": self.accepted, "rejected": self.rejected, "duplicates": self.duplicates,
            "pending": self.pending, "rejected_by_reason": dict(self.rejected_by_reason),
            "tables": dict(self.tables), "seconds": self.seconds, "resumed": self.resumed,
            "encoding": self.encoding, "delimiter": self.delimiter, "delimiter_sniffed": self.delimiter_sniffed,
            "previous": None if self.previous is None else dict(self.previous),
        }


# =============================================================================
# Generic kinds: one input row -> one stored row.
# =============================================================================
@dataclass(frozen=True)
class GenericKind:
    name: str            # the kind as given to load()
    reject_kind: str     # rejected_events.kind (as the add_* methods record it)
    table: str
    fields: tuple        # store fields a mapping may name
    required: tuple      # fields that must be present as columns (CSV/TSV)
    date_field: str      # the event time field ('' for customers)
    id_field: str        # the natural key ('' for customers)
    insert: str          # query name


GENERIC = {
    "purchases": GenericKind("purchases", "purchase", "purchases",
                             ("customer_id", "order_value", "purchase_date", "order_id"),
                             ("customer_id", "order_value", "purchase_date"), "purchase_date", "order_id",
                             "insert_purchase"),
    # sessions: session_date may be left out when session_start is given, and
    # duration_seconds when session_start and session_end are (see _missing_columns)
    "sessions": GenericKind("sessions", "session", "sessions",
                            ("customer_id", "duration_seconds", "device_type", "session_date", "session_id",
                             "session_start", "session_end", "page_views", "browser", "referrer", "channel"),
                            ("customer_id",), "session_date", "session_id",
                            "insert_session"),
    "carts": GenericKind("carts", "cart_event", "cart_events",
                         ("customer_id", "event_type", "cart_value", "event_date", "cart_id"),
                         ("customer_id", "event_type", "event_date"), "event_date", "cart_id",
                         "insert_cart_event"),
    "support": GenericKind("support", "support_interaction", "support_interactions",
                           ("customer_id", "ticket_id", "response_time_hours", "escalated", "interaction_date"),
                           ("customer_id", "interaction_date"), "interaction_date", "ticket_id",
                           "insert_support_interaction"),
    "refunds": GenericKind("refunds", "refund", "refunds",
                           ("customer_id", "refund_value", "refund_date", "refund_id", "order_id"),
                           ("customer_id", "refund_value", "refund_date"), "refund_date", "refund_id",
                           "insert_refund"),
    "customers": GenericKind("customers", "customer", "customers", ("customer_id", "metadata", "created_at"),
                             ("customer_id",), "", "", "upsert_customer_if_changed"),
    "interactions": GenericKind("interactions", "interaction", "interactions",
                                ("customer_id", "event_type", "event_date", "session_id", "page_type",
                                 "product_id", "category", "search_query", "view_duration_seconds",
                                 "device_type", "event_id"),
                                ("customer_id", "event_type", "event_date"), "event_date", "event_id",
                                "insert_interaction"),
    "attributions": GenericKind("attributions", "attribution", "purchase_attributions",
                                ("customer_id", "order_id", "source", "medium", "attribution_date"),
                                ("customer_id", "order_id", "source", "attribution_date"), "attribution_date",
                                "order_id", "insert_attribution"),
}


def _missing_columns(kind, has):
    """The store fields whose columns a CSV/TSV header lacks (``has(field)``: its column is there)."""
    missing = [f for f in kind.required if not has(f)]
    if kind.name == "sessions":
        if not has("session_date") and not has("session_start"):
            missing.append("session_date")
        if not has("duration_seconds") and not (has("session_start") and has("session_end")):
            missing.append("duration_seconds")
    return missing


def _optional_time(parse_time, value, field):
    return None if value is None or value == "" else parse_time(value, field)


def _text_field(value):
    """Text as read (CSV cells, JSON strings) stripped; '' stays '' (= not given)."""
    return value.strip() if isinstance(value, str) else value


def _generic_row(kind, shop_id, get, parse_time, fallback_id, now_iso, extra):
    """The stored row of one generic record (``get(field)`` reads the mapped column;
    ``parse_time(value, field)`` turns a timestamp into microseconds or rejects it)."""
    if kind.name == "sessions":
        return _session_row(shop_id, get, parse_time, fallback_id)
    time_us = parse_time(get(kind.date_field), kind.date_field) if kind.date_field else None
    customer = customer_text(get("customer_id"), "customer_id")
    if kind.name == "customers":
        meta = get("metadata")
        if isinstance(meta, str) and meta.strip():
            try:
                meta = json.loads(meta)
            except ValueError:
                raise Rejection("metadata", "is not valid JSON") from None
        if meta is None or meta == "":
            meta = extra()
        if not isinstance(meta, dict):
            raise Rejection("metadata", "must be a JSON object")
        created_us = _optional_time(parse_time, get("created_at"), "created_at")
        return (shop_id, validate.customer_id(customer), validate.metadata_json(meta), now_iso, created_us)
    if kind.name == "attributions":
        order = _text_field(get("order_id"))
        if order is None or order == "":
            raise Rejection("order_id", "is missing")  # the key of an attribution: never generated
        return validate.attribution_row(shop_id, time_us, customer, order, _text_field(get("source")),
                                        get("medium"), None)
    ident = get(kind.id_field)
    if ident is None or ident == "":
        ident = fallback_id
    if kind.name == "purchases":
        return validate.purchase_row(shop_id, time_us, customer, number(get("order_value"), "order_value"),
                                     None, ident)
    if kind.name == "interactions":
        event_type = get("event_type")
        if isinstance(event_type, str):
            event_type = event_type.strip().lower()
        return validate.interaction_row(shop_id, time_us, customer, event_type, None, get("session_id"),
                                        get("page_type"), get("product_id"), get("category"),
                                        get("search_query"),
                                        number(get("view_duration_seconds"), "view_duration_seconds",
                                               optional=True),
                                        get("device_type"), ident)
    if kind.name == "carts":
        event_type = get("event_type")
        if isinstance(event_type, str):
            event_type = event_type.strip().lower()
        return validate.cart_event_row(shop_id, time_us, customer, event_type,
                                       number(get("cart_value"), "cart_value", optional=True), None, ident)
    if kind.name == "support":
        return validate.support_row(shop_id, time_us, customer, ident,
                                    number(get("response_time_hours"), "response_time_hours", optional=True),
                                    formats.boolean(get("escalated"), "escalated"), None)
    if kind.name == "refunds":
        return validate.refund_row(shop_id, time_us, customer, number(get("refund_value"), "refund_value"),
                                   None, ident, get("order_id"))
    raise AssertionError(kind.name)  # pragma: no cover


def _session_row(shop_id, get, parse_time, fallback_id):
    """A sessions row with the optional extras of issue 5.

    session_start / session_end are read like the event time (same format and
    time zone). A missing session_date is session_start; a missing
    duration_seconds is session_end - session_start when both are given.
    """
    start_us = _optional_time(parse_time, get("session_start"), "session_start")
    end_us = _optional_time(parse_time, get("session_end"), "session_end")
    date = get("session_date")
    if (date is None or date == "") and start_us is not None:
        time_us = start_us
    else:
        time_us = parse_time(date, "session_date")
    customer = customer_text(get("customer_id"), "customer_id")
    if start_us is not None and end_us is not None and end_us < start_us:
        raise Rejection("session_end", "is before session_start")
    duration = number(get("duration_seconds"), "duration_seconds", optional=True)
    if duration is None and start_us is not None and end_us is not None:
        duration = (end_us - start_us) / 1_000_000
    ident = get("session_id")
    if ident is None or ident == "":
        ident = fallback_id
    row = validate.session_row(shop_id, time_us, customer, duration, get("device_type"), None, ident)
    return row[:6] + (start_us, end_us, formats.whole_number(get("page_views"), "page_views"),
                      validate.optional_text(get("browser"), "browser"),
                      validate.optional_text(get("referrer"), "referrer"),
                      validate.optional_text(get("channel"), "channel"))


# =============================================================================
# Presets: input rows are staged, then aggregated in SQL at the end.
# =============================================================================
@dataclass(frozen=True)
class Preset:
    name: str
    columns: tuple        # the columns read, in the order parse() receives them
    staging: str          # staging table
    stage: str            # query name of the staging INSERT
    groups: str           # query name filling temp.load_groups
    outputs: tuple        # ((query name, table), ...) run after groups, in order
    rejections: str       # query name turning rejected groups into rejections ('' = none)
    date_format: str      # default strptime format (None = ISO-8601)
    parser: object        # make_parser(time_parser) -> parse(fields) -> staged values, or a
    #                       rejection reason 'field: why' (returned or raised as Rejection)


NO_CUSTOMER = "CustomerID: is missing"
# Staged numbers are bounded so that nothing overflows later: a value summed
# in SQL (an invoice line's amount, a rees46 price) stays within +-1e300, so
# even 10^8 of them sum to a finite float; an integer fits SQLite's INTEGER.
MAX_SUMMED = 1e300
MAX_INTEGER = 2 ** 63 - 1


def _online_retail_parser(parse_time):
    cached_time = parse_time.cache.get
    inf = float("inf")

    def parse(f):
        # f: InvoiceNo, Quantity, InvoiceDate, UnitPrice, CustomerID
        invoice = f[0].strip()
        if not invoice:
            raise Rejection("InvoiceNo", "is missing")
        invoice = event_id(invoice, "InvoiceNo")  # the store's one event-id rule
        customer = f[4]
        if not customer:
            return NO_CUSTOMER  # the common rejection, without the cost of an exception
        if customer.endswith(".0") and customer[:-2].isdigit():
            customer = customer[:-2]
        else:
            customer = customer_text(customer, "CustomerID")
        try:
            quantity = int(f[1])
        except ValueError:
            quantity = number(f[1], "Quantity")
        try:
            price = float(f[3])
        except ValueError:
            price = number(f[3], "UnitPrice")
        if not (0.0 <= price < inf):
            if price < 0:
                raise Rejection("UnitPrice", "is negative")
            number(f[3], "UnitPrice")  # NaN or infinite: rejected with that reason
        try:
            amount = quantity * price  # an integer beyond a float's range cannot be multiplied
        except OverflowError:
            raise Rejection("Quantity", "is too large") from None
        if not -MAX_SUMMED < amount < MAX_SUMMED:
            raise Rejection("Quantity", "is too large")
        event_time = cached_time(f[2])
        if event_time is None:
            event_time = parse_time(f[2], "InvoiceDate")
        return invoice, customer, event_time, amount
    return parse


REES46_EVENT_TYPES = ("view", "cart", "remove_from_cart", "purchase")


def _rees46_parser(parse_time):
    """The one place that turns a REES46 clickstream row into its staged values.

    Every output (sessions, cart events, purchases; later interactions) is
    computed from these staged columns by the queries in ``Preset.outputs``.
    """
    def parse(f):
        # f: event_time, event_type, product_id, category_id, category_code, brand, price, user_id, user_session
        event_time = parse_time(f[0], "event_time")
        event_type = f[1].strip()
        if event_type not in REES46_EVENT_TYPES:
            raise Rejection("event_type", "must be view, cart, remove_from_cart or purchase")
        user = customer_text(f[7], "user_id")
        session = f[8].strip()
        if not session:
            raise Rejection("user_session", "is missing")
        session = event_id(session, "user_session")  # the store's one event-id rule
        price = number(f[6], "price", optional=True)
        if price is None:
            if event_type in ("cart", "purchase"):
                raise Rejection("price", "is missing")
        elif price < 0:
            raise Rejection("price", "is negative")
        elif price > MAX_SUMMED:
            raise Rejection("price", "is too large")
        return (session, user, event_time, event_type, f[2].strip() or None, f[3].strip() or None,
                f[4].strip() or None, f[5].strip() or None, price)
    return parse


def _incidents_parser(parse_time):
    def optional_time(text, name):
        text = text.strip()
        return None if text in ("", "?") else parse_time(text, name)

    def parse(f):
        # f: number, incident_state, reassignment_count, caller_id, opened_at, sys_updated_at, priority, resolved_at
        incident = f[0].strip()
        if not incident:
            raise Rejection("number", "is missing")
        incident = event_id(incident, "number")  # the store's one event-id rule
        state = f[1].strip()
        if not state:
            raise Rejection("incident_state", "is missing")
        caller = f[3].strip()
        if caller in ("", "?"):
            raise Rejection("caller_id", "is missing")
        try:
            reassignments = int(f[2])
        except ValueError:
            raise Rejection("reassignment_count", "not a whole number") from None
        if reassignments < 0:
            raise Rejection("reassignment_count", "is negative")
        if reassignments > MAX_INTEGER:
            raise Rejection("reassignment_count", "is too large")
        opened = parse_time(f[4].strip(), "opened_at")
        return (incident, customer_text(caller, "caller_id"), state, opened,
                optional_time(f[5], "sys_updated_at"), optional_time(f[7], "resolved_at"),
                reassignments, f[6].strip())
    return parse


PRESET = {
    "online-retail": Preset(
        "online-retail", ("InvoiceNo", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"),
        "load_staging_online_retail", "stage_online_retail", "online_retail_groups",
        (("online_retail_purchases", "purchases"), ("online_retail_refunds", "refunds")),
        "online_retail_rejections", None, _online_retail_parser),
    "rees46": Preset(
        "rees46", ("event_time", "event_type", "product_id", "category_id", "category_code", "brand",
                   "price", "user_id", "user_session"),
        "load_staging_rees46", "stage_rees46", "rees46_groups",
        (("rees46_sessions", "sessions"), ("rees46_interactions", "interactions"),  # sql/behavior_loaders.sql
         ("rees46_carts", "cart_events"), ("rees46_purchases", "purchases")),
        "", None, _rees46_parser),
    "incidents": Preset(
        "incidents", ("number", "incident_state", "reassignment_count", "caller_id", "opened_at",
                      "sys_updated_at", "priority", "resolved_at"),
        "load_staging_incidents", "stage_incidents", "incidents_groups",
        (("incidents_support", "support_interactions"),),
        "", "%d-%m-%Y %H:%M", _incidents_parser),
}
STAGING_TABLES = frozenset(p.staging for p in PRESET.values())
ACCEPTED_OUTCOMES = ("purchase", "refund", "session", "support")


# =============================================================================
# The load itself
# =============================================================================
def _json_value_text(value):
    """A JSON value as the text a CSV cell would hold (for presets fed JSON)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


# Exceptions a row's values can raise while it is parsed (beyond Rejection) or
# bound: a value the parsers let through must cost that row, never the load.
ROW_PARSE_ERRORS = (ArithmeticError, ValueError, TypeError, LookupError, RecursionError)
ROW_WRITE_ERRORS = (OverflowError, ValueError, TypeError, sqlite3.IntegrityError, sqlite3.InterfaceError,
                    sqlite3.ProgrammingError, sqlite3.DataError)
SNIFF_BYTES = 64 << 10  # decompressed bytes read ahead for the format and the delimiter


def _problem(exc):
    """A short, storable description of an unexpected exception raised by one row."""
    if isinstance(exc, OverflowError):
        why = "a number is too large"
    elif isinstance(exc, UnicodeError):
        why = "text is not valid Unicode"
    else:
        try:
            why = f"{type(exc).__name__}: {exc}"
        except Exception:  # noqa: BLE001 - a message that cannot be shown
            why = type(exc).__name__
    return formats.clean_text(why)[:200]


def _picker(index):
    """fields -> the tuple of the fields at ``index``."""
    if len(index) > 1:
        return itemgetter(*index)
    if index:
        only = index[0]
        return lambda f: (f[only],)
    return lambda f: ()


class _Run:
    def __init__(self, writer, read_only, kind, source, fmt, mapping, date_format, timezone, progress,
                 encoding=None, delimiter=None, max_rejected_ratio=None, wait=True):
        if not isinstance(kind, str) or (kind not in GENERIC and kind not in PRESET):
            raise LoadError(f"unknown kind {kind!r}; expected one of: {', '.join(KINDS + PRESETS)}")
        self.writer = writer  # the store's single writer (store.ingest.Writer): connection, shop, lock
        self.read_only = read_only
        self.kind = kind
        self.generic = GENERIC.get(kind)
        self.preset = PRESET.get(kind)
        if mapping is not None:
            if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                        for k, v in mapping.items()):
                raise LoadError("mapping must be a dict {store field: file column} of strings")
            if self.preset is not None:
                allowed = self.preset.columns
                unknown = [k for k in mapping if k not in allowed]
                if unknown:
                    raise LoadError(f"cannot map {', '.join(unknown)}: the {kind} preset reads the columns "
                                    f"{', '.join(allowed)}")
            else:
                unknown = [k for k in mapping if k not in self.generic.fields]
                if unknown:
                    raise LoadError(f"unknown field(s) for {kind}: {', '.join(unknown)}; "
                                    f"the fields are {', '.join(self.generic.fields)}")
        self.mapping = dict(mapping or {})
        self.tz = formats.zone(timezone)
        formats.check_date_format(date_format)  # fail fast: before the file is even opened
        self.date_format = date_format
        self.timezone = timezone
        self.encoding = formats.text_encoding(encoding)
        self.bad_bytes_reason = f"encoding: invalid {formats.encoding_label(self.encoding)}"
        self.delimiter_given = formats.delimiter_option(delimiter)
        if max_rejected_ratio is not None:
            if (isinstance(max_rejected_ratio, bool) or not isinstance(max_rejected_ratio, numbers.Real)
                    or not 0.0 <= float(max_rejected_ratio) <= 1.0):
                raise LoadError(f"max_rejected_ratio must be a number from 0 to 1 (the largest share of "
                                f"rejected rows), got {max_rejected_ratio!r}")
            max_rejected_ratio = float(max_rejected_ratio)
        self.max_rejected_ratio = max_rejected_ratio
        self.fmt = fmt
        self.progress = progress
        self.source_arg = source
        if not (isinstance(wait, bool) or (isinstance(wait, (int, float)) and wait >= 0)):
            raise LoadError(f"wait must be True, False or a number of seconds >= 0, got {wait!r}")
        self.wait = wait

    # -- bookkeeping -------------------------------------------------------------------
    def _save(self, status="running", finished_at=None):
        r = self.report
        self.conn.execute(self.sql_update, {
            "read": r.read, "accepted": r.accepted, "rejected": r.rejected, "duplicates": r.duplicates,
            "pending": r.pending, "tables": json.dumps(r.tables, sort_keys=True),
            "seconds": round(self.seconds_before + time.monotonic() - self.t0, 3),
            "status": status, "finished_at": finished_at, "load_id": r.load_id, "source_name": r.source,
        })

    def _reasons(self):
        return {reason: n for reason, n in self.conn.execute(query("load_rejections_by_reason"),
                                                             {"load_id": self.report.load_id})}

    # -- main --------------------------------------------------------------------------
    def run(self):
        self.t0 = time.monotonic()
        source = formats.open_source(self.source_arg)
        reader = None
        try:
            reader = formats.Reader(source)  # a corrupt gzip is refused here, before anything is written
            head = formats.decoded_head(reader.peek(SNIFF_BYTES), self.encoding)
            fmt = formats.detect_format(source.name, self.fmt, head)
            delimiter, sniffed = self._delimiter(fmt, head)
            key = self._key(source, fmt, delimiter)
            writer = self.writer
            writer.commit()  # nothing of this store uncommitted (holding the write lock) while it waits
            with self._claim(key, source, fmt):
                with writer.lock:
                    writer.commit()
                    return self._run(source, reader, fmt, key, delimiter, sniffed)
        finally:
            if reader is not None:
                reader.close()
            source.close()

    def _delimiter(self, fmt, head):
        """(the delimiter of a CSV/TSV file, whether it was sniffed); (None, False) for JSON."""
        if fmt not in formats.DEFAULT_DELIMITER:
            if self.delimiter_given is not None:
                raise LoadError(f"a delimiter applies to csv and tsv files, not to {fmt}")
            return None, False
        if self.delimiter_given is not None:
            return self.delimiter_given, False
        if fmt == "tsv":
            return "\t", False
        return formats.sniff_delimiter(head, formats.DEFAULT_DELIMITER[fmt]), True

    def _key(self, source, fmt, delimiter):
        """The load's identity in the ``loads`` table: shop, kind, the file's bytes and the options."""
        settings = {"format": fmt, "mapping": self.mapping, "date_format": self.date_format,
                    "timezone": self.timezone}
        # Options at their defaults are left out, so loads recorded before they existed keep their key.
        if self.encoding is not None:
            settings["encoding"] = self.encoding
        if delimiter is not None and delimiter != formats.DEFAULT_DELIMITER[fmt]:
            settings["delimiter"] = delimiter
        return {"shop_id": self.writer.shop_id, "kind": self.kind, "sha256": source.sha256,
                "options": json.dumps(settings, sort_keys=True)}

    @contextlib.contextmanager
    def _claim(self, key, source, fmt):
        """Hold the claim on this load (its ``loads`` key) for the block; see the module docstring.

        While it is held, no other process runs this load: a ``running`` row found under the
        claim is one whose process died, resumed here, never one in progress. A store without
        a database file (in memory) needs no claim: its one connection serialises its loads.
        """
        name = sha256(json.dumps([key["shop_id"], key["kind"], key["sha256"], key["options"]]).encode())
        path = None if self.read_only else lock_path(self.writer.conn, "load-" + name.hexdigest()[:24])
        if path is None:
            yield
            return
        lock = locks.FileLock(path)

        def busy(holder):
            self.holder = holder
            if self.wait is not False and self.progress is not None:
                self.progress(LoadReport(kind=self.kind, source=formats.clean_text(source.name), sha256=source.sha256,
                                         size=source.size, format=fmt, total_bytes=source.size,
                                         status="waiting", waiting_for=dict(holder)))
        try:
            taken = lock.acquire(wait=self.wait, on_busy=busy)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise ReadOnlyStoreError(f"cannot load into this store: its lock file {path} cannot be "
                                         f"created ({exc.strerror}); the database's directory must be "
                                         "writable") from None
            raise LoadError(f"cannot create the load's lock file {path}: {exc.strerror or exc}") from None
        if not taken:
            holder = lock.holder() or self.holder
            who = locks.describe(holder)
            waited = "" if self.wait is False else f" (waited {self.wait:g} s)"
            raise LoadInProgressError(
                f"{source.name} is being loaded as {self.kind} into this store by another process"
                f"{' (' + who + ')' if who else ''}{waited}: nothing was done; run it again once that load "
                "has finished (it will say 'already loaded'), or stop that process (a killed load is "
                "resumed by the next run)", holder)
        try:
            yield
        finally:
            lock.release()

    def _run(self, source, reader, fmt, key, delimiter, sniffed):
        self.conn = conn = self.writer.conn
        self.delimiter = delimiter
        self.report = report = LoadReport(kind=self.kind, source=formats.clean_text(source.name),
                                          sha256=source.sha256, size=source.size, format=fmt,
                                          total_bytes=source.size, delimiter=delimiter,
                                          delimiter_sniffed=sniffed,
                                          encoding=formats.encoding_label(self.encoding))
        self.sql_update = query("update_load")
        self.seconds_before = 0.0
        found = conn.execute(query("find_load"), key).fetchone()
        if found is None:
            # looked up again and inserted in one write transaction: even a process that holds
            # no claim (see _claim) finds the row of a load started meanwhile
            with db.atomic(conn):
                found = conn.execute(query("find_load"), key).fetchone()
                if found is None:
                    cursor = conn.execute(query("insert_load"), dict(
                        key, source_name=report.source, source_size=source.size,
                        started_at=timeutil.iso(timeutil.now_us())))
                    report.load_id = cursor.lastrowid
        if found is not None:
            (load_id, status, read, accepted, rejected, duplicates, pending, tables,
             started_at, finished_at, seconds) = found
            report.load_id = load_id
            if status == "completed":
                report.status = "already_loaded"
                report.previous = {"load_id": load_id, "read": read, "accepted": accepted,
                                   "rejected": rejected, "duplicates": duplicates,
                                   "tables": json.loads(tables), "started_at": started_at,
                                   "finished_at": finished_at}
                report.seconds = round(time.monotonic() - self.t0, 3)
                return report
            report.resumed = True
            report.read, report.accepted, report.rejected = read, accepted, rejected
            report.duplicates, report.pending = duplicates, pending
            report.tables = json.loads(tables)
            self.seconds_before = seconds or 0.0
        self.skip = report.read
        self.committed = False  # has this run committed a batch?
        try:
            self._prepare_batches(reader)
            self._consume(reader, fmt)
            self._finish()
        except BaseException:
            # Whatever stopped the load, the loads row holds the counts of the committed batches
            # (status 'running' = interrupted): the same load run again resumes after them. A load
            # that never committed a row leaves nothing to resume, so its record goes too.
            if self.skip == 0 and not self.committed:
                self._forget()
            raise
        report.status = "completed"
        report.rejected_by_reason = self._reasons()
        report.seconds = round(self.seconds_before + time.monotonic() - self.t0, 3)
        report.bytes_read = report.total_bytes
        return report

    def _forget(self):
        """Delete the loads row of a load stopped before its first commit (best effort)."""
        conn = self.conn
        try:
            db.rollback(conn)
            with db.atomic(conn):
                conn.execute(query("delete_unstarted_load"), {"load_id": self.report.load_id})
        except sqlite3.Error:  # the row then stays, 'running' with 0 rows read: harmless, resumable
            try:
                db.rollback(conn)
            except sqlite3.Error:
                pass

    # -- batches -----------------------------------------------------------------------
    # A batch is committed in one transaction together with the loads row's
    # counters (rows_read = the last input row it covers), so a killed load
    # resumes exactly after its last committed batch.
    def _prepare_batches(self, reader):
        self.reader = reader
        self.shop_id = self.writer.shop_id
        self.reject_kind = self.generic.reject_kind if self.generic else self.preset.name
        self.write_sql = query(self.preset.stage if self.preset else self.generic.insert)
        self.reject_sql = query("insert_load_rejection")
        self.batch = []
        self.batch_rows = []      # generic kinds: the input row number of each batch row
        self.rejections = []      # (payload JSON, reason, row number)
        self.csv_rejections = self.rejections  # one list: rejection ids follow the row order
        self.time_parser = None
        self.first_batch = self.skip == 0

    def _check_batch(self, row_no):
        """Stop the load before committing a batch that shows the options are wrong."""
        report = self.report
        if self.first_batch:
            self.first_batch = False
            parser = self.time_parser
            if self.date_format is not None and parser is not None and parser.failed and not parser.parsed:
                raise LoadError(
                    f"the date format {self.date_format!r} parses none of the {parser.failed:,} timestamps "
                    f"of the first {row_no:,} rows (the first is {parser.first_failure!r}); nothing was loaded")
        limit = self.max_rejected_ratio
        if limit is not None and row_no:
            rejected = report.rejected + len(self.rejections)
            if rejected / row_no > limit:
                reasons = Counter(reason for _, reason, _ in self.rejections)
                self._stop_for_rejections(row_no, rejected, reasons.most_common(1))

    def _stop_for_rejections(self, read, rejected, top):
        report = self.report
        reason = f"; most common reason: {top[0][0]!r} ({top[0][1]:,} rows)" if top else ""
        if self.skip == 0 and not self.committed:
            kept = "nothing was written"
        else:
            kept = (f"the {report.read:,} rows committed before stay, and load {report.load_id} resumes after "
                    "them when run again with a higher max_rejected_ratio (--max-rejected-ratio) or none")
        raise RejectedRatioError(
            f"{report.source}: stopped: {rejected:,} of {read:,} rows read ({rejected / read:.1%}) were rejected, "
            f"more than max_rejected_ratio {self.max_rejected_ratio:g} allows{reason}; {kept}",
            load_id=report.load_id, read=read, rejected=rejected)

    def _flush(self, row_no):
        report, conn = self.report, self.conn
        batch, rejections = self.batch, self.rejections
        self._check_batch(row_no)
        received = timeutil.iso(timeutil.now_us())
        with db.atomic(conn):
            written, failed = self._write(batch) if batch else (0, 0)
            if rejections:
                self._write_rejections(received)
            report.read = row_no
            report.rejected += len(rejections)
            report.duplicates += len(batch) - written - failed
            if self.preset is not None:
                report.pending += written
            else:
                report.accepted += written
                table = self.generic.table
                report.tables[table] = report.tables.get(table, 0) + written
            self._save()
        self.committed = True
        batch.clear()
        rejections.clear()
        self.batch_rows.clear()
        if self.progress is not None:
            report.bytes_read = self.reader.position()
            report.seconds = round(self.seconds_before + time.monotonic() - self.t0, 3)
            self.progress(report)

    def _write(self, batch):
        """Insert the batch: (rows written, rows rejected because they could not be stored)."""
        conn = self.conn
        try:
            # rowcount, not total_changes: triggers on event tables add changes of their own
            return conn.executemany(self.write_sql, batch).rowcount, 0
        except ROW_WRITE_ERRORS:
            pass
        # A row holds a value SQLite refuses (one the parsers let through): the batch again, row by
        # row, in a fresh transaction, so that only that row is rejected.
        db.rollback(conn)
        db.begin(conn)
        written = failed = 0
        preset = self.preset is not None
        for i, row in enumerate(batch):
            try:
                written += conn.execute(self.write_sql, row).rowcount
            except ROW_WRITE_ERRORS as exc:
                failed += 1
                self.rejections.append((validate.to_json({"stored_values": list(row)}),
                                        f"row: cannot be stored ({_problem(exc)})",
                                        row[1] if preset else self.batch_rows[i]))
        self.rejections.sort(key=itemgetter(2))
        return written, failed

    def _write_rejections(self, received):
        load_id = self.report.load_id
        rows = [(self.shop_id, self.reject_kind, p, r, received, load_id, n) for p, r, n in self.rejections]
        try:
            self.conn.executemany(self.reject_sql, rows)
        except UnicodeEncodeError:
            # text no payload should hold (payloads and reasons are built safe): stored escaped;
            # rows already inserted are ignored the second time ((load_id, source_row) is unique)
            clean = formats.clean_text
            self.conn.executemany(self.reject_sql, [(s, k, clean(p), clean(r), t, i, n)
                                                    for s, k, p, r, t, i, n in rows])

    # -- rows --------------------------------------------------------------------------
    def _consume(self, reader, fmt):
        self.decode_errors_at_start = formats.DecodeErrors.count  # before any byte is decoded
        text = reader.text(self.encoding)
        row_no = self.skip
        try:
            if fmt in ("csv", "tsv"):
                row_no = self._consume_csv(text, self.delimiter)
            else:
                rows = (formats.ndjson_rows(text, self.bad_bytes_reason) if fmt == "ndjson"
                        else formats.json_array_rows(text))
                row_no = self._consume_json(rows)
        except formats.READ_ERRORS as exc:  # a file damaged or changed while read: keep what was committed
            raise LoadError(f"cannot read {self.report.source} after row {self.report.read:,}: {exc}; the rows "
                            "committed so far stay: run the same load again once the file reads") from None
        if self.batch or self.rejections or row_no != self.report.read:
            self._flush(row_no)

    def _column(self, field):
        return self.mapping.get(field, field)

    def _read_columns(self, header):
        """Indices of the header's columns a generic kind reads (customers without a metadata
        column read them all: the unmapped ones become the metadata)."""
        kind = self.generic
        if kind.name == "customers" and self._column("metadata") not in header:
            return list(range(len(header)))
        columns = {self._column(f) for f in kind.fields}
        return [i for i, h in enumerate(header) if h in columns]

    def _delimiter_hint(self, header):
        if len(header) > 1:
            return ""
        how = "detected" if self.report.delimiter_sniffed else "used"
        return (f"; the header was split on {formats.delimiter_name(self.delimiter)} ({how}) into one "
                "column: if the file uses another "
                "delimiter, give it with --delimiter")

    def _consume_csv(self, text, delimiter):
        reader = csv.reader(text, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return 0
        except csv.Error as exc:
            raise LoadError(f"cannot read the header line: {exc}") from None
        header = [h.strip() for h in header]
        ncols = len(header)
        shown = ", ".join(formats.clean_text(h) for h in header[:20])
        if self.preset is not None:
            wanted = [self._column(c) for c in self.preset.columns]
            missing = [c for c in wanted if c not in header]
            if missing:
                raise LoadError(f"the file has no column(s) {', '.join(missing)}; the {self.kind} preset reads "
                                f"{', '.join(wanted)} (header found: {shown}){self._delimiter_hint(header)}")
            index = [header.index(c) for c in wanted]
            parse = self._preset_parser()
            load_id = self.report.load_id
        else:
            kind = self.generic
            for field_name in _missing_columns(kind, lambda f: self._column(f) in header)[:1]:
                column = self._column(field_name)
                hint = ""
                if kind.name == "sessions" and field_name in ("session_date", "duration_seconds"):
                    hint = (" (or give session_start" + (" and session_end" if field_name == "duration_seconds"
                                                         else "") + ")")
                raise LoadError(f"the file has no column {column!r} for {field_name}{hint}; map one with "
                                f"--map {field_name}=COLUMN (header found: {shown}){self._delimiter_hint(header)}")
            for field_name, column in self.mapping.items():
                if column not in header:
                    raise LoadError(f"the file has no column {column!r} (mapped to {field_name}); "
                                    f"header found: {shown}{self._delimiter_hint(header)}")
            handle = self._generic_handler()
            index = self._read_columns(header)
        skip = self.skip
        batch, batch_rows, csv_rejections = self.batch, self.batch_rows, self.csv_rejections
        decode_errors = formats.DecodeErrors
        errors_at_start = self.decode_errors_at_start
        bad_bytes = self.bad_bytes_reason
        # the payload {column: value} of a rejected row, built with C-level string functions
        keys = [json.dumps(formats.clean_text(h), ensure_ascii=False) + ":" for h in header]
        escape = json.encoder.encode_basestring
        has_bad_text = formats.has_bad_text

        def payload(fields):
            if decode_errors.count != errors_at_start and has_bad_text(fields):  # bytes in a column not read
                return _fields_payload(fields, header)
            return "{" + ",".join(map(add, keys, map(escape, fields))) + "}"
        row_no = 0
        rejections = self.rejections
        preset = self.preset is not None
        pick = _picker(index)  # the columns read: only their bytes can reject a row
        pending = 0
        while True:
            try:
                for fields in reader:
                    if not fields:
                        continue  # a blank line is not a row
                    row_no += 1
                    if row_no <= skip:
                        continue
                    pending += 1
                    if len(fields) != ncols:
                        rejections.append((_fields_payload(fields), f"row: expected {ncols} columns, "
                                           f"got {len(fields)}", row_no))
                    elif decode_errors.count != errors_at_start and has_bad_text(pick(fields)):
                        rejections.append((_fields_payload(fields, header), bad_bytes, row_no))
                    elif preset:
                        try:
                            staged = parse(pick(fields))
                        except Rejection as rejection:
                            staged = rejection.reason
                        except ROW_PARSE_ERRORS as exc:
                            staged = f"row: cannot be read ({_problem(exc)})"
                        if staged.__class__ is str:  # a parser may return a reason instead of raising
                            csv_rejections.append((payload(fields), staged, row_no))
                        else:
                            batch.append((load_id, row_no, blake2b("\x1f".join(fields).encode("utf-8", "surrogateescape"),
                                                                   digest_size=16).digest()) + staged)
                    else:
                        handled = handle(dict(zip(header, fields)), row_no)
                        if isinstance(handled, Rejection):
                            csv_rejections.append((payload(fields), handled.reason, row_no))
                        else:
                            batch.append(handled)
                            batch_rows.append(row_no)
                    if pending >= BATCH_ROWS:
                        self._flush(row_no)
                        pending = 0
                return row_no
            except csv.Error as exc:
                row_no += 1
                if row_no > skip:
                    pending += 1
                    rejections.append(('{"error": "malformed CSV"}',
                                       f"row: malformed CSV ({formats.clean_text(str(exc))})", row_no))

    def _json_text_problem(self, value, raw):
        """The reason to reject a JSON record whose read values hold text that cannot be stored
        (undecodable bytes, lone surrogate escapes), or None."""
        if self.preset is not None:
            pairs = zip(self.preset.columns, (self._column(c) for c in self.preset.columns))
        elif self.generic.name == "customers" and self._column("metadata") not in value:
            pairs = [("metadata", None)]  # every unmapped key (and its name) becomes metadata
        else:
            pairs = ((f, self._column(f)) for f in self.generic.fields)
        for field_name, column in pairs:
            checked = value if column is None else value.get(column)
            if formats.has_bad_json_text(checked):
                if formats.has_bad_text((raw,)):
                    return self.bad_bytes_reason
                return f"{field_name}: {validate.NOT_UNICODE}"
        return None

    def _consume_json(self, rows):
        skip = self.skip
        batch, batch_rows, rejections = self.batch, self.batch_rows, self.rejections
        decode_errors = formats.DecodeErrors
        errors_at_start = self.decode_errors_at_start
        may_hold_surrogate = formats.may_hold_surrogate_escape
        row_no = 0
        if self.preset is not None:
            wanted = [self._column(c) for c in self.preset.columns]
            parse = self._preset_parser()
            load_id = self.report.load_id
        else:
            handle = self._generic_handler()
        for value, raw, error in rows:
            row_no += 1
            if row_no <= skip:
                continue
            if error is None:
                if not isinstance(value, dict):
                    error = "record: must be a JSON object"
                elif ("\\u" in raw and may_hold_surrogate(raw)) or decode_errors.count != errors_at_start:
                    error = self._json_text_problem(value, raw)
            if error is not None:
                payload = value if error.startswith("record") else {"raw": formats.clean_text(raw[:2000])}
                rejections.append((validate.to_json(payload if isinstance(payload, dict) else {"record": payload}),
                                   error, row_no))
            elif self.preset is not None:
                missing = [c for c in wanted if c not in value]
                try:
                    if missing:
                        raise Rejection("record", f"missing key(s) {', '.join(missing)}")
                    staged = parse([_json_value_text(value[c]) for c in wanted])
                except Rejection as rejection:
                    staged = rejection.reason
                except ROW_PARSE_ERRORS as exc:
                    staged = f"row: cannot be read ({_problem(exc)})"
                if staged.__class__ is str:
                    rejections.append((validate.to_json(value), staged, row_no))
                else:
                    batch.append((load_id, row_no, blake2b(raw.encode("utf-8", "surrogateescape"),
                                                           digest_size=16).digest()) + staged)
            else:
                handled = handle(value, row_no)
                if isinstance(handled, Rejection):
                    rejections.append((validate.to_json(value), handled.reason, row_no))
                else:
                    batch.append(handled)
                    batch_rows.append(row_no)
            if len(batch) + len(rejections) >= BATCH_ROWS:
                self._flush(row_no)
        return row_no

    def _preset_parser(self):
        self.time_parser = formats.TimeParser(self.date_format or self.preset.date_format, self.tz)
        return self.preset.parser(self.time_parser)

    def _generic_handler(self):
        kind = self.generic
        shop_id = self.writer.shop_id
        parse_time = self.time_parser = formats.TimeParser(self.date_format, self.tz)
        columns = {f: self._column(f) for f in kind.fields}
        mapped_columns = set(columns.values())
        prefix = self.report.sha256[:16]
        now_iso = timeutil.iso(timeutil.now_us())

        def handle(record, row_no):
            def get(f):
                return record.get(columns[f])

            def extra():
                return {k: v for k, v in record.items() if k not in mapped_columns}
            try:
                return _generic_row(kind, shop_id, get, parse_time, f"{prefix}-{row_no}", now_iso, extra)
            except Rejection as rejection:
                return rejection
            except ROW_PARSE_ERRORS as exc:
                return Rejection("row", f"cannot be read ({_problem(exc)})")
        return handle

    def _finish(self):
        report = self.report
        conn = self.conn
        finished = timeutil.iso(timeutil.now_us())
        with db.atomic(conn):
            if self.preset is not None:
                p = self.preset
                params = {"shop_id": self.writer.shop_id, "load_id": report.load_id, "received_at": finished}
                conn.execute(query("create_load_groups"))
                conn.execute(query("clear_load_groups"))
                conn.execute(query(p.groups), params)
                for name, table in p.outputs:
                    inserted = conn.execute(query(name), params).rowcount
                    report.tables[table] = report.tables.get(table, 0) + inserted
                if p.rejections:
                    conn.execute(query(p.rejections), params)
                grouped = 0
                for outcome, n_rows, _ in conn.execute(query("load_group_outcomes")):
                    n_rows = int(n_rows)
                    grouped += n_rows
                    if outcome in ACCEPTED_OUTCOMES:
                        report.accepted += n_rows
                    elif outcome == "duplicate":
                        report.duplicates += n_rows
                    else:
                        report.rejected += n_rows
                report.duplicates += report.pending - grouped  # exact duplicate lines
                report.pending = 0
                limit = self.max_rejected_ratio
                if limit is not None and report.read and report.rejected / report.read > limit:
                    # rejections of whole groups (invoices) count too; rolled back: the staged rows stay
                    reasons = self._reasons()
                    top = sorted(reasons.items(), key=lambda kv: -kv[1])[:1]
                    self._stop_for_rejections(report.read, report.rejected, top)
                conn.execute(query("clear_load_groups"))
                table = quote_identifier(p.staging, STAGING_TABLES)
                others = conn.execute(f"SELECT 1 FROM {table} WHERE load_id <> ? LIMIT 1",
                                      [report.load_id]).fetchone()
                if others is None:
                    conn.execute(f"DELETE FROM {table}")  # the truncate optimisation
                else:
                    conn.execute(f"DELETE FROM {table} WHERE load_id = ?", [report.load_id])
            self._save("completed", finished)


def _fields_payload(fields, header=None):
    if header is not None and len(header) == len(fields):
        return validate.to_json({formats.clean_text(h): formats.clean_text(v) for h, v in zip(header, fields)})
    return validate.to_json({"fields": [formats.clean_text(v) for v in fields]})


def load(store, kind, source, *, fmt=None, mapping=None, date_format=None, timezone=None, progress=None,
         encoding=None, delimiter=None, max_rejected_ratio=None, wait=True):
    """Load one file (or stdin) into ``store`` (a ``CustomerActivityFeatures``): the same as
    ``store.load(kind, source, ...)``, which runs ``load_into`` with the store's writer; see
    ``load_into`` for the arguments."""
    return store.load(kind, source, fmt=fmt, mapping=mapping, date_format=date_format, timezone=timezone,
                      progress=progress, encoding=encoding, delimiter=delimiter,
                      max_rejected_ratio=max_rejected_ratio, wait=wait)


def load_into(writer, kind, source, *, read_only=False, fmt=None, mapping=None, date_format=None,
              timezone=None, progress=None, encoding=None, delimiter=None, max_rejected_ratio=None, wait=True):
    """Load one file (or stdin) through ``writer``, a store's single writer (``store.ingest.Writer``:
    its connection and shop; its lock is held and its buffered events committed for the whole
    load). ``read_only``: the store cannot be written (no lock file is made; the first write
    fails).

    ``kind``: one of ``KINDS`` or ``PRESETS``. ``source``: a path (str or
    Path; gzip is detected and read transparently), ``'-'`` for standard
    input, or a binary/text file object. ``fmt``: one of ``FORMATS``; when
    None it is taken from the name (``.csv``, ``.tsv``, ``.json``,
    ``.ndjson``/``.jsonl``, each optionally followed by ``.gz``), else sniffed
    from the first bytes. ``mapping``: {store field: file column} for the
    generic kinds (fields not mapped are looked up under their own name; for
    a preset, {preset column: file column}). ``date_format``: a ``strptime``
    format for timestamps (checked before the file is read; a load whose
    first batch has timestamps but none it parses stops with nothing
    written); ``timezone``: IANA name for naive timestamps (default UTC).
    ``progress``: a callable receiving the running ``LoadReport`` after every
    committed batch (and once with status
    ``'waiting'`` when it waits for another process's load of the same
    source). ``encoding``: the file's text encoding (a Python codec
    name such as ``cp1252``; default UTF-8). ``delimiter``: the CSV/TSV field
    delimiter (default: a tab for TSV, sniffed among , ; tab | for CSV).
    ``max_rejected_ratio``: stop (``RejectedRatioError``) when, at a batch
    commit, more than this share of the rows read were rejected.

    ``wait``: when another process is loading the same source (same bytes,
    kind and options) into this store, True waits for it to end (then
    reports ``already_loaded``, or resumes it if it was killed), False raises
    ``LoadInProgressError`` at once, a number waits at most that many seconds.

    Returns a ``LoadReport``. Raises ``store.errors.LoadError`` (a
    ``StoreError``) for problems with the file as a whole (missing, unknown
    kind or format, missing columns, bad option, corrupt gzip), and
    ``LoadInProgressError`` as ``wait`` says; bad rows never raise. The
    store's ``strict`` flag does not apply: rows are rejected, never raised.
    See docs/loading.md.
    """
    return _Run(writer, read_only, kind, source, fmt, mapping, date_format, timezone, progress,
                encoding, delimiter, max_rejected_ratio, wait).run()


def list_loads(store, *, limit=None):
    """The ``loads`` table of the store's shop, newest first, as a list of dicts.

    Keys: load_id, kind, source_name, source_size, source_sha256, options
    (dict), status ('running' = in progress or interrupted, 'completed'),
    rows_read, rows_accepted, rows_rejected, rows_duplicate, rows_pending,
    tables (dict), started_at, finished_at (ISO-8601 UTC text or None), seconds.
    """
    store.flush()
    cursor = store.conn.execute(query("list_loads"), {"shop_id": store.shop_id,
                                                      "limit": -1 if limit is None else int(limit)})
    columns = [d[0] for d in cursor.description]
    result = []
    for row in cursor:
        item = dict(zip(columns, row))
        item["options"] = json.loads(item["options"])
        item["tables"] = json.loads(item["tables"])
        result.append(item)
    return result
