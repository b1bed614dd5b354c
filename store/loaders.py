"""Loading historical dumps (CSV, TSV, JSON array, NDJSON; gzip; stdin) into the store.

Public API (stable; the ``caf load`` / ``caf stats`` commands are built on it)::

    from store.loaders import load, list_loads, KINDS, PRESETS, FORMATS, LoadReport

    report = load(store, "online-retail", "online_retail.csv.gz")
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
"""

import csv
import json
import json.encoder
import time
from hashlib import blake2b
from operator import add, itemgetter
from dataclasses import dataclass, field

from . import formats, timeutil, validate
from .db import quote_identifier
from .errors import LoadError
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
      counts are 0 and ``previous`` holds the earlier ``loads`` row) or
      ``'running'`` (only in reports passed to ``progress`` callbacks);
    * ``pending``: rows staged but not yet aggregated (presets; 0 at the end);
    * ``tables``: {table name: rows inserted into it by this load};
    * ``bytes_read`` / ``total_bytes``: progress through the (possibly
      compressed) source file, for progress bars.
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

    def as_dict(self):
        """A JSON-ready dict of the report."""
        return {
            "kind": self.kind, "source": self.source, "load_id": self.load_id, "sha256": self.sha256,
            "size": self.size, "format": self.format, "status": self.status, "read": self.read,
            "accepted": self.accepted, "rejected": self.rejected, "duplicates": self.duplicates,
            "pending": self.pending, "rejected_by_reason": dict(self.rejected_by_reason),
            "tables": dict(self.tables), "seconds": self.seconds, "resumed": self.resumed,
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
        amount = quantity * price
        if not -1e300 < amount < 1e300:
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


class _Run:
    def __init__(self, store, kind, source, fmt, mapping, date_format, timezone, progress):
        if not isinstance(kind, str) or (kind not in GENERIC and kind not in PRESET):
            raise LoadError(f"unknown kind {kind!r}; expected one of: {', '.join(KINDS + PRESETS)}")
        self.store = store
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
        if date_format is not None and not isinstance(date_format, str):
            raise LoadError("date_format must be a strptime format string")
        self.date_format = date_format
        self.timezone = timezone
        self.fmt = fmt
        self.progress = progress
        self.source_arg = source

    # -- bookkeeping -------------------------------------------------------------------
    def _begin(self):
        self.conn.execute("BEGIN IMMEDIATE")

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
            reader = formats.Reader(source)
            fmt = formats.detect_format(source.name, self.fmt, reader.peek())
            writer = self.store._writer
            with writer.lock:
                writer.commit()
                return self._run(source, reader, fmt)
        finally:
            if reader is not None:
                reader.close()
            source.close()

    def _run(self, source, reader, fmt):
        self.conn = conn = self.store.conn
        shop_id = self.store.shop_id
        options = json.dumps({"format": fmt, "mapping": self.mapping, "date_format": self.date_format,
                              "timezone": self.timezone}, sort_keys=True)
        self.report = report = LoadReport(kind=self.kind, source=source.name, sha256=source.sha256,
                                          size=source.size, format=fmt, total_bytes=source.size)
        self.sql_update = query("update_load")
        key = {"shop_id": shop_id, "kind": self.kind, "sha256": source.sha256, "options": options}
        found = conn.execute(query("find_load"), key).fetchone()
        self.seconds_before = 0.0
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
        else:
            self._begin()
            try:
                cursor = conn.execute(query("insert_load"), dict(
                    key, source_name=source.name, source_size=source.size,
                    started_at=timeutil.iso(timeutil.now_us())))
                report.load_id = cursor.lastrowid
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self.skip = report.read
        self._prepare_batches(reader)
        self._consume(reader, fmt)
        self._finish()
        report.status = "completed"
        report.rejected_by_reason = self._reasons()
        report.seconds = round(self.seconds_before + time.monotonic() - self.t0, 3)
        report.bytes_read = report.total_bytes
        return report

    # -- batches -----------------------------------------------------------------------
    # A batch is committed in one transaction together with the loads row's
    # counters (rows_read = the last input row it covers), so a killed load
    # resumes exactly after its last committed batch.
    def _prepare_batches(self, reader):
        self.reader = reader
        self.shop_id = self.store.shop_id
        self.reject_kind = self.generic.reject_kind if self.generic else self.preset.name
        self.write_sql = query(self.preset.stage if self.preset else self.generic.insert)
        self.reject_sql = query("insert_load_rejection")
        self.batch = []
        self.rejections = []      # (payload JSON, reason, row number)
        self.csv_rejections = self.rejections  # one list: rejection ids follow the row order

    def _flush(self, row_no):
        report, conn = self.report, self.conn
        batch, rejections = self.batch, self.rejections
        received = timeutil.iso(timeutil.now_us())
        load_id = report.load_id
        self._begin()
        try:
            # rowcount, not total_changes: triggers on event tables add changes of their own
            written = conn.executemany(self.write_sql, batch).rowcount if batch else 0
            if rejections:
                conn.executemany(self.reject_sql, [(self.shop_id, self.reject_kind, p, r, received, load_id, n)
                                                   for p, r, n in rejections])
            report.read = row_no
            report.rejected += len(rejections)
            report.duplicates += len(batch) - written
            if self.preset is not None:
                report.pending += written
            else:
                report.accepted += written
                table = self.generic.table
                report.tables[table] = report.tables.get(table, 0) + written
            self._save()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        batch.clear()
        rejections.clear()
        if self.progress is not None:
            report.bytes_read = self.reader.position()
            report.seconds = round(self.seconds_before + time.monotonic() - self.t0, 3)
            self.progress(report)

    # -- rows --------------------------------------------------------------------------
    def _consume(self, reader, fmt):
        self.decode_errors_at_start = formats._DecodeErrors.count  # before any byte is decoded
        text = reader.text()
        row_no = self.skip
        try:
            if fmt in ("csv", "tsv"):
                row_no = self._consume_csv(text, "," if fmt == "csv" else "\t")
            else:
                rows = formats.ndjson_rows(text) if fmt == "ndjson" else formats.json_array_rows(text)
                row_no = self._consume_json(rows)
        except (OSError, EOFError) as exc:  # corrupt gzip, unreadable file: keep what was committed
            raise LoadError(f"cannot read {self.report.source} after row {self.report.read}: {exc}") from None
        if self.batch or self.rejections or row_no != self.report.read:
            self._flush(row_no)

    def _column(self, field):
        return self.mapping.get(field, field)

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
        if self.preset is not None:
            wanted = [self._column(c) for c in self.preset.columns]
            missing = [c for c in wanted if c not in header]
            if missing:
                raise LoadError(f"the file has no column(s) {', '.join(missing)}; the {self.kind} preset reads "
                                f"{', '.join(wanted)} (header found: {', '.join(header[:20])})")
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
                                f"--map {field_name}=COLUMN (header found: {', '.join(header[:20])})")
            for field_name, column in self.mapping.items():
                if column not in header:
                    raise LoadError(f"the file has no column {column!r} (mapped to {field_name}); "
                                    f"header found: {', '.join(header[:20])}")
            handle = self._generic_handler()
        skip = self.skip
        batch, csv_rejections = self.batch, self.csv_rejections
        decode_errors = formats._DecodeErrors
        errors_at_start = self.decode_errors_at_start
        # the payload {column: value} of a rejected row, built with C-level string functions
        keys = [json.dumps(h, ensure_ascii=False) + ":" for h in header]
        escape = json.encoder.encode_basestring
        row_no = 0
        rejections = self.rejections
        preset = self.preset is not None
        if preset:
            pick = itemgetter(*index) if len(index) > 1 else (lambda f: (f[index[0]],))
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
                    elif decode_errors.count != errors_at_start and formats.has_bad_text(fields):
                        rejections.append((_fields_payload(fields, header), "encoding: invalid UTF-8", row_no))
                    elif preset:
                        try:
                            staged = parse(pick(fields))
                        except Rejection as rejection:
                            staged = rejection.reason
                        if staged.__class__ is str:  # a parser may return a reason instead of raising
                            csv_rejections.append(("{" + ",".join(map(add, keys, map(escape, fields))) + "}",
                                                   staged, row_no))
                        else:
                            batch.append((load_id, row_no, blake2b("\x1f".join(fields).encode(),
                                                                   digest_size=16).digest()) + staged)
                    else:
                        handled = handle(dict(zip(header, fields)), row_no)
                        if isinstance(handled, Rejection):
                            csv_rejections.append(("{" + ",".join(map(add, keys, map(escape, fields))) + "}",
                                                   handled.reason, row_no))
                        else:
                            batch.append(handled)
                    if pending >= BATCH_ROWS:
                        self._flush(row_no)
                        pending = 0
                return row_no
            except csv.Error as exc:
                row_no += 1
                if row_no > skip:
                    pending += 1
                    rejections.append(('{"error": "malformed CSV"}', f"row: malformed CSV ({exc})", row_no))

    def _consume_json(self, rows):
        skip = self.skip
        batch, rejections = self.batch, self.rejections
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
            if error is None and not isinstance(value, dict):
                error = "record: must be a JSON object"
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
            if len(batch) + len(rejections) >= BATCH_ROWS:
                self._flush(row_no)
        return row_no

    def _preset_parser(self):
        return self.preset.parser(formats.TimeParser(self.date_format or self.preset.date_format, self.tz))

    def _generic_handler(self):
        kind = self.generic
        shop_id = self.store.shop_id
        parse_time = formats.TimeParser(self.date_format, self.tz)
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
        return handle

    def _finish(self):
        report = self.report
        conn = self.conn
        finished = timeutil.iso(timeutil.now_us())
        self._begin()
        try:
            if self.preset is not None:
                p = self.preset
                params = {"shop_id": self.store.shop_id, "load_id": report.load_id, "received_at": finished}
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
                conn.execute(query("clear_load_groups"))
                table = quote_identifier(p.staging, STAGING_TABLES)
                others = conn.execute(f"SELECT 1 FROM {table} WHERE load_id <> ? LIMIT 1",
                                      [report.load_id]).fetchone()
                if others is None:
                    conn.execute(f"DELETE FROM {table}")  # the truncate optimisation
                else:
                    conn.execute(f"DELETE FROM {table} WHERE load_id = ?", [report.load_id])
            self._save("completed", finished)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _fields_payload(fields, header=None):
    if header is not None and len(header) == len(fields):
        return validate.to_json({h: formats.clean_text(v) for h, v in zip(header, fields)})
    return validate.to_json({"fields": [formats.clean_text(v) for v in fields]})


def load(store, kind, source, *, fmt=None, mapping=None, date_format=None, timezone=None, progress=None):
    """Load one file (or stdin) into ``store`` (a ``CustomerActivityFeatures``).

    ``kind``: one of ``KINDS`` or ``PRESETS``. ``source``: a path (str or
    Path; gzip is detected and read transparently), ``'-'`` for standard
    input, or a binary/text file object. ``fmt``: one of ``FORMATS``; when
    None it is taken from the name (``.csv``, ``.tsv``, ``.json``,
    ``.ndjson``/``.jsonl``, each optionally followed by ``.gz``), else sniffed
    from the first bytes. ``mapping``: {store field: file column} for the
    generic kinds (fields not mapped are looked up under their own name; for
    a preset, {preset column: file column}). ``date_format``: a ``strptime``
    format for timestamps; ``timezone``: IANA name for naive timestamps
    (default UTC). ``progress``: a callable receiving the running
    ``LoadReport`` after every committed batch.

    Returns a ``LoadReport``. Raises ``store.errors.LoadError`` (a
    ``StoreError``) for problems with the file as a whole (missing, unknown
    kind or format, missing columns, bad option, unreadable gzip); bad rows
    never raise. The store's ``strict`` flag does not apply: rows are
    rejected, never raised.
    """
    return _Run(store, kind, source, fmt, mapping, date_format, timezone, progress).run()


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
