"""Materialisation of the feature table (``materialize``).

``materialize`` writes ``customer_features``: one row per customer of the
shop, every scalar feature of the registry as a plain column (windowed features
once per window as ``<name>_<N>d`` and once over all time as ``<name>``). Each
family query of ``sql/`` (or of a user's family file) runs as written, its
parameters bound, into a temp table of its own (``store.plan.Plan.stage``): a
windowed family once over all time and once per window, with ``:window_us``,
``:frequency_days`` and ``:frequency_us`` bound to that window's values; one
``INSERT ... SELECT`` then joins the staged tables. No SQL text is rewritten. The
new rows are built into ``customer_features_new`` and swapped in by
``ALTER TABLE ... RENAME`` inside the same transaction (the replaced table is kept as
``customer_features_previous``, the previous snapshot ``caf report`` measures drift against): a reader sees
the old snapshot or the new one, never a mix. ``materializations`` records
each run (``store.runs.record``). ``workers`` > 1 computes customer ranges in
worker processes (store/parallel.py).

The rest of the feature table's life is in store/plan.py (what is computed, and how),
store/refresh.py (bringing a snapshot forward), store/export.py (to a file) and
store/runs.py (the table and its run records).
"""

import contextlib

from . import catalog, timeutil
from .db import atomic, database_file, quote_identifier
from .parallel import partition_bounds, write_partitioned
from .plan import DEFAULT_WINDOWS, TARGETS, Plan, all_customers_params, drop_targets, fill_targets, view_sql
from .resources import query
from .runs import (AS_OF_TABLE, NEW_TABLE, PREVIOUS_AS_OF_TABLE, PREVIOUS_STORED_TABLE, PREVIOUS_TABLE, RELATIONS,
                   STORED_TABLE, TABLE, finish, relation_kind, table_columns)

def materialize(conn, shop_id, as_of_us, windows=DEFAULT_WINDOWS, families=None, workers=1, reg=None, *,
                engine="sqlite", memory_limit=None):
    """Rebuild the shop's rows of customer_features at ``as_of_us`` (caller holds the writer lock);
    ``families`` limits the columns to those families (None = every family).

    ``workers`` > 1 computes customer ranges in that many worker processes over read-only
    connections (see ``write_partitioned``); the result is the same table, row for row.
    A database with no file (in memory) is computed in this process.
    ``engine="duckdb"`` computes the rows in DuckDB (store.engines.write_duckdb: the shop's
    events are copied there, the same family statements run transpiled, the rows come back
    into the same new table); ``memory_limit`` is DuckDB's. The swap and the run record are
    the same; the returned summary then also has ``engine`` and ``seconds`` (read, compute,
    write).
    """
    engine = check_engine(engine)
    path = database_file(conn) if workers > 1 else None
    plan = Plan(conn, windows, families, reg)
    started = timeutil.iso(timeutil.now_us())
    params = plan.params(shop_id, as_of_us)
    with contextlib.ExitStack() as cleanup:  # closed after the COMMIT or ROLLBACK
        with atomic(conn):
            catalog.sync_catalog(conn, reg)
            timings = None

            def fill(conn):
                nonlocal timings
                bounds = partition_bounds(conn, shop_id, workers) if workers > 1 and path is not None else None
                if engine != "sqlite":
                    from . import engines

                    recomputed, timings = engines.write_duckdb(conn, plan, NEW_TABLE, shop_id, params, cleanup,
                                                               memory_limit=memory_limit)
                    return recomputed
                if bounds:
                    return write_partitioned(conn, cleanup, plan, path, shop_id, as_of_us, bounds, params)
                fill_targets(conn, query("fill_targets_all_customers"), all_customers_params(shop_id, as_of_us))
                plan.write(conn, NEW_TABLE, params)
                return conn.execute(f"SELECT COUNT(*) FROM {TARGETS}").fetchone()[0]

            recomputed = swap_in(conn, shop_id, plan, fill, as_of_us)
            result = finish(conn, shop_id, "full", plan, as_of_us, started, recomputed, families is None)
            drop_targets(conn)
    if timings is not None:
        result.update(engine=engine, seconds=timings)
    return result


def swap_in(conn, shop_id, plan, fill, as_of_us):
    """Inside the caller's write transaction: build the stored rows ``customer_features_new``
    with the plan's stored columns, copy the other shops' rows into it (columns in common; new
    columns NULL), let ``fill(conn)`` add the shop's rows (it returns their count, which
    ``swap_in`` returns), then swap it in as ``customer_features_stored`` (``ALTER TABLE ...
    RENAME``), set the shop's row of ``customer_features_as_of`` to ``as_of_us`` (a number, or
    a callable returning it after ``fill``) and (re)create the view ``customer_features`` over
    both (``Plan.view_sql``): a reader sees the old snapshot or the new one. The replaced
    snapshot is kept as ``customer_features_previous`` (a view over
    ``customer_features_stored_previous`` and ``customer_features_as_of_previous``; the old
    table itself when the store still had the layout without derived columns), read by the
    quality report's drift. ``materialize`` and ``store.parquet.import_features`` (rows
    computed elsewhere) both build the table here."""
    conn.execute(f"DROP TABLE IF EXISTS {NEW_TABLE}")
    conn.execute(plan.create_sql(NEW_TABLE))
    old_kind = relation_kind(conn, TABLE)  # 'view'; 'table' (the layout before derived columns); None
    source = STORED_TABLE if old_kind == "view" else TABLE if old_kind == "table" else None
    old_view = table_columns(conn, TABLE)
    old = table_columns(conn, source) if source else []
    if old:  # keep other shops' rows (columns in common; new columns NULL)
        common = [c for c in plan.stored_names if c in old]
        allowed = set(common)
        cols = ", ".join(quote_identifier(c, allowed) for c in common)
        conn.execute(f"INSERT INTO {NEW_TABLE} ({cols}) SELECT {cols} FROM main.{quote_identifier(source, RELATIONS)} "
                     "WHERE shop_id <> ?", [shop_id])
    count = fill(conn)
    if callable(as_of_us):
        as_of_us = as_of_us()
    # the replaced snapshot is kept: drift
    _drop_relation(conn, PREVIOUS_TABLE)
    conn.execute(f"DROP TABLE IF EXISTS {PREVIOUS_STORED_TABLE}")
    conn.execute(f"DROP TABLE IF EXISTS {PREVIOUS_AS_OF_TABLE}")
    conn.execute(query("create_features_as_of"))
    # legacy renames: a view of customer_features (a user's) keeps its text and reads the
    # new view, instead of following the old table or failing the RENAME while it is missing
    conn.execute("PRAGMA legacy_alter_table = ON")
    try:
        if old_kind == "view":
            conn.execute(f"DROP VIEW {TABLE}")
            conn.execute(f"ALTER TABLE {STORED_TABLE} RENAME TO {PREVIOUS_STORED_TABLE}")
            conn.execute(f"CREATE TABLE {PREVIOUS_AS_OF_TABLE} AS SELECT * FROM {AS_OF_TABLE}")
            conn.execute(view_sql(plan.reg, PREVIOUS_TABLE, PREVIOUS_STORED_TABLE, PREVIOUS_AS_OF_TABLE, old_view, old))
        elif old_kind == "table":
            conn.execute(f"ALTER TABLE {TABLE} RENAME TO {PREVIOUS_TABLE}")
            # the other shops' as_of, from their rows (one as_of per shop)
            conn.execute(query("features_as_of_from_rows"), {"shop_id": shop_id})
        conn.execute(f"DROP TABLE IF EXISTS {STORED_TABLE}")
        conn.execute(f"ALTER TABLE {NEW_TABLE} RENAME TO {STORED_TABLE}")
    finally:
        conn.execute("PRAGMA legacy_alter_table = OFF")
    # the replaced rows keep no index (drift reads them whole): their names are the new rows' now
    previous_indexes = {name for (name,) in conn.execute(query("stored_indexes"), {"table": PREVIOUS_STORED_TABLE})}
    for name in sorted(previous_indexes):
        conn.execute(f"DROP INDEX {quote_identifier(name, previous_indexes)}")
    plan.prepare_stored(conn)
    set_as_of(conn, shop_id, as_of_us)
    conn.execute(plan.view_sql())
    return count


def set_as_of(conn, shop_id, as_of_us):
    """The shop's row of ``customer_features_as_of``: the snapshot's as_of (every row of the
    shop in ``customer_features`` reads it, and the derived columns are computed from it)."""
    conn.execute(query("set_features_as_of"), {"shop_id": shop_id, "as_of": timeutil.iso(as_of_us),
                                               "as_of_us": as_of_us})


def _drop_relation(conn, name):
    kind = relation_kind(conn, name)
    if kind is not None:
        conn.execute(f"DROP {'VIEW' if kind == 'view' else 'TABLE'} {quote_identifier(name, RELATIONS)}")


ENGINES = ("sqlite", "duckdb")  # the engines materialize computes on (store.engines: the others)


def check_engine(engine):
    """An engine name of the allowlist ENGINES."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    return engine
