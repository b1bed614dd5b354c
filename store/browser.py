"""The feature browser: Datasette on the store, with metadata generated from the catalog.

``metadata(conn, shop_id, reg, database)`` builds Datasette's metadata document (the same
one ``caf serve`` hands to Datasette and ``caf datasette-metadata`` writes to a file):

* every column of ``customer_features`` described from its catalog record (meaning, unit,
  type, null rule, window): the feature registry (``store.catalog.features(reg)``, users'
  families included) through the columns of the shop's last materialisation
  (``store.plan.Plan``), never a list written here;
* every column of the event tables (``store.ingest.KINDS``' tables and ``customers``)
  described from the schema itself: the key columns every event row has
  (``EVENT_KEY_COLUMNS``), else the comment the migration wrote after the column, else
  its declared type; a unit where the name says it (``_us``, ``_seconds``, ``_hours``,
  ``_value``);
* facets on the categorical (``text``) and flag (``boolean``) feature columns, from the
  catalog's types;
* every table that is not a shown one (event tables, ``customer_features``, the catalog,
  rejections, loads, materialisations) hidden: staging tables, the change log, the
  migrations' record, the previous and the half-built feature tables;
* canned queries (sql/browser.sql, as written, plus ``customer_features_readable``: the
  table with every time column, from the catalog's unit, as ISO-8601 UTC text).

``serve(path, metadata, host, port)`` runs Datasette in this process (uvicorn), the database
opened read-only (``mode=ro``: Datasette's mutable mode, which sees what a writer commits to
the WAL; ``immutable=1`` would not). Datasette is the optional extra ``[serve]``, imported here
only when ``serve`` runs.
"""

import json

from . import catalog, ingest
from .db import quote_identifier
from .errors import StoreError, require_extra
from .report import feature_columns
from .resources import query
from .runs import TABLE, table_exists

# The columns every event row has (migrations/0001_initial.sql's conventions).
EVENT_KEY_COLUMNS = {
    "shop_id": ("the shop the row belongs to ('' is the default shop)", "text"),
    "customer_id": ("the customer's id, as text", "text"),
    "event_id": ("the caller's natural key of the event (order, session, cart or ticket id)", "text"),
    "event_time_us": ("the event's instant", "microseconds since 1970-01-01 UTC"),
    "as_of": ("the snapshot's point in time: events at or before it count", "ISO-8601 UTC text"),
    "as_of_us": ("the snapshot's point in time", "microseconds since 1970-01-01 UTC"),
}
# A unit from a column name's ending, for event-table columns whose schema names none.
NAME_UNITS = (("_us", "microseconds since 1970-01-01 UTC"), ("_seconds", "seconds"), ("_hours", "hours"),
              ("_value", "currency units"), ("_at", "ISO-8601 UTC text"))
# Tables shown besides the event tables; every other table of the database is hidden.
SHOWN_TABLES = (TABLE, "feature_catalog", "rejected_events", "loads", "materializations")
TIME_UNIT = "microseconds since"  # a feature whose unit starts so is a time (shown readable)
CANNED = (
    ("customer", "browser_customer", "One customer's features",
     "Every feature column of one customer (?customer_id=...&shop=..., add .json for JSON). "
     "An unknown customer gives no row: status 200, \"rows\": []. The table's row page "
     "(/DB/customer_features/SHOP,CUSTOMER) answers 404 instead."),
    ("top_customers", "browser_top_customers", "Top customers by value",
     "The 100 customers with the largest total_purchase_value (sum of their order values to date)."),
    ("rejections_by_reason", "browser_rejections_by_reason", "Rejections by reason",
     "Offered events that were not stored, counted per kind and reason."),
    ("load_history", "browser_load_history", "Load history", "The file loads, newest first."),
    ("materializations", "browser_materializations", "Materialisations",
     "The materialize and refresh runs, newest first."),
)


def event_tables():
    """The event tables (ingest's kinds) and ``customers``."""
    return ("customers",) + tuple(kind.table for kind in ingest.KINDS.values())


def feature_description(feature, window=None):
    """One column's description from its catalog record."""
    if window is not None:
        window_text = f"the last {window} days up to as_of"
    elif feature.materialize == catalog.WINDOWED:
        window_text = "all events up to as_of"  # the all-time column of a windowed feature
    else:
        window_text = feature.window_rule
    return (f"{feature.meaning} Unit: {feature.unit}; type: {feature.type}; when empty: {feature.null_rule}; "
            f"window: {window_text}.")


def _schema_columns(conn, table):
    """{column: (declared type, comment)} of a table, the comment being what its CREATE
    statement (as the migrations wrote it) has after the column's definition on that line."""
    columns = {row[1]: (row[2], "") for row in conn.execute(
        f"PRAGMA table_info({quote_identifier(table, event_tables())})")}
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]).fetchone()
    for line in (sql[0] if sql else "").splitlines():
        definition, sep, comment = line.partition("--")
        words = definition.replace(",", " ").split()
        if sep and words and words[0].strip('"') in columns and len(words[0]) > 1:
            name = words[0].strip('"')
            # a column added by ALTER TABLE lands on the line of an earlier one: the comment
            # belongs to the first definition of the line only
            columns[name] = (columns[name][0], comment.strip())
    return columns


def event_column_description(table, column, declared, comment):
    if column in EVENT_KEY_COLUMNS:
        meaning, unit = EVENT_KEY_COLUMNS[column]
    else:
        meaning = comment or f"{column.replace('_', ' ')} ({declared or 'any'} column of {table})"
        unit = next((u for end, u in NAME_UNITS if column.endswith(end)), None)
        if unit is None:
            unit = {"INTEGER": "integer", "REAL": "number", "TEXT": "text"}.get(declared.upper(), "value")
    return f"{meaning[:1].upper()}{meaning[1:]}. Unit: {unit}."


def readable_sql(columns):
    """``customer_features`` with every time column (a feature whose unit is microseconds since
    the epoch) also as ISO-8601 UTC text, ``<column without _us>_utc``, first."""
    allowed = {c for c, _f, _w in columns}
    times = [(c, f) for c, f, _w in columns if f.unit.startswith(TIME_UNIT)]
    shown = [f"strftime('%Y-%m-%dT%H:%M:%SZ', {quote_identifier(c, allowed)} / 1000000.0, 'unixepoch') "
             f"AS {quote_identifier(c.removesuffix('_us') + '_utc', {c.removesuffix('_us') + '_utc'})}"
             for c, _f in times]
    return ("SELECT " + ", ".join(["shop_id", "customer_id", "as_of"] + shown + ["*"])
            + f" FROM {TABLE} WHERE shop_id = :shop ORDER BY customer_id")


def metadata(conn, shop_id="", reg=None, database="store"):
    """Datasette's metadata document (a dict) for the store on ``conn``, database name ``database``."""
    columns = feature_columns(conn, shop_id, reg)
    tables = {}
    feature_table = {
        "description": "One row per customer: every feature as of the snapshot's as_of (caf materialize).",
        "columns": {name: event_column_description(TABLE, name, decl, "") for name, decl in catalog.KEY_COLUMNS},
        "facets": [],
        "sort": "customer_id",
    }
    for column, feature, window in columns:
        feature_table["columns"][column] = feature_description(feature, window)
        if feature.type in ("text", "boolean"):
            feature_table["facets"].append(column)
    tables[TABLE] = feature_table
    for table in event_tables():
        if not table_exists(conn, table):
            continue
        tables[table] = {
            "description": f"Stored {table} rows (times in microseconds; the {table}_readable view shows them "
                           "as text).",
            "columns": {c: event_column_description(table, c, decl, comment)
                        for c, (decl, comment) in _schema_columns(conn, table).items()},
        }
    tables["feature_catalog"] = {"description": "One record per feature: meaning, type, unit, window and null "
                                                "rules, the SQL query computing it."}
    tables["rejected_events"] = {"description": "Events offered but not stored, with the reason.",
                                 "facets": ["kind"]}
    tables["loads"] = {"description": "File loads: source, counts, status."}
    tables["materializations"] = {"description": "Materialisation and refresh runs."}
    shown = set(tables) | {f"{t}_readable" for t in event_tables()}
    # hidden too: the stored rows and as_of rows under the view customer_features, the previous snapshot
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name"):
        if name not in shown:
            tables[name] = {"hidden": True}
    queries = {"customer_features_readable": {
        "sql": readable_sql(columns), "title": "Customer features, readable times",
        "description": "customer_features with its times as ISO-8601 UTC text (*_utc columns first)."}}
    for key, name, title, description in CANNED:
        queries[key] = {"sql": query(name), "title": title, "description": description}
    return {
        "title": "Customer activity features",
        "description": "The feature store's tables, described from its feature catalog (caf serve).",
        "databases": {database: {"tables": tables, "queries": queries}},
    }


def dumps(document, path=None):
    """The metadata as text: YAML when ``path`` ends in .yaml/.yml (PyYAML, which Datasette
    installs), JSON otherwise."""
    if path is not None and str(path).lower().endswith((".yaml", ".yml")):
        (yaml,) = require_extra("serve", ("yaml",), "writing YAML")
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return json.dumps(document, indent=2) + "\n"


SETTINGS = {"suggest_facets": False, "sql_time_limit_ms": 5000, "facet_time_limit_ms": 1000}


def _datasette():
    app, uvicorn = require_extra("serve", ("datasette.app", "uvicorn"), "caf serve")
    return app.Datasette, uvicorn


def check_installed():
    """Raise MissingExtraError naming the extra when Datasette is missing."""
    _datasette()


def application(path, document):
    """The Datasette ASGI application on the database file ``path`` opened read-only."""
    Datasette, _uvicorn = _datasette()
    ds = Datasette([str(path)], metadata=document, settings=SETTINGS)
    return ds.app()


def serve(path, document, host="127.0.0.1", port=8001, ready=None):
    """Serve ``path`` with Datasette until interrupted (SIGINT/SIGTERM stop it cleanly). The
    socket is bound first (a port in use is a StoreError, before anything is announced);
    ``ready(url)`` is then called with the address actually listened on (``port`` 0: any free one)."""
    import socket

    _Datasette, uvicorn = _datasette()
    app = application(path, document)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StoreError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, host=host, port=bound, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    if ready is not None:
        ready(f"http://{host}:{bound}/")
    server.run(sockets=[sock])
