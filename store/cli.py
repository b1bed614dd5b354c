"""The ``caf`` command line: load dumps, look at features, export, inspect.

Every command is a thin layer over the public API (``CustomerActivityFeatures``)
and the store modules (``store.loaders``, ``store.stats``, ``store.db``,
``store.synthetic``). Output is a human-readable table by default and JSON with
``--json`` where a program would read it. Errors are one line on stderr and a
non-zero exit status: 1 for a failure (bad data, missing database, unknown
customer, newer schema), 2 for a usage error (unknown option or kind, bad date,
missing file); never a traceback for bad input. Set ``CAF_DEBUG=1`` to get the
traceback of an unexpected error.

Documented in docs/cli.md (a test keeps it in step with the ``--help`` texts).
"""

import json
import math
import os
import sqlite3
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import click

from . import __version__
from . import db as storedb
from . import locks
from . import stats as storestats
from . import synthetic, timeutil
from .errors import StoreError
from .export import EXPORT_FORMATS

DEFAULT_DB = "customer_activity.db"
GENERIC_KINDS = ("purchases", "sessions", "carts", "support", "refunds", "customers", "interactions",
                 "attributions")
PRESET_KINDS = ("online-retail", "rees46", "incidents")
FORMATS = ("csv", "tsv", "json", "ndjson")
DEMO_PERSONAS = ("loyal", "churner", "cart_abandoner", "support_heavy", "new", "casual")

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# -- errors: one line on stderr -------------------------------------------------
class OneLineError(click.ClickException):
    """A usage error shown as a single line (click's usage block is dropped)."""

    exit_code = 2


def _one_line(text):
    return " ".join(str(text).split())


class _OneLineErrors:
    """Mixin for click groups: turn usage errors and the store's errors into one line."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except (OneLineError, click.exceptions.NoArgsIsHelpError):
            raise
        except click.UsageError as exc:
            raise _usage_line(exc) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (OneLineError, click.exceptions.NoArgsIsHelpError, click.exceptions.Exit, click.Abort):
            raise
        except click.UsageError as exc:
            raise _usage_line(exc) from None
        except click.ClickException:
            raise
        except BrokenPipeError:
            raise
        except (StoreError, ValueError, OSError, sqlite3.Error) as exc:
            if os.environ.get("CAF_DEBUG"):
                raise
            raise click.ClickException(_describe(exc)) from None


def _usage_line(exc):
    message = _one_line(exc.format_message())
    if exc.ctx is not None:
        message += f" (see '{exc.ctx.command_path} --help')"
    error = OneLineError(message)
    error.exit_code = exc.exit_code
    return error


def _describe(exc):
    translated = storedb.store_error(exc)  # SQLite's read-only, full and locked errors as the store's
    if translated is not None:
        exc = translated
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"no such file: {exc.filename}"
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, sqlite3.DatabaseError):
        return f"database error: {_one_line(exc)}"
    return _one_line(exc) or type(exc).__name__


class CafGroup(_OneLineErrors, click.Group):
    """The top-level group; commands listed in the order they are defined."""

    def list_commands(self, ctx):
        return list(self.commands)


class DefaultGroup(_OneLineErrors, click.Group):
    """A group that runs ``default_command`` when the first argument is not one of its commands.

    ``caf export FILE`` is ``caf export features FILE``; ``caf export rfm FILE``
    selects the RFM summary.
    """

    def __init__(self, *args, default_command=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.default_command = default_command

    def list_commands(self, ctx):
        return list(self.commands)

    def parse_args(self, ctx, args):
        help_names = set(ctx.help_option_names)
        if args and args[0] not in self.commands and not (len(args) == 1 and args[0] in help_names):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


# -- parameter types ----------------------------------------------------------------
class TimeType(click.ParamType):
    """An ISO-8601 time or date, checked here and passed on as text, so that the
    library reads it as it documents (a naive time is local time for ``as_of``,
    the store's timezone for RFM observation ends)."""

    name = "TIME"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        try:
            timeutil.parse_datetime(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO-8601 time (e.g. 2011-12-09 or 2011-12-09T12:50:00Z)",
                      param, ctx)
        return value.strip()


def _check_timezone(ctx, param, value):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise click.BadParameter(f"unknown timezone {value!r}: expected an IANA name such as 'UTC' "
                                 "or 'Europe/London'") from None
    return value


class MappingType(click.ParamType):
    """``field=column``: the store's field ``field`` is the file's column ``column``."""

    name = "FIELD=COLUMN"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        store_field, sep, column = value.partition("=")
        if not sep or not store_field.strip() or not column:
            self.fail(f"{value!r} is not FIELD=COLUMN (e.g. --map customer_id=CustomerID)", param, ctx)
        return store_field.strip(), column


TIME = TimeType()


# -- context: where the database is -------------------------------------------------
class Env:
    def __init__(self, db, shop, timezone="UTC", busy_timeout=None, feature_paths=()):
        self.db = Path(db)
        self.shop = shop
        self.timezone = timezone
        self.busy_timeout = busy_timeout
        self.feature_paths = tuple(feature_paths or ())

    def open(self, *, create=False):
        """Open the store; without ``create`` a missing or empty database file is an error.

        Every command opens the store this way: a file that is not a store is refused and left
        untouched (only ``create`` lets a missing or empty file become one), and a file this
        process may not write, or in a directory it may not write, is opened read-only (reads
        are served, writes refused), with no option needed.
        """
        from customer_activity_features import CustomerActivityFeatures

        if not create and not self.db.exists():
            raise click.ClickException(
                f"no database at {self.db}: run 'caf init', 'caf load' or 'caf demo' first "
                "(or point --db / CAF_DB at one)")
        kwargs = {"shop_id": self.shop, "create": create}
        if self.timezone != "UTC":
            kwargs["timezone"] = self.timezone
        if self.busy_timeout is not None:
            kwargs["busy_timeout"] = self.busy_timeout
        if self.feature_paths:
            kwargs["feature_paths"] = list(self.feature_paths)
        try:
            return CustomerActivityFeatures(self.db, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise click.ClickException(f"cannot open {self.db}: {_one_line(exc)}") from None

    def connect(self, *, listing=False):
        """A plain connection for schema work (init, migrate): the same checks as ``open``, a
        missing or empty file allowed. ``listing``: read-only, a newer schema accepted (to list
        its steps)."""
        try:
            return storedb.open_store(self.db, read_only=listing, create=True, newer_ok=listing,
                                      busy_timeout_ms=storedb.check_busy_timeout(self.busy_timeout)).conn
        except sqlite3.DatabaseError as exc:
            raise click.ClickException(f"cannot open {self.db}: {_one_line(exc)}") from None


pass_env = click.make_pass_decorator(Env)


def _iso(value):
    """A time option's value (text or datetime) as ISO-8601 UTC text."""
    if value is None:
        return None
    return timeutil.iso(timeutil.to_us(value))


def _now():
    return datetime.now(timezone.utc).replace(microsecond=0)


# -- output helpers -----------------------------------------------------------------
def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.2f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value) or "-"
    return str(value)


def table(rows, headers, *, align=None):
    """Rows (sequences) as aligned text columns; numbers right-aligned."""
    cells = [[_fmt(v) if not isinstance(v, str) else v for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    numeric = align or [all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool)
                            for r in rows if r[i] is not None) and any(r[i] is not None for r in rows)
                        for i in range(len(headers))]

    def line(values):
        out = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(out).rstrip()

    lines = [line(headers), line(["-" * w for w in widths])]
    lines += [line(row) for row in cells]
    return "\n".join(lines)


def echo_json(value):
    click.echo(json.dumps(value, indent=2, default=_json_default, allow_nan=False))


def _json_default(value):
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


# -- the group ------------------------------------------------------------------------
@click.group(cls=CafGroup, context_settings=CONTEXT_SETTINGS)
@click.option("--db", "db", type=click.Path(dir_okay=False), envvar="CAF_DB", default=DEFAULT_DB,
              show_default=True, show_envvar=True, help="The database file.")
@click.option("--shop", default="", envvar="CAF_SHOP", show_envvar=True,
              help="The shop whose data the command reads and writes (default: the '' shop).")
@click.option("--store-timezone", default="UTC", envvar="CAF_TIMEZONE", show_envvar=True,
              show_default=True, callback=_check_timezone,
              help="IANA timezone of the store: RFM periods, times of day and weekdays are local to it.")
@click.option("--busy-timeout", type=click.FloatRange(0, 86_400), default=storedb.BUSY_TIMEOUT_MS / 1000,
              envvar="CAF_BUSY_TIMEOUT", show_default=True, show_envvar=True, metavar="SECONDS",
              help="How long to wait for a lock another process holds (e.g. a running materialize) "
                   "before failing with 'database is locked'.")
@click.option("--features", "feature_paths", type=click.Path(exists=True), multiple=True, envvar="CAF_FEATURES",
              show_envvar=True, metavar="PATH",
              help="Register your own feature families: a family file, or a directory (every *.sql in it). "
                   "Repeatable; CAF_FEATURES holds paths separated by ':' (os.pathsep).")
@click.version_option(__version__, "--version", prog_name="caf")
@click.pass_context
def cli(ctx, db, shop, store_timezone, busy_timeout, feature_paths):
    """caf: a SQLite feature store for e-commerce customer activity.

    Load historical dumps, compute customer features, materialise and export
    them, and inspect what was loaded and rejected. Every command works on one
    database file (--db, or the CAF_DB environment variable).

    \b
    Start here:
      caf demo                              # a synthetic shop, its features and stats
      caf load online-retail online_retail.csv.gz
      caf features 17850 --as-of 2011-12-10
      caf stats
    """
    ctx.obj = Env(db, shop, store_timezone, busy_timeout, feature_paths)


# -- init / migrate -------------------------------------------------------------------
@cli.command()
@pass_env
def init(env):
    """Create the database (or upgrade it to the current schema).

    \b
    Example:
      caf --db shop.db init
    """
    existed = env.db.exists()
    conn = env.connect()
    try:
        applied = storedb.migrate(conn)
    finally:
        conn.close()
    if not existed:
        click.echo(f"Created {env.db} (schema steps: {', '.join(applied)})")
    elif applied:
        click.echo(f"Upgraded {env.db}: applied {', '.join(applied)}")
    else:
        click.echo(f"{env.db} is up to date")


@cli.command()
@click.option("--list", "list_steps", is_flag=True, help="Show applied and pending steps; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --list: JSON output.")
@pass_env
def migrate(env, list_steps, as_json):
    """Upgrade the schema: apply pending migration steps.

    A database written by a newer version of customer-activity-features is
    refused and left untouched.

    \b
    Examples:
      caf migrate --list
      caf migrate
    """
    if list_steps:
        steps = _migration_status(env)
        if as_json:
            echo_json({"database": str(env.db), "exists": env.db.exists(), "steps": steps})
            return
        if not env.db.exists():
            click.echo(f"{env.db} does not exist yet; 'caf init' creates it.")
        click.echo(table([(s["name"], s["status"]) for s in steps], ["step", "status"]))
        return
    if not env.db.exists():
        raise click.ClickException(f"no database at {env.db}: 'caf init' creates one")
    conn = env.connect()
    try:
        applied = storedb.migrate(conn)
    finally:
        conn.close()
    click.echo(f"Applied {', '.join(applied)}" if applied else f"{env.db} is up to date")


def _migration_status(env):
    """[{name, status}]: every known step, applied or pending, then steps only a newer version knows."""
    known = storedb.known_steps()
    applied, pending = [], list(known)
    if env.db.exists():
        conn = env.connect(listing=True)
        try:
            applied, pending = storedb.applied_steps(conn), storedb.pending_steps(conn)
        except sqlite3.DatabaseError as exc:
            raise click.ClickException(f"cannot open {env.db}: {_one_line(exc)}") from None
        finally:
            conn.close()
    status = {name: "pending" for name in pending}
    status.update({name: "applied" for name in applied if name in set(known)})
    steps = [{"name": name, "status": status[name]} for name in known]
    steps += [{"name": name, "status": "unknown (written by a newer version)"}
              for name in applied if name not in set(known)]
    return steps


# -- load ------------------------------------------------------------------------------
class Progress:
    """A single self-overwriting status line on stderr, at most a few times per second."""

    def __init__(self, label, enabled):
        self.label = label
        self.enabled = enabled
        self.started = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, report):
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.2:
            return
        self.last = now
        read = getattr(report, "read", None)
        if read is None:
            read = getattr(report, "offered", 0)
        rate = read / max(now - self.started, 1e-9)
        text = f"{self.label}: {read:,} rows read, {rate:,.0f} rows/s"
        read_as = _read_as(report) if hasattr(report, "format") else ""
        if read_as:
            text += f" ({read_as})"
        done, total = getattr(report, "bytes_read", 0), getattr(report, "total_bytes", 0)
        if total:
            text += f", {min(100.0, 100.0 * done / total):.0f}%"
        click.echo(f"\r{text}\033[K", nl=False, err=True)
        self.shown = True

    def close(self):
        if self.shown:
            click.echo("\r\033[K", nl=False, err=True)


def _interactive():
    return sys.stdout.isatty() and sys.stderr.isatty()


@cli.command()
@click.argument("kind", type=click.Choice(GENERIC_KINDS + PRESET_KINDS), metavar="KIND")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              help="The file format; default: from the name (.csv .tsv .json .ndjson/.jsonl, "
                   "optionally .gz), else sniffed.")
@click.option("--map", "mapping", type=MappingType(), multiple=True,
              help="The store's field FIELD is the file's column COLUMN (repeatable).")
@click.option("--date-format", help="A strptime format for the file's timestamps (default: ISO-8601).")
@click.option("--timezone", "tz", help="IANA timezone of naive timestamps (default: UTC).")
@click.option("--encoding", help="The file's text encoding, a Python codec name such as cp1252 or latin-1 "
                                 "(default: UTF-8).")
@click.option("--delimiter", help="The CSV field delimiter, one character ('\\t' or 'tab' for a tab; "
                                  "default: sniffed among , ; tab |, and reported).")
@click.option("--max-rejected-ratio", "max_rejected_ratio", type=click.FloatRange(0, 1), metavar="R",
              help="Stop when more than this share (0-1) of the rows read is rejected, checked at each "
                   "batch commit (the first after 20,000 rows or the whole file); batches committed "
                   "before stay and the load resumes when run again.")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress line on stderr (default: only when output is a terminal).")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="When another process is loading the same file into the store: wait for it to "
                   "finish (then report 'already loaded'), or fail at once (exit 1).")
@click.option("--json", "as_json", is_flag=True, help="Print the load report as JSON.")
@pass_env
def load(env, kind, file, fmt, mapping, date_format, tz, encoding, delimiter, max_rejected_ratio, progress,
         wait, as_json):
    """Load FILE (or '-' for standard input) into the store as KIND.

    \b
    KIND is a generic kind, whose columns are matched to the store's fields
    by name or with --map:
      purchases     customer_id, order_value, purchase_date, order_id
      sessions      customer_id, duration_seconds, device_type, session_date, session_id,
                    session_start, session_end, page_views, browser, referrer, channel
      carts         customer_id, event_type, cart_value, event_date, cart_id
      support       customer_id, ticket_id, response_time_hours, escalated, interaction_date
      refunds       customer_id, refund_value, refund_date, refund_id, order_id
      customers     customer_id, metadata (a JSON object; else the other columns), created_at
      interactions  customer_id, event_type, event_date, session_id, page_type, product_id,
                    category, search_query, view_duration_seconds, device_type, event_id
      attributions  customer_id, order_id, source, medium, attribution_date
    or a preset for a public format (mapping decisions in docs/loading.md):
      online-retail  UCI Online Retail invoice lines -> purchases, refunds
      rees46         REES46 clickstream -> sessions, cart events, purchases, interactions
      incidents      UCI incident event log -> support interactions

    CSV, TSV, JSON array and newline-delimited JSON are read; .gz files are
    decompressed on the fly. Loading the same file again changes nothing; a
    load that was interrupted continues where it stopped; a second load of the
    same file while the first runs waits for it (or fails with --no-wait).
    Every row read is accepted, rejected with a reason (see 'caf rejected') or
    counted as a duplicate.

    \b
    Examples:
      caf load online-retail ../shared/data/online_retail.csv.gz
      caf load purchases orders.csv --map customer_id=CustomerID --map order_value=Total
      caf load sessions visits.ndjson --date-format '%d/%m/%Y %H:%M' --timezone Europe/London
      caf load purchases export.csv --encoding cp1252 --delimiter ';' --max-rejected-ratio 0.5
      zcat orders.json.gz | caf load purchases - --format json
    """
    from . import loaders

    with env.open(create=True) as store:
        bar = Progress(f"{kind} {file}", _interactive() if progress is None else progress)
        try:
            report = loaders.load(store, kind, file, fmt=fmt, mapping=dict(mapping) or None,
                                  date_format=date_format, timezone=tz, progress=_waiting_notice(bar),
                                  encoding=encoding, delimiter=delimiter, max_rejected_ratio=max_rejected_ratio,
                                  wait=wait)
        finally:
            bar.close()
    if as_json:
        echo_json(report.as_dict())
        return
    click.echo(_load_summary(report))


def _read_as(report):
    """'encoding cp1252, delimiter ';' (detected)' when not the defaults, else ''."""
    from . import formats

    parts = []
    encoding = getattr(report, "encoding", "UTF-8")
    if encoding and encoding != "UTF-8":
        parts.append(f"encoding {encoding}")
    delimiter = getattr(report, "delimiter", None)
    sniffed = getattr(report, "delimiter_sniffed", False)
    if delimiter is not None and (sniffed and delimiter != "," or not sniffed and report.format == "csv"
                                  and delimiter != ","):
        parts.append(f"delimiter {formats.delimiter_name(delimiter)}" + (" (detected)" if sniffed else ""))
    return ", ".join(parts)


def _waiting_notice(bar):
    """The progress callback of 'caf load': the progress line, and one line on stderr (always)
    when the load waits for another process loading the same file."""
    def progress(report):
        if getattr(report, "status", None) == "waiting":
            who = locks.describe(report.waiting_for or {})
            click.echo(f"{report.source}: another process is loading the same data into this store"
                       f"{' (' + who + ')' if who else ''}; waiting for it to finish", err=True)
            return
        bar(report)
    return progress


def _load_summary(report):
    if report.status == "already_loaded":
        prev = report.previous or {}
        when = prev.get("finished_at") or prev.get("started_at") or "before"
        counts = ", ".join(f"{_fmt(prev[k])} {k}" for k in ("read", "accepted", "rejected", "duplicates")
                           if prev.get(k) is not None)
        return (f"{report.source}: already loaded ({when}, load {prev.get('load_id', '?')}"
                f"{': ' + counts if counts else ''}); nothing written")
    seconds = report.seconds or 0.0
    rate = f", {report.read / seconds:,.0f} rows/s" if seconds >= 0.1 else ""
    lines = [f"Loaded {report.source} as {report.kind} in {seconds:,.1f} s{rate}"
             + (" (resumed)" if getattr(report, "resumed", False) else "")]
    read_as = _read_as(report)
    if read_as:
        lines.append(f"Read as {read_as}")
    rows = [("read", report.read), ("accepted", report.accepted),
            ("rejected", report.rejected), ("duplicates", report.duplicates)]
    lines.append(table(rows, ["rows", "count"]))
    if report.rejected_by_reason:
        reasons = sorted(report.rejected_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
        lines.append("")
        lines.append(table(reasons, ["rejection reason", "rows"]))
        field = reasons[0][0].split(":", 1)[0]
        lines.append(f"(see them with: caf rejected --reason '{field}')")
        if "encoding: invalid UTF-8" in report.rejected_by_reason:
            lines.append("(bytes that are not UTF-8 in the columns read: if the file has another encoding, "
                         "give it with --encoding, e.g. --encoding cp1252)")
    if getattr(report, "tables", None):
        lines.append("")
        lines.append(table(sorted(report.tables.items()), ["table", "rows inserted"]))
    return "\n".join(lines)


# -- features -----------------------------------------------------------------------------
@cli.command()
@click.argument("customer_id")
@click.option("--as-of", type=TIME, help="Compute at this time (events at or before it count). Default: now.")
@click.option("--days", type=click.IntRange(min=1), help="Window in days for the windowed features "
                                                           "(default: all time; frequencies: 30).")
@click.option("--json", "as_json", is_flag=True, help="Print the features as JSON.")
@pass_env
def features(env, customer_id, as_of, days, as_json):
    """Show every feature of one customer.

    \b
    Examples:
      caf features 17850
      caf features 17850 --as-of 2011-12-10 --days 90
      caf features C0000001 --as-of 2026-01-01 --json
    """
    from . import validate

    as_of = as_of or _now()
    with env.open() as store:
        try:
            cid = validate.customer_id(customer_id)
        except validate.Rejection as rejection:
            raise click.ClickException(f"invalid customer id {customer_id!r}: {rejection}") from None
        if not storestats.customer_known(store, cid):
            shop = f" in shop {env.shop!r}" if env.shop else ""
            raise click.ClickException(f"unknown customer {customer_id!r}{shop}: no event or metadata stored")
        values = store.get_all_features(cid, days=days, as_of=as_of)
    if as_json:
        echo_json({"customer_id": cid, "as_of": _iso(as_of), "days": days, "features": values})
        return
    click.echo(f"Customer {cid}, as of {_iso(as_of)}" + (f", window {days} days" if days else ""))
    click.echo(table(list(_feature_rows(values)), ["feature", "value"]))


def _feature_rows(values):
    for key, value in values.items():
        if key == "activity_retention_tradeoff" and isinstance(value, dict):
            for flag, flag_value in value.items():
                yield flag, _fmt(flag_value)
        elif key == "metadata" and isinstance(value, dict):
            yield key, json.dumps(value, sort_keys=True)
        else:
            yield key, _fmt(value)


# -- materialize / refresh ----------------------------------------------------------------------
def _windows(ctx, param, value):
    if value is None:
        return None
    try:
        windows = tuple(int(w) for w in value.split(",") if w.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of days (e.g. 7,30,90)") from None
    if not windows or any(w <= 0 for w in windows):
        raise click.BadParameter(f"{value!r}: windows must be positive whole days")
    return windows


@cli.command()
@click.option("--as-of", type=TIME, help="Snapshot time (default: now).")
@click.option("--windows", callback=_windows, metavar="DAYS,...",
              help="Window lengths in days for the windowed columns (default: 7,30,90,365).")
@click.option("--family", "families", multiple=True, metavar="NAME",
              help="Only this feature family's columns (repeatable; default: every family). A "
                   "family is the 'query' of its features in caf catalog; a wrong name lists them all.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes computing customer ranges in parallel (e.g. the number of cores).")
@click.option("--engine", type=click.Choice(["sqlite", "duckdb"]), default="sqlite", show_default=True,
              help="Where the families are computed: duckdb needs the extra [duckdb] (same rows).")
@click.option("--memory-limit", metavar="SIZE",
              help="DuckDB's memory limit, e.g. 2GB (default 1GB); beyond it DuckDB spills to disk.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's record as JSON.")
@pass_env
def materialize(env, as_of, windows, families, workers, engine, memory_limit, as_json):
    """Write the customer_features table (one row per customer).

    Every feature is a column, each windowed feature once per window.

    The new snapshot replaces the old one atomically. Read it with sqlite3:
    SELECT * FROM customer_features WHERE customer_id = '17850'.

    \b
    Examples:
      caf materialize
      caf materialize --as-of 2011-12-10 --windows 30,90
      caf materialize --workers 2 --family purchase_features --family session_features
      caf materialize --engine duckdb --memory-limit 2GB
    """
    with env.open() as store:
        run = store.materialize
        started = time.monotonic()
        kwargs = {"as_of": as_of}
        if windows:
            kwargs["windows"] = windows
        if families:
            kwargs["families"] = list(families)
        if workers != 1:
            kwargs["workers"] = workers
        if engine != "sqlite":
            kwargs.update(engine=engine, memory_limit=memory_limit)
        elif memory_limit:
            raise click.UsageError("--memory-limit applies to --engine duckdb only")
        result = run(**kwargs)
        seconds = time.monotonic() - started
    _report_run("Materialized", result, seconds, as_json)


@cli.command()
@click.option("--as-of", type=TIME, help="New snapshot time (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's record as JSON.")
@pass_env
def refresh(env, as_of, as_json):
    """Bring the materialised features forward to a new time.

    Only customers whose values can have changed are recomputed; the result equals a full 'caf materialize' at the same time.

    \b
    Examples:
      caf refresh
      caf refresh --as-of 2011-12-31
    """
    with env.open() as store:
        run = store.refresh
        started = time.monotonic()
        result = run(as_of=as_of)
        seconds = time.monotonic() - started
    _report_run("Refreshed", result, seconds, as_json)


@cli.command("verify-engine")
@click.argument("engine", type=click.Choice(["duckdb", "spark"]))
@click.option("--as-of", type=TIME, help="The time to compute at (default: the last materialisation's, else now).")
@click.option("--sample", type=click.IntRange(0), default=2000, show_default=True,
              help="Compare the first N customers (in id order); 0: every customer.")
@click.option("--memory-limit", metavar="SIZE", help="DuckDB's memory limit, e.g. 2GB (default 1GB).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@pass_env
def verify_engine(env, engine, as_of, sample, memory_limit, as_json):
    """Check that ENGINE computes the same features as SQLite.

    Computes every family's columns for a sample of customers on both engines
    and compares every cell: integers and text exactly, REALs within 1e-12
    relative. Nothing is written. Exits with status 1 when a cell differs.

    \b
    Examples:
      caf verify-engine duckdb
      caf verify-engine duckdb --sample 0 --as-of 2011-12-10
      caf verify-engine spark --sample 500

    Spark (the [spark] extra and Java) runs on a local[2] session over the
    shop's events exported to a temporary directory (caf export-events).
    """
    with env.open() as store:
        result = store.verify_engine(engine, as_of=as_of, sample=sample, memory_limit=memory_limit)
    if as_json:
        echo_json(result)
    else:
        click.echo(f"{engine} vs sqlite at {result['as_of']}: {_fmt(result['rows'])} customers, "
                   f"{result['columns']} columns, {_fmt(result['cells'])} cells, "
                   f"{_fmt(result['mismatched_cells'])} mismatched")
        if result["by_column"]:
            click.echo(table(sorted(result["by_column"].items()), ["column", "mismatched cells"]))
        for ex in result["examples"]:
            click.echo(f"  {ex['customer_id']} {ex['column']}: sqlite {ex['sqlite']!r}, {engine} {ex[engine]!r}")
    if result["mismatched_cells"]:
        raise SystemExit(1)


def _report_run(verb, record, seconds, as_json):
    """``record``: the summary dict ``materialize`` or ``refresh`` returned."""
    if as_json:
        echo_json(record)
        return
    head = f"{verb} customer_features: {_fmt(record['rows'])} customers in {seconds:,.1f} s"
    click.echo(head)
    shown = {k: v for k, v in record.items() if not isinstance(v, (dict, list)) or k == "windows"}
    if shown:
        click.echo(table(list(shown.items()), ["field", "value"]))


# -- export ------------------------------------------------------------------------------
@cli.group(cls=DefaultGroup, default_command="features", context_settings=CONTEXT_SETTINGS)
def export():
    """Export feature rows (the default) or the RFM summary.

    'caf export FILE' is short for 'caf export features FILE'; 'caf export rfm
    FILE' writes the RFM/T summary. (To export features to a file literally
    named 'rfm' or 'features', write 'caf export features ./rfm'.)

    \b
    Examples:
      caf export features.csv
      caf export features features.ndjson --format ndjson --as-of 2011-12-10
      caf export features.parquet
      caf export rfm rfm.csv --freq W
    """


def _format_from_name(fmt, path):
    if fmt:
        return fmt
    name = str(path).lower().removesuffix(".gz")
    return "ndjson" if name.endswith((".ndjson", ".jsonl", ".json")) else "csv"


@export.command("features")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS),
              help="Output format (default: from the name; .ndjson/.jsonl -> ndjson, .parquet -> parquet, "
                   "else csv). parquet needs the extra [pandas].")
@click.option("--as-of", type=TIME,
              help="Compute the rows at this time; default: the materialised snapshot if there is one, else now.")
@pass_env
def export_features(env, file, fmt, as_of):
    """Write every customer's features to FILE (csv, ndjson or parquet).

    Parquet columns are typed as the feature catalog says (integers, booleans,
    reals, text; NULL as missing); it needs the optional extra [pandas]
    (pip install 'customer-activity-features[pandas]').

    \b
    Examples:
      caf export features features.csv
      caf export features.ndjson --as-of 2011-12-10
      caf export features.parquet
    """
    fmt = fmt or ("parquet" if str(file).lower().endswith(".parquet") else _format_from_name(None, file))
    with env.open() as store:
        run = store.export
        result = _replace_when_done(file, lambda partial: run(partial, format=fmt, as_of=as_of), conn=store.conn)
    click.echo(f"Wrote {_fmt(result['rows'])} rows to {file} ({fmt})")


@export.command("rfm")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@click.option("--format", "fmt", type=click.Choice(("csv", "ndjson")),
              help="Output format (default: from the name; .ndjson/.jsonl -> ndjson, else csv).")
@click.option("--observation-end", type=TIME, help="End of the observation period (default: the last purchase).")
@click.option("--freq", type=click.Choice(("D", "W", "h")), default="D", show_default=True,
              help="Period: D day, W week, h hour.")
@click.option("--freq-multiplier", type=click.FloatRange(min=0, min_open=True), default=1, show_default=True,
              help="Divide recency and T by this (e.g. 7 with --freq D gives weeks).")
@click.option("--include-first", is_flag=True, help="Include the first period in monetary_value.")
@click.option("--include-zero-values/--exclude-zero-values", default=True, show_default=True,
              help="Count zero-value purchases, as lifetimes does (--exclude-zero-values leaves them out).")
@pass_env
def export_rfm(env, file, fmt, observation_end, freq, freq_multiplier, include_first, include_zero_values):
    """Write the RFM/T summary per customer to FILE.

    The conventions of the lifetimes library (summary_data_from_transaction_data).

    Columns: customer_id, frequency, recency, T, monetary_value (see docs/cli.md).

    \b
    Examples:
      caf export rfm rfm.csv
      caf export rfm rfm_weekly.ndjson --freq W --observation-end 2011-12-10
    """
    fmt = _format_from_name(fmt, file)
    with env.open() as store:
        rows = store.rfm_summary(observation_end, freq=freq, freq_multiplier=freq_multiplier, include_first=include_first,
                       include_zero_values=include_zero_values)
        count = write_rows(file, rows, fmt, fields=RFM_COLUMNS, conn=store.conn)
    click.echo(f"Wrote {count:,} customers to {file} ({fmt})")


RFM_COLUMNS = ("customer_id", "frequency", "recency", "T", "monetary_value")


def _replace_when_done(path, write, *, conn=None):
    """Call ``write(partial path)``, then rename the partial file to ``path``: FILE is never half written.

    With ``conn``, a ``path`` (or its partial file) that is one of its database files (the
    database under any spelling, its -wal/-shm/-journal) is refused first (``OutputIsDatabaseError``).
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    if conn is not None:
        storedb.check_output_file(conn, path)
        storedb.check_output_file(conn, partial)
    try:
        result = write(str(partial))
        os.replace(partial, path)
        return result
    finally:
        if partial.exists():
            partial.unlink()


def write_rows(path, rows, fmt, *, fields=None, conn=None):
    """Stream rows (dicts or namedtuples) to a CSV or NDJSON file; returns the row count.

    Written to a temporary name and renamed at the end, so FILE is never half
    written. ``fields`` gives the CSV header when there is no row. With ``conn``,
    a FILE that is one of its database files is refused (``_replace_when_done``).
    """
    import csv

    def write(partial):
        count = 0
        with open(partial, "w", encoding="utf-8", newline="") as out:
            writer = None
            for row in rows:
                record = row._asdict() if hasattr(row, "_asdict") else dict(row)
                if fmt == "ndjson":
                    out.write(json.dumps(record, default=_json_default) + "\n")
                else:
                    if writer is None:
                        writer = csv.DictWriter(out, fieldnames=list(record))
                        writer.writeheader()
                    writer.writerow(record)
                count += 1
            if writer is None and fmt != "ndjson" and fields:
                csv.writer(out).writerow(fields)
        return count

    return _replace_when_done(path, write, conn=conn)


# -- Parquet: events out, features in (docs/scale-out.md) ---------------------------------
@cli.command("export-events")
@click.argument("directory", type=click.Path(file_okay=False, writable=True))
@click.option("--buckets", type=click.IntRange(1, 4096), default=16, show_default=True,
              help="Partitions per table: bucket=crc32(customer_id) mod BUCKETS.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export in DIRECTORY.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@pass_env
def export_events(env, directory, buckets, overwrite, as_json):
    """Write the shop's events as Parquet for Spark (needs the [spark] extra).

    Every event table a materialisation reads, and the store timezone's tables,
    hive-partitioned by a hash of customer_id, with the manifest
    DIRECTORY/_caf_events.json. A non-empty DIRECTORY is refused unless
    --overwrite (which replaces an earlier export only).

    \b
    Examples:
      caf export-events events/
      caf --timezone America/New_York export-events events/ --buckets 64 --overwrite
    """
    with env.open() as store:
        manifest = store.export_events(directory, buckets=buckets, overwrite=overwrite)
    if as_json:
        echo_json(manifest)
        return
    rows = [(name, _fmt(t["rows"]), "yes" if t["partitioned"] else "no") for name, t in manifest["tables"].items()]
    click.echo(f"Wrote {len(rows)} tables to {directory} ({buckets} buckets)")
    click.echo(table(rows, ["table", "rows", "partitioned"]))


@cli.command("import-features")
@click.argument("path", type=click.Path(exists=True))
@click.option("--windows", callback=_windows, metavar="DAYS,...",
              help="The windows of the file's windowed columns (default: 7,30,90,365).")
@click.option("--family", "families", multiple=True, metavar="NAME",
              help="The file has only this family's columns (repeatable; default: every family).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's record as JSON.")
@pass_env
def import_features(env, path, windows, families, as_json):
    """Load feature rows computed elsewhere (Parquet) into customer_features.

    PATH is a Parquet file or directory with exactly the columns 'caf
    materialize' writes (e.g. the output of store/spark_submit.py). It replaces
    the shop's rows atomically and is recorded as a materialisation of kind
    'import'. Other columns or types, another shop's rows, several as_of values
    or a customer twice are refused, and nothing is written.

    \b
    Examples:
      caf import-features features.parquet/
      caf import-features out/ --windows 30,90 --family purchase_features
    """
    with env.open() as store:
        started = time.monotonic()
        kwargs = {}
        if windows:
            kwargs["windows"] = windows
        if families:
            kwargs["families"] = list(families)
        result = store.import_features(path, **kwargs)
        seconds = time.monotonic() - started
    _report_run("Imported", result, seconds, as_json)


# -- catalog ------------------------------------------------------------------------------
@cli.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON (with their SQL).")
@click.option("--sql", "as_sql", is_flag=True,
              help="Print the statements materialize runs for the family NAME (or the family of the "
                   "feature NAME), exactly as it runs them.")
@pass_env
def catalog(env, name, as_json, as_sql):
    """List the feature catalog, or show one feature's record.

    The list gives every feature's type, unit, window rule and meaning.

    With NAME, show that feature's complete record, including the SQL that
    computes it. The same records are in the feature_catalog table.

    \b
    Examples:
      caf catalog
      caf catalog average_order_value
      caf catalog --json
      caf catalog purchase_features --sql
    """
    if as_sql:
        if name is None:
            raise click.UsageError("--sql needs a family NAME (see 'caf catalog': the query of a feature)")
        with env.open() as store:
            families = store.materialize_families()
            if name not in families:
                query = next((r["query"] for r in store.catalog() if r["name"] == name), None)
                if query not in families:
                    raise click.ClickException(f"no feature family {name!r} and no materialized feature of that "
                                               f"name; families: {', '.join(families)}")
                name = query
            click.echo(store.family_sql(name))
        return
    with env.open() as store:
        records = store.catalog()
    if name is not None:
        records = [r for r in records if r.get("name") == name]
        if not records:
            raise click.ClickException(f"no feature named {name!r} in the catalog (see 'caf catalog')")
    if as_json:
        echo_json(records)
        return
    if name is not None:
        record = records[0]
        width = max(len(k) for k in record)
        for key, value in record.items():
            text = str(value) if value is not None else "-"
            if "\n" in text:
                click.echo(f"{key}:")
                click.echo("    " + text.replace("\n", "\n    "))
            else:
                click.echo(f"{key.ljust(width)}  {text}")
        return
    columns = [c for c in ("name", "type", "unit", "meaning") if any(c in r for r in records)]
    click.echo(table([[r.get(c) if r.get(c) is not None else "-" for c in columns] for r in records], columns,
                     align=[False] * len(columns)))
    click.echo(f"\n{len(records)} features. The whole record of one: caf catalog NAME")


# -- stats / rejected ---------------------------------------------------------------------------
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@pass_env
def stats(env, as_json):
    """Show table sizes, time range, rejections and the last runs.

    Rows per table, customers, the time range of the events, rejections by
    reason, the last load and the last materialisation.

    \b
    Examples:
      caf stats
      caf --db shop.db stats --json
    """
    with env.open() as store:
        info = storestats.summary(store)
    if as_json:
        echo_json(info)
        return
    click.echo(_stats_text(env, info))


def _stats_text(env, info):
    shop = f", shop {info['shop_id']!r}" if info["shop_id"] else ""
    lines = [f"{env.db}{shop}: {info['customers']:,} customers, events from "
             f"{info['first_event_time'] or '-'} to {info['last_event_time'] or '-'}", ""]
    event_rows = [(e["table_name"], e["row_count"], e["customer_count"], e["first_event_time"] or "-",
                   e["last_event_time"] or "-") for e in info["event_tables"]]
    events = {e["table_name"] for e in info["event_tables"]}
    event_rows += [(name, count, None, "-", "-") for name, count in info["tables"].items() if name not in events]
    lines.append(table(event_rows, ["table", "rows", "customers", "first event", "last event"],
                       align=[False, True, True, False, False]))
    lines.append("")
    if info["rejections_by_reason"]:
        lines.append(table([(r["kind"], r["reason"], r["rejected_count"]) for r in info["rejections_by_reason"]],
                           ["rejected kind", "reason", "rows"]))
    else:
        lines.append("No rejected records.")
    lines.append("")
    last = info["last_load"]
    if last:
        lines.append(f"Last load: {last.get('source_name')} as {last.get('kind')}, {last.get('status')}, "
                     f"{_fmt(last.get('rows_read'))} read, {_fmt(last.get('rows_accepted'))} accepted, "
                     f"{_fmt(last.get('rows_rejected'))} rejected, {_fmt(last.get('rows_duplicate'))} duplicates "
                     f"(finished {last.get('finished_at') or '-'})")
    else:
        lines.append("Last load: none")
    mat = info["last_materialization"]
    if mat:
        lines.append(f"Last materialisation: as of {mat.get('as_of') or '-'}, "
                     f"{_fmt(mat.get('rows'))} rows "
                     f"(finished {mat.get('finished_at') or '-'})")
    else:
        lines.append("Last materialisation: none")
    return "\n".join(lines)


@cli.command()
@click.option("--reason", help="Only this reason, or reasons beginning with it (e.g. 'customer_id').")
@click.option("--kind", help="Only this kind (purchase, session, cart_event, support_interaction, customer).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON (payloads parsed).")
@pass_env
def rejected(env, reason, kind, limit, as_json):
    """Show rejected records with their reasons, oldest first.

    \b
    Examples:
      caf rejected
      caf rejected --reason customer_id --limit 5
      caf rejected --kind purchase --json
    """
    with env.open() as store:
        rows = list(storestats.rejected(store, reason=reason, kind=kind, limit=limit))
    if as_json:
        for row in rows:
            try:
                row["payload"] = json.loads(row["payload"])
            except ValueError:
                pass
        echo_json(rows)
        return
    if not rows:
        click.echo("No rejected records" + (" match." if reason or kind else "."))
        return
    click.echo(table([(r["id"], r["kind"], r["reason"], r["received_at"], _clip(r["payload"], 60)) for r in rows],
                     ["id", "kind", "reason", "received at", "payload"]))


def _clip(text, width):
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


# -- browse / report (Datasette, the quality report) ------------------------------------------
def _metadata(env, store):
    from . import browser

    return browser.metadata(store.conn, store.shop_id, store.registry, database=env.db.stem)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8001, show_default=True,
              help="The port to listen on (0: any free port, printed at start).")
@pass_env
def serve(env, host, port):
    """Browse the store in Datasette and look features up over HTTP (read-only).

    Starts Datasette (the optional extra [serve]) on the database, opened
    read-only, with metadata generated from the feature catalog: a description
    and unit for every column of customer_features and of the event tables,
    facets on the categorical and flag features, staging and bookkeeping tables
    hidden, and canned queries: one customer's features, top customers by
    value, rejections by reason, load history, materialisations and
    customer_features with readable times. Stop it with Ctrl-C (or SIGTERM).

    \b
    One customer's features as JSON (unknown customer: 200 and "rows": []):
      curl 'http://127.0.0.1:8001/DB/customer.json?customer_id=17850&_shape=objects'
    (DB is the database file's name without its extension; add &shop=NAME for a shop.)

    \b
    Examples:
      caf --db shop.db serve
      caf --db shop.db serve --port 8080
    """
    from . import browser

    browser.check_installed()
    with env.open() as store:
        document = _metadata(env, store)
    database = env.db.stem

    def ready(url):
        click.echo(f"Serving {env.db} read-only at {url}{database} (Ctrl-C stops)", err=True)

    browser.serve(env.db, document, host=host, port=port, ready=ready)


@cli.command("datasette-metadata")
@click.argument("path", required=False, type=click.Path(dir_okay=False, writable=True, allow_dash=True),
                default="-")
@pass_env
def datasette_metadata(env, path):
    """Write the Datasette metadata 'caf serve' uses, for running Datasette yourself.

    PATH ending in .yaml or .yml gets YAML, anything else JSON; '-' (the
    default) is standard output. The database's name in it is the file name
    without its extension, as Datasette names it.

    \b
    Examples:
      caf --db shop.db datasette-metadata metadata.json
      datasette shop.db -m metadata.json --setting suggest_facets off
    """
    from . import browser

    with env.open() as store:
        text = browser.dumps(_metadata(env, store), None if path == "-" else path)
        if path == "-":
            click.echo(text, nl=False)
            return
        _replace_when_done(path, lambda partial: Path(partial).write_text(text, encoding="utf-8"),
                           conn=store.conn)
    click.echo(f"Wrote the Datasette metadata of {env.db} to {path}")


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
@click.option("--json", "as_json", is_flag=True, help="Print a summary of the report (columns, drift) as JSON.")
@pass_env
def report(env, path, as_json):
    """Write the feature quality report: one self-contained HTML page.

    For every feature column of the last materialisation: a distribution
    plot, null and zero rates, min, percentiles and max, and the drift against
    the previous materialisation (population stability index; drifted when
    PSI > 0.2). Then events per day per kind, rejections by reason and the
    load history. Needs the optional extra [report] (matplotlib, jinja2); the
    page needs no network to view.

    \b
    Examples:
      caf --db shop.db materialize
      caf --db shop.db report quality.html
    """
    from . import report as storereport

    storereport.check_installed()
    with env.open() as store:
        storedb.check_output_file(store.conn, path)  # before the work: never onto the database
        found = storereport.compute(store.conn, store.shop_id, store.registry)
        html = storereport.render(found)
        _replace_when_done(path, lambda partial: Path(partial).write_text(html, encoding="utf-8"),
                           conn=store.conn)
    summary = {"path": path, "as_of": found.as_of, "customers": found.rows, "columns": len(found.columns),
               "previous_as_of": found.previous_as_of, "drifted": found.drifted}
    if as_json:
        echo_json(summary)
        return
    drift = ("no previous materialisation to measure drift against" if found.previous_as_of is None
             else f"{len(found.drifted)} drifted since {found.previous_as_of}")
    click.echo(f"Wrote {path}: {len(found.columns)} feature columns of {found.rows:,} customers as of "
               f"{found.as_of} ({drift})")


# -- demo -------------------------------------------------------------------------------------
@cli.command()
@click.option("--customers", "n_customers", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Number of synthetic customers (about 20 events each).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: the same seed, the same shop.")
@pass_env
def demo(env, n_customers, seed):
    """Generate a synthetic shop and show its features and stats.

    Customers have personas: loyal buyers, churners, cart abandoners,
    support-heavy, new and casual customers. The shop's history ends on
    2026-01-01, and the features shown are computed as of then. Running it
    again adds nothing new (every event has its own id).

    \b
    Examples:
      caf demo
      caf --db demo.db demo --customers 10000 --seed 7
    """
    as_of = synthetic.DEFAULT_END
    with env.open(create=True) as store:
        started = time.monotonic()
        results = synthetic.populate(store, n_customers, seed=seed)
        seconds = time.monotonic() - started
        offered = sum(r.offered for r in results.values())
        click.echo(f"Generated {n_customers:,} customers, {offered:,} records in {seconds:,.1f} s "
                   f"into {env.db} (seed {seed}).")
        picks = _demo_customers(n_customers, seed)
        ids = [cid for cid, _ in picks]
        cohort = _cohort(store, ids, as_of)
        store.materialize(as_of=as_of)
        info = storestats.summary(store)
    click.echo("")
    click.echo(f"Features as of {_iso(as_of)}, one customer per persona:")
    headers = ["feature"] + [f"{cid} ({persona})" for cid, persona in picks]
    keys = _demo_keys(cohort.values())
    rows = [[key] + [_fmt(_demo_value(cohort.get(cid, {}), key)) for cid in ids] for key in keys]
    click.echo(table(rows, headers, align=[False] + [True] * len(ids)))
    click.echo("")
    click.echo(_stats_text(env, info))
    click.echo("")
    first = ids[0]
    click.echo(f"Next: caf --db {env.db} features {first} --as-of {_iso(as_of)[:10]}")
    click.echo(f"      sqlite3 -line {env.db} "
               f"\"SELECT * FROM customer_features WHERE customer_id = '{first}'\"")


def _demo_keys(dicts):
    """The rows of the demo table: every key of the get_all_features dicts ``dicts`` whose value is
    not a dict, in key order, with the retention flags of activity_retention_tradeoff in its place
    (the device counts and the metadata, dicts, are left out)."""
    keys = {}
    for values in dicts:
        for key, value in values.items():
            if key == "activity_retention_tradeoff" and isinstance(value, dict):
                keys.update(dict.fromkeys(value))
            elif not isinstance(value, dict):
                keys[key] = None
    return list(keys)


def _demo_value(values, key):
    if key in values:
        return values[key]
    return (values.get("activity_retention_tradeoff") or {}).get(key)


def _demo_customers(n_customers, seed):
    """[(customer id, persona)]: the first customer of each persona, in persona order."""
    found = {}
    for index in range(min(n_customers, 10_000)):
        p = synthetic.persona(seed, index)
        found.setdefault(p, synthetic.customer_id(index))
        if len(found) == len(DEMO_PERSONAS):
            break
    return [(found[p], p) for p in DEMO_PERSONAS if p in found][:4]


def _cohort(store, ids, as_of):
    """{customer id: features} for a few customers."""
    return dict(store.iter_features(ids, as_of=as_of))


def main(args=None):
    """Entry point of the ``caf`` console script and of ``python -m store``."""
    cli.main(args=args, prog_name="caf")


if __name__ == "__main__":  # pragma: no cover
    main()
