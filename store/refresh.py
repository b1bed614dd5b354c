"""Incremental refresh of the feature table (``refresh``).

``refresh`` brings the last snapshot to a new ``as_of`` by recomputing only
the customers whose values can have changed: those logged in
``changed_customers`` by the triggers of migration 0003, and those with an
event in ``[lo, hi]`` or ``[lo - e, hi - e]`` for a window edge ``e``, where
``lo``/``hi`` are the old and new ``as_of`` (found from the days of
``event_days``, store.event_days, each checked by a seek of its events: no
walk of the events); a customer whose only change
is an edge crossing gets only the families with that edge recomputed, and of a
windowed family only the runs with that edge (``_statement_edges``; the
other columns kept from its row). A logged customer left with no event and
no customers row loses its row, as a full ``materialize`` gives it none. No other row is written: what depends on
``as_of`` alone (``as_of`` itself, the columns a family declares ``derived``) is
computed by the view ``customer_features`` from the shop's row of
``customer_features_as_of``, which refresh sets. The
result equals a full ``materialize`` at the same ``as_of`` (tests/test_refresh.py);
a changed family definition or a changed column set makes it one.
"""

import contextlib
import json

from . import catalog, event_days, registry, timeutil
from .db import atomic, automatic_indexes, quote_identifier
from .features import target_relation
from .materialize import materialize, set_as_of
from .plan import (ALL_TIME_FREQUENCY_DAYS, DEFAULT_WINDOWS, REFRESH_HOOKS, TARGETS, Plan, drop_targets,
                   fill_targets, run_families, stage_keyed, stage_sql, window_table)
from .resources import query
from .runs import STORED_TABLE, TABLE, finish, last_run, relation_kind, table_columns

def _has_change_triggers(conn, tables):
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    return all(f"changed_customers_{t}_insert" in names for t in tables)


def _family_edges(fam, windows, reg=None, with_windows=True):
    """{(event table, window edge in days)} whose crossing events change the family's values
    (besides the events at as_of itself): its declared edges, and with ``with_windows`` the
    windows and the all-time frequency window when it has windowed features, on its edge
    tables; and those of the families it requires (their windows only when it reads them:
    ``reads windows``)."""
    edges = set(fam.edges_days or ())
    if with_windows and any(f.query == fam.query and f.materialize == catalog.WINDOWED
                            for f in catalog.features(reg)):
        edges = edges.union(*_statement_edges(fam, windows).values())  # those of each of its runs
    out = {(t, e) for t in _edge_tables(fam) for e in edges}
    names = {f.query for f in catalog.families(reg)}
    for dep in fam.requires:
        if dep in names:
            out |= _family_edges(catalog.family(dep, reg), windows, reg, fam.reads_windows)
    return out


def _edge_tables(fam):
    """The event tables whose events' crossings change the family: its ``edge tables`` line, else
    its ``tables``."""
    return fam.edge_tables if fam.edge_tables is not None else fam.tables


def _statement_edges(fam, windows):
    """{staged table: the window edges in days its columns depend on} of a windowed family's
    statements (``Plan.stage_statements``): the all-time run, its declared edges and the all-time
    frequency window; the run for the window of ``w`` days, ``w`` alone (its columns follow the
    windowed and frequency rules: events in the window). refresh stages each for the customers
    whose events changed or crossed one of its edges (``refresh_statement_targets``)."""
    out = {fam.query: set(fam.edges_days or ()) | {ALL_TIME_FREQUENCY_DAYS}}
    out.update({window_table(fam.query, w): {w} for w in windows})
    return out


def _stage_by_statement(conn, sub, fam, bit, params):
    """Stage the windowed family ``fam`` (the only family of the plan ``sub``) statement by
    statement, each for its own targets (``_statement_edges``), and give each staged table a row
    of NULLs for a target the family gave no row (a full materialize's LEFT JOIN has NULLs
    there): the write then takes a target's columns from a statement's table when the target has a
    row in it. Returns the staged tables."""
    edges = _statement_edges(fam, sub.windows)
    tables = json.dumps(sorted(_edge_tables(fam)))
    names = []
    try:
        for st in sub.stage_statements():
            fill_targets(conn, query("refresh_statement_targets"),
                         {"bit": bit, "tables": tables, "edges": json.dumps(sorted(edges[st.table]))})
            names.append(st.table)
            sub.stage_statement(conn, st, params)
            table = "temp." + quote_identifier(st.table, sub.staged_tables)
            conn.execute(f"INSERT INTO {table} (target_id) SELECT t.target_id FROM {TARGETS} AS t "
                         f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS f WHERE f.target_id = t.target_id)")
    except BaseException:
        sub.unstage(conn, names)
        raise
    return names


_REFRESH_TEMP = ("refresh_hits", "refresh_edges", "refresh_family_edges", "refresh_target", "refresh_vanished")


_EDGE_QUERIES = tuple(f.edge_query for f in catalog.FAMILIES if f.edge_query)


def _stage_edge_query(conn, fam, params, staged):
    """Compute the family's edge query (catalog.Family.edge_query) for the targets in
    temp.target into a temp table of its name keyed by target_id; returns its columns.

    A family the edge query reads that this refresh has staged (``staged``: its table
    ``temp.<family>`` holds the rows recomputed for it) is read through the query
    ``<edge query>_<family>`` when sql/ has one: those rows where there are, else the target's
    stored row, whose values of that family still hold (it is recomputed for every customer
    whose events crossed one of its edges); not computed a second time."""
    reg = registry.builtin()
    substitute = {name: f"{fam.edge_query}_{name}" for name in fam.edge_requires
                  if name in staged and reg.known(f"{fam.edge_query}_{name}")}
    body = stage_sql(reg, fam.edge_query, fam.edge_requires, [target_relation(TARGETS, True)],
                     substitute=substitute)
    table = "temp." + quote_identifier(fam.edge_query, _EDGE_QUERIES)
    return stage_keyed(conn, table, body, params, fam.edge_query)


def refresh_hits_sql(table, allowed):
    """The statement of ``refresh_hits`` for one event table, as written in sql/materialize.sql:
    the query reads the CTE ``refresh_events``, the event table ``table`` (a name of
    ``allowed``, the plan's tables), the days of its events in ``event_days``
    (store.event_days) and the table's window edges in ``temp.refresh_edges``
    (``fill_refresh_edges``)."""
    return event_days.events_sql("refresh_hits", table, allowed)


def fill_refresh_edges(conn, edges):
    """Create ``temp.refresh_edges``, the window edges refresh_hits reads, with the rows
    ``edges``: (event table, edge in days) pairs, edge 0 (an event between the two as_of)
    included by the caller for every table."""
    conn.execute("CREATE TEMP TABLE refresh_edges (events_table TEXT NOT NULL, edge_days INTEGER NOT NULL, "
                 "PRIMARY KEY (events_table, edge_days)) WITHOUT ROWID")
    conn.executemany("INSERT INTO temp.refresh_edges (events_table, edge_days) VALUES (?, ?)", sorted(set(edges)))


def _drop_vanished(conn, shop_id):
    """Delete the stored rows of the logged customers with no customers row and no event left
    (their events were deleted): a full materialize has no row for them. After the refresh-all
    hooks, which have brought such a row's measures to none (it is then in no population)."""
    conn.execute("CREATE TEMP TABLE refresh_vanished (customer_id TEXT PRIMARY KEY) WITHOUT ROWID")
    conn.execute(query("refresh_vanished"), {"shop_id": shop_id})
    for table in event_days.EVENT_TABLES:
        conn.execute(event_days.events_sql("refresh_vanished_keep", table), {"shop_id": shop_id})
    conn.execute(query("refresh_vanished_delete"), {"shop_id": shop_id})


def _drop_refresh_temp(conn):
    for name in _REFRESH_TEMP:
        conn.execute(f"DROP TABLE IF EXISTS temp.{quote_identifier(name, _REFRESH_TEMP)}")


@contextlib.contextmanager
def _refresh_temp_dropped_on_error(conn):
    """Drop refresh's temp tables when the block raises (outside its transaction: after the
    ROLLBACK of the ``atomic`` block it holds)."""
    try:
        yield
    except BaseException:
        _drop_refresh_temp(conn)
        raise


def _refresh_write_sql(plan, bits, staged, edge_staged, by_statement=()):
    """INSERT of every target's stored row (``plan.stored_names``; an existing row is updated in
    place, but for the columns of the families with a refresh-all hook): a family's columns from its staged table when
    the target's mask has the family's bit (for a family of ``by_statement``, staged statement by
    statement: when the target has a row in the statement's table); a column of the family's edge
    query from that query's staged table when the mask has the family's edge bit (``edge_staged``:
    family -> (table, columns)); from the target's old row otherwise."""
    family_of = {}
    for fam in plan.families:
        family_of[fam.query] = fam.query
        for w in plan.windows:
            family_of[window_table(fam.query, w)] = fam.query
    aliases = {}
    for _, _, cte, _ in plan.columns:
        if family_of[cte] in staged:
            aliases.setdefault(cte, f"f{len(aliases)}")
    allowed_ctes = set(aliases)
    allowed_cols = {c[3] for c in plan.columns}
    select = ["CAST(:shop_id AS TEXT)", "t.customer_id"]
    edge_alias = {fam: f"e{i}" for i, fam in enumerate(edge_staged)}
    for name, _, cte, col in plan.columns:
        if name in plan.derived:
            continue
        expr = f"o.{quote_identifier(name, plan.allowed_columns)}"
        fam = family_of[cte]
        if fam in edge_staged and name in edge_staged[fam][1]:
            new = f"{edge_alias[fam]}.{quote_identifier(name, plan.allowed_columns)}"
            expr = f"CASE WHEN t.mask & :bit_{bits[fam][1]} THEN {new} ELSE {expr} END"
        if fam in staged:
            new = f"{aliases[cte]}.{quote_identifier(col, allowed_cols)}"
            when = (f"{aliases[cte]}.target_id IS NOT NULL" if fam in by_statement
                    else f"t.mask & :bit_{bits[fam][0]}")
            expr = f"CASE WHEN {when} THEN {new} ELSE {expr} END"
        select.append(expr)
    joins = [f"LEFT JOIN temp.{quote_identifier(cte, allowed_ctes)} AS {alias} ON {alias}.target_id = t.target_id"
             for cte, alias in aliases.items()]
    joins += [f"LEFT JOIN temp.{quote_identifier(edge_staged[fam][0], _EDGE_QUERIES)} AS {alias} "
              f"ON {alias}.target_id = t.target_id" for fam, alias in edge_alias.items()]
    cols = ", ".join(quote_identifier(n, plan.allowed_columns) for n in plan.stored_names)
    # an existing row is updated in place, its columns of the families with a refresh-all hook
    # left to the hook (they are its old values here): the indexes the hook reads are not touched
    hooked = {name for name, _, cte, _ in plan.columns if family_of[cte] in plan.population_families}
    keys = {name for name, _ in catalog.KEY_COLUMNS}
    sets = ", ".join(f"{q} = excluded.{q}" for q in (quote_identifier(n, plan.allowed_columns)
                                                     for n in plan.stored_names if n not in hooked | keys))
    return (f"INSERT INTO main.{STORED_TABLE} ({cols})\nSELECT " + ",\n    ".join(select)
            + "\nFROM temp.refresh_target AS t\n"
            + f"LEFT JOIN main.{STORED_TABLE} AS o ON o.shop_id = :shop_id AND o.customer_id = t.customer_id\n"
            + "\n".join(joins) + "\nWHERE true ORDER BY t.target_id\n"
            + "ON CONFLICT (shop_id, customer_id) " + (f"DO UPDATE SET {sets}" if sets else "DO NOTHING"))


def _definitions_changed(run, plan):
    """Why the snapshot's family definitions differ from the plan's (a sentence), or None:
    a family whose SQL hash changed, a family added or removed (materializations.families)."""
    recorded = run.get("families")
    if recorded is None:
        return "the snapshot records no family definitions"
    current = plan.family_hashes()
    parts = []
    changed = sorted(n for n in current if n in recorded and recorded[n] != current[n])
    added = sorted(n for n in current if n not in recorded)
    removed = sorted(n for n in recorded if n not in current)
    for label, names in (("changed", changed), ("added", added), ("removed", removed)):
        if names:
            parts.append(f"{label}: {', '.join(names)}")
    return ("family definitions differ from the snapshot's (" + "; ".join(parts) + ")") if parts else None


def refresh(conn, shop_id, as_of_us, reg=None):
    """Bring the shop's last snapshot forward (or back) to ``as_of_us``, recomputing only
    customers whose values can have changed; a full materialize when there is no usable
    snapshot (none yet, other columns, a family without declared window edges) or when every
    family of the snapshot has a refresh-all hook.

    A customer is recomputed family by family: every family when it is logged in
    changed_customers or has an event at as_of itself (between the old and the new
    as_of); a family when one of its events crosses one of that family's window edges
    (``_family_edges``). Its other columns are kept from its old row. Then the shop's
    as_of row gets the new as_of (every row's as_of and derived columns follow, through the
    view) and the families with a ``refresh_all`` bring their columns of every row forward.
    A store whose ``customer_features`` is still a table (the layout before derived
    columns) is brought to the new layout by a full materialize."""
    run = last_run(conn, shop_id)
    windows = run["windows"] if run else DEFAULT_WINDOWS
    families = run_families(run, reg) if run else None
    plan = Plan(conn, windows, families, reg)
    reason = _definitions_changed(run, plan) if run is not None else None
    if reason is not None:
        result = materialize(conn, shop_id, as_of_us, windows, families, reg=reg)
        result["recomputed_from_scratch"] = reason
        return result
    if (run is None or run["columns"] != plan.column_names
            or relation_kind(conn, TABLE) != "view"
            or table_columns(conn, TABLE) != plan.column_names
            or table_columns(conn, STORED_TABLE) != plan.stored_names
            or (plan.everyone_on_as_of_change and run["as_of_us"] != as_of_us)
            or not _has_change_triggers(conn, plan.tables)):
        return materialize(conn, shop_id, as_of_us, windows, families, reg=reg)
    started = timeutil.iso(timeutil.now_us())
    lo, hi = sorted((run["as_of_us"], as_of_us))
    fams = [f for f in plan.families if f.refresh_all is None]
    if not fams:
        # every family is brought forward for everyone by its refresh-all hook, which updates
        # the rows there are: a full materialize is the same work and adds new customers' rows
        return materialize(conn, shop_id, as_of_us, windows, families, reg=reg)
    # (full bit, edge bit) of each family: the edge bit marks customers whose only change
    # is an edge crossing, for the family's edge query; the full bit when it has none
    bits = {f.query: (1 << (2 * i), 1 << (2 * i + (1 if f.edge_query else 0))) for i, f in enumerate(fams)}
    edge_rows = sorted({(bits[f.query][1], t, e) for f in fams for t, e in _family_edges(f, plan.windows, reg)
                        if t in plan.tables})
    allowed_tables = set(plan.tables)
    params = plan.params(shop_id, as_of_us)
    params.update({f"bit_{b}": b for pair in bits.values() for b in pair})
    with _refresh_temp_dropped_on_error(conn), atomic(conn):
        catalog.sync_catalog(conn, reg)
        _drop_refresh_temp(conn)
        conn.execute("CREATE TEMP TABLE refresh_hits (customer_id TEXT NOT NULL, events_table TEXT NOT NULL, "
                     "edge_days INTEGER NOT NULL)")
        conn.execute("CREATE TEMP TABLE refresh_family_edges (events_table TEXT NOT NULL, edge_days INTEGER NOT NULL, "
                     "bit INTEGER NOT NULL, PRIMARY KEY (events_table, edge_days, bit))")
        conn.executemany("INSERT INTO temp.refresh_family_edges (bit, events_table, edge_days) VALUES (?, ?, ?)",
                         edge_rows)
        # each event table's window edges for refresh_hits, and edge 0 (an event between the two as_of)
        fill_refresh_edges(conn, [(t, 0) for t in plan.tables] + [(t, e) for _, t, e in edge_rows])
        for t in plan.tables:
            conn.execute("INSERT INTO temp.refresh_hits (customer_id, events_table, edge_days)\n"
                         + refresh_hits_sql(t, allowed_tables),
                         {"shop_id": shop_id, "lo_us": lo, "hi_us": hi, "events_table": t})
        conn.execute("CREATE INDEX temp.refresh_hits_edge ON refresh_hits (events_table, edge_days, customer_id)")
        conn.execute("CREATE TEMP TABLE refresh_target (target_id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL, "
                     "as_of_us INTEGER NOT NULL, mask INTEGER NOT NULL, every_family INTEGER NOT NULL)")
        conn.execute("INSERT INTO temp.refresh_target (target_id, customer_id, as_of_us, mask, every_family) "
                     + query("refresh_targets"),
                     {"shop_id": shop_id, "as_of_us": as_of_us,
                      "all_bits": sum(pair[0] for pair in bits.values())})
        # refresh_statement_targets' two ways in: by customer (from an edge's crossings; covering)
        # and the customers whose events changed (a few of the targets: a partial index)
        conn.execute("CREATE INDEX temp.refresh_target_customer ON refresh_target (customer_id, mask, as_of_us)")
        conn.execute("CREATE INDEX temp.refresh_target_every_family ON refresh_target (target_id) WHERE every_family")
        staged, edge_staged, by_statement = {}, {}, set()
        windowed = {f.query for f in plan.windowed}
        with automatic_indexes(conn):
            try:
                for fam in fams:
                    full, edge = bits[fam.query]
                    subsets = [(full, 0)] + ([(edge, full)] if edge != full else [])
                    for bit, unless in subsets:  # targets with bit and without unless
                        if conn.execute("SELECT 1 FROM temp.refresh_target WHERE mask & ? AND NOT mask & ? "
                                        "LIMIT 1", [bit, unless]).fetchone() is None:
                            continue
                        if bit == full and edge == full and fam.query in windowed:
                            # each run of a windowed family for the customers its edges concern
                            sub = Plan(conn, plan.windows, {fam.query}, reg)
                            staged[fam.query] = (sub, _stage_by_statement(conn, sub, fam, full, params))
                            by_statement.add(fam.query)
                            continue
                        fill_targets(conn, "SELECT target_id, customer_id, as_of_us FROM temp.refresh_target "
                                            "WHERE mask & :bit AND NOT mask & :unless ORDER BY target_id",
                                      {"bit": bit, "unless": unless})
                        if bit == full:
                            sub = Plan(conn, plan.windows, {fam.query}, reg)
                            staged[fam.query] = (sub, sub.stage(conn, params))
                        else:
                            edge_staged[fam.query] = (fam.edge_query, _stage_edge_query(conn, fam, params, staged))
                conn.execute(_refresh_write_sql(plan, bits, staged, edge_staged, by_statement), params)
            finally:
                for sub, names in staged.values():
                    sub.unstage(conn, names)
                for table, _ in edge_staged.values():
                    conn.execute(f"DROP TABLE IF EXISTS temp.{quote_identifier(table, _EDGE_QUERIES)}")
            set_as_of(conn, shop_id, as_of_us)
            for fam in plan.families:  # families whose values depend on other customers (catalog.Family)
                if fam.refresh_all is not None:
                    REFRESH_HOOKS[fam.refresh_all].refresh(conn, shop_id, as_of_us, run["as_of_us"])
            _drop_vanished(conn, shop_id)
        recomputed = conn.execute("SELECT COUNT(*) FROM temp.refresh_target").fetchone()[0]
        _drop_refresh_temp(conn)
        result = finish(conn, shop_id, "refresh", plan, as_of_us, started, recomputed, families is None)
        drop_targets(conn)
    return result
