"""The materialised table and the records of its runs: what a reader of ``customer_features``
needs to know about the last materialisation, below every feature module, and how a run is
recorded (``finish``, ``record``: one ``materializations`` row).

``store.materialize`` and ``store.refresh`` write both; ``store.behavior`` reads them to serve a customer's RFM
scores from a current snapshot. Keeping them here, under both, is what lets the feature
modules and ``materialize`` import in one direction only.
"""

import json

from . import event_days, timeutil
from .db import applied_steps, quote_identifier

TABLE = "customer_features"  # a view: the stored rows with the snapshot's as_of and the derived columns
STORED_TABLE = "customer_features_stored"  # the stored rows: keys and every column that is not derived
AS_OF_TABLE = "customer_features_as_of"  # one row per shop: the snapshot's as_of (as_of, as_of_us)
NEW_TABLE = "customer_features_new"  # the stored rows being built (swapped in as STORED_TABLE)
PREVIOUS_TABLE = "customer_features_previous"  # the snapshot a full materialize replaced (the report's drift)
PREVIOUS_STORED_TABLE = "customer_features_stored_previous"  # ... its stored rows
PREVIOUS_AS_OF_TABLE = "customer_features_as_of_previous"  # ... and its as_of rows
RELATIONS = (TABLE, STORED_TABLE, AS_OF_TABLE, NEW_TABLE, PREVIOUS_TABLE, PREVIOUS_STORED_TABLE,
             PREVIOUS_AS_OF_TABLE)  # the allowlist of the feature table's relation names


def table_exists(conn, name, schema="main"):
    """True when ``schema`` (main, temp or an attached schema, never a caller's text) has a
    table or view ``name``."""
    return relation_kind(conn, name, schema) is not None


def relation_kind(conn, name, schema="main"):
    """'table' or 'view' for an existing relation ``name`` of ``schema`` (as for table_exists), None
    when there is none (a store materialised before derived columns has ``customer_features`` as a
    table)."""
    row = conn.execute(f"SELECT type FROM {schema}.sqlite_master WHERE type IN ('table', 'view') AND name = ?",
                       [name]).fetchone()
    return row[0] if row else None


def table_columns(conn, table=TABLE):
    """Column names of an existing table or view, [] when it does not exist."""
    if not table_exists(conn, table):
        return []
    return [row[1] for row in conn.execute(f"PRAGMA table_info({quote_identifier(table, RELATIONS)})")]


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


def finish(conn, shop_id, kind, plan, as_of_us, started, recomputed, every_family=True):
    """The end of a materialisation's transaction: the change log of the shop is consumed and
    the run recorded (``plan``: a store.plan.Plan; the caller drops its targets and its
    ``atomic`` block commits). The days of the logged customers' events are added to
    event_days first (store.event_days.sync)."""
    event_days.sync(conn, shop_id)
    conn.execute("DELETE FROM changed_customers WHERE shop_id = ?", [shop_id])
    return record(conn, shop_id, kind, plan, as_of_us, started, recomputed, every_family)


def record(conn, shop_id, kind, plan, as_of_us, started, recomputed, every_family=True):
    """One materializations row: the run's windows, columns, and (migration 0006) the families
    it used with the sha256 of each one's SQL, and whether it had every family of the registry."""
    rows = conn.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE shop_id = ?", [shop_id]).fetchone()[0]
    steps = applied_steps(conn)
    conn.execute(
        "INSERT INTO materializations (shop_id, kind, as_of, as_of_us, windows, columns, schema_version, "
        "started_at, finished_at, rows, recomputed, families, all_families) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [shop_id, kind, timeutil.iso(as_of_us), as_of_us, json.dumps(list(plan.windows)),
         json.dumps(plan.column_names), steps[-1] if steps else "", started,
         timeutil.iso(timeutil.now_us()), rows, recomputed, json.dumps(plan.family_hashes()),
         1 if every_family else 0])
    return {"kind": kind, "as_of": timeutil.iso(as_of_us), "windows": list(plan.windows), "rows": rows,
            "recomputed": recomputed, "columns": len(plan.column_names)}
