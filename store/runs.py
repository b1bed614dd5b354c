"""The materialised table and the records of its runs: what a reader of ``customer_features``
needs to know about the last materialisation, below every feature module.

``store.materialize`` writes both; ``store.behavior`` reads them to serve a customer's RFM
scores from a current snapshot. Keeping them here, under both, is what lets the feature
modules and ``materialize`` import in one direction only.
"""

import json

from .db import quote_identifier

TABLE = "customer_features"
NEW_TABLE = "customer_features_new"


def table_exists(conn, name, schema="main"):
    """True when ``schema`` (main, temp or an attached schema, never a caller's text) has a
    table or view ``name``."""
    return conn.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE type IN ('table', 'view') AND name = ?",
                        [name]).fetchone() is not None


def table_columns(conn, table=TABLE):
    """Column names of an existing table, [] when it does not exist."""
    if not table_exists(conn, table):
        return []
    return [row[1] for row in conn.execute(
        f"PRAGMA table_info({quote_identifier(table, (TABLE, NEW_TABLE))})")]


def last_run(conn, shop_id):
    """The latest materializations row of the shop as a dict, or None."""
    if not table_exists(conn, "materializations"):
        return None
    cur = conn.execute("SELECT * FROM materializations WHERE shop_id = ? ORDER BY id DESC LIMIT 1", [shop_id])
    row = cur.fetchone()
    if row is None:
        return None
    run = dict(zip([d[0] for d in cur.description], row))
    run["windows"] = json.loads(run["windows"])
    run["columns"] = json.loads(run["columns"])
    run["families"] = json.loads(run["families"]) if run.get("families") is not None else None
    return run
