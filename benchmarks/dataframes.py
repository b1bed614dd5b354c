"""Materialisation on DataFrame libraries (issue 6, measurement 4): pandas and DuckDB.

Both compute, for every customer of the shop (shop_id ''), exactly the 84 feature
columns + customer_id of the hand-written reference (``reference.all_columns()``,
``reference.select_statement()``), from the four event tables of the shop database
read with the standard ``sqlite3`` module; the load is part of the figure (as for the
in-memory Python reference). Neither library is a dependency of the project: this
module imports them only inside the functions, and the benchmark step skips a
variant whose library is not importable.

* pandas: idiomatic vectorised pandas: ``read_sql_query`` per table, customer ids
  turned into integer codes once, then per window a masked frame grouped by customer
  (``groupby(...).agg(...)``), re-indexed on every customer; no per-customer loop.
* DuckDB: the same frames copied into DuckDB tables, then one SQL statement
  equivalent to the hand-written one (``duckdb_statement()``) written into a table.
  DuckDB's sqlite scanner would need a network download of the extension, so the
  load goes through the pandas frames; extension auto-install/auto-load are off.
"""

import math
import sqlite3
import time

from . import reference

DAY = reference.US_PER_DAY
LOAD_SQL = {
    "purchases": "SELECT customer_id, event_time_us, order_value FROM purchases WHERE shop_id = ''",
    "sessions": "SELECT customer_id, event_time_us, duration_seconds, device_type FROM sessions "
                "WHERE shop_id = ''",
    "cart_events": "SELECT customer_id, event_time_us, event_type, cart_value FROM cart_events "
                   "WHERE shop_id = ''",
    "support_interactions": "SELECT customer_id, event_time_us, response_time_hours, escalated "
                            "FROM support_interactions WHERE shop_id = ''",
    "customers": "SELECT customer_id FROM customers WHERE shop_id = ''",
}
READ_CHUNK = 200_000  # rows per fetchmany while loading (bounds the transient tuples)
COMPARE_CHUNK = 20_000


# column types (NULLs: NaN), so that an all-NULL or empty column keeps its numeric type
DTYPES = {"event_time_us": "int64", "order_value": "float64", "duration_seconds": "float64",
          "cart_value": "float64", "response_time_hours": "float64", "escalated": "int64"}


def load_frames(pd, conn):
    """{table: DataFrame} of the shop's rows (shop_id ''), read with sqlite3 in chunks."""
    frames = {}
    for name, sql in LOAD_SQL.items():
        cols = [d[0] for d in conn.execute(sql + " LIMIT 0").description]
        dtype = {c: DTYPES[c] for c in cols if c in DTYPES}
        parts = list(pd.read_sql_query(sql, conn, chunksize=READ_CHUNK, dtype=dtype))
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
        frames[name] = frame.astype(dtype)
    return frames


# -- pandas -------------------------------------------------------------------------------------
def pandas_features(pd, frames, as_of_us):
    """One DataFrame, a row per customer sorted by customer_id, columns customer_id + all_columns()."""
    # every customer: the customers table and every event table (as the all_customers view)
    ids = pd.Index(pd.concat([f["customer_id"] for f in frames.values()], ignore_index=True).unique())
    ids = ids.sort_values()
    n = len(ids)
    idx = pd.RangeIndex(n)
    ev = {}
    for name in ("purchases", "sessions", "cart_events", "support_interactions"):
        f = frames[name]
        f = f[f["event_time_us"] <= as_of_us]
        ev[name] = f.assign(code=ids.get_indexer(f["customer_id"])).drop(columns="customer_id")
    p, s, c, t = ev["purchases"], ev["sessions"], ev["cart_events"], ev["support_interactions"]
    c = c.assign(converted=(c["event_type"] == "converted").astype("float64"),
                 abandoned=(c["event_type"] == "abandoned").astype("int64"))
    c = c.assign(abandoned_value=c["cart_value"].where(c["abandoned"] == 1).fillna(0.0))
    t = t.assign(escalated_f=t["escalated"].astype("float64"),
                 escalated_n=(t["escalated"] == 1).astype("int64"))

    def window(frame, w):
        return frame if w is None else frame[frame["event_time_us"] >= as_of_us - w * DAY]

    def per_customer(frame, **aggs):
        return frame.groupby("code").agg(**aggs).reindex(idx)

    out = {"customer_id": pd.Series(ids, index=idx)}
    counts = {}
    for w in reference.WINDOWS:
        x = reference.suffix(w)
        g = per_customer(window(p, w), n=("order_value", "size"), total=("order_value", "sum"),
                         avg=("order_value", "mean"))
        counts["p", x] = g["n"].fillna(0).astype("int64")
        out[f"purchase_count_{x}"] = counts["p", x]
        out[f"total_purchase_value_{x}"] = g["total"].fillna(0.0)
        out[f"average_order_value_{x}"] = g["avg"].fillna(0.0)
        g = per_customer(window(s, w), n=("duration_seconds", "size"), avg=("duration_seconds", "mean"))
        counts["s", x] = g["n"].fillna(0).astype("int64")
        out[f"session_count_{x}"] = counts["s", x]
        out[f"average_session_duration_{x}"] = g["avg"].fillna(0.0)
        g = per_customer(window(c, w), n=("converted", "size"), abandoned=("abandoned", "sum"),
                         ratio=("converted", "mean"), value=("abandoned_value", "sum"))
        out[f"cart_event_count_{x}"] = g["n"].fillna(0).astype("int64")
        out[f"abandoned_cart_count_{x}"] = g["abandoned"].fillna(0).astype("int64")
        out[f"cart_conversion_ratio_{x}"] = g["ratio"].fillna(0.0)
        out[f"abandoned_cart_value_{x}"] = g["value"].fillna(0.0)
        g = per_customer(window(t, w), n=("escalated", "size"), response=("response_time_hours", "mean"),
                         escalations=("escalated_n", "sum"), ratio=("escalated_f", "mean"))
        out[f"support_ticket_count_{x}"] = g["n"].fillna(0).astype("int64")
        out[f"average_response_time_hours_{x}"] = g["response"]  # NaN (None) when no response time
        out[f"escalation_count_{x}"] = g["escalations"].fillna(0).astype("int64")
        out[f"escalation_ratio_{x}"] = g["ratio"].fillna(0.0)
    for w in reference.WINDOWS:  # count per 30 days; all time: the last 30 days
        x, fw = reference.suffix(w), (30 if w is None else w)
        key = reference.suffix(fw)
        out[f"purchase_frequency_{x}"] = counts["p", key] / (fw / 30.0)
        out[f"session_frequency_{x}"] = counts["s", key] / (fw / 30.0)
    last = p.groupby("code")["event_time_us"].max().reindex(idx).astype("Int64")
    out["last_purchase_us"] = last
    out["purchase_recency_days"] = (as_of_us - last) // DAY
    # primary device: most sessions, then the earliest first session, then the device name
    d = (s.groupby(["code", "device_type"])["event_time_us"].agg(["size", "min"]).reset_index()
         .sort_values(["code", "size", "min", "device_type"], ascending=[True, False, True, True])
         .drop_duplicates("code"))
    out["primary_device"] = d.set_index("code")["device_type"].reindex(idx)
    p30, p90 = out["purchase_count_30d"], out["purchase_count_90d"]
    high = (p30 > 0) & (out["session_count_30d"] > 0)
    declining = (p30 > 0) & (p90 > 0) & ((p30 / 1.0) / (p90 / 3.0) < 0.7)
    support = (out["escalation_ratio_30d"] > 0.5) | (out["support_ticket_count_30d"] > 3)
    cart = (out["cart_conversion_ratio_30d"] < 0.3) & (out["abandoned_cart_count_30d"] > 2)
    out["high_short_term_activity"] = high.astype("int64")
    out["declining_engagement"] = declining.astype("int64")
    out["support_risk"] = support.astype("int64")
    out["cart_abandonment_risk"] = cart.astype("int64")
    recent = (out["purchase_recency_days"] > 60).fillna(False).astype(bool)
    out["retention_concern"] = (recent | declining | support | cart).astype("int64")
    out["activity_trend"] = (pd.Series("inactive", index=idx, dtype=object)
                             .mask(high, "stable").mask(declining, "declining"))
    return pd.DataFrame({k: out[k] for k in ["customer_id"] + reference.all_columns()})


def pandas_rows(df):
    """Yield (customer_id, values tuple in all_columns() order); NaN / <NA> become None."""
    cols = reference.all_columns()
    for start in range(0, len(df), COMPARE_CHUNK):
        part = df.iloc[start:start + COMPARE_CHUNK]
        lists = [part[col].astype(object).where(part[col].notna(), None).tolist()
                 for col in ["customer_id"] + cols]
        for row in zip(*lists):
            yield row[0], row[1:]


def run_pandas(db, as_of_us):
    """(seconds, customers, result DataFrame, load seconds): load + compute."""
    import pandas as pd
    conn = sqlite3.connect(db)
    try:
        t0 = time.perf_counter()
        frames = load_frames(pd, conn)
        loaded = time.perf_counter() - t0
        df = pandas_features(pd, frames, as_of_us)
        seconds = time.perf_counter() - t0
    finally:
        conn.close()
    return seconds, len(df), df, loaded


# -- DuckDB -------------------------------------------------------------------------------------
def duckdb_statement():
    """The hand-written statement in DuckDB SQL (parameter $as_of_us): the same per-table
    GROUP BY with FILTER, left-joined on every customer. SQLite TOTAL(x) is COALESCE(SUM(x), 0.0)
    here, integer division is //, booleans are averaged as doubles."""
    p, s, c, t = [], [], [], []
    for w in reference.WINDOWS:
        x = reference.suffix(w)
        f = "true" if w is None else f"event_time_us >= $as_of_us - {w * DAY}"
        fw = 30 if w is None else w
        ff = f"event_time_us >= $as_of_us - {fw * DAY}"
        per30 = f"(CAST({fw} AS DOUBLE) / 30.0)"
        p += [f"COUNT(*) FILTER (WHERE {f}) AS purchase_count_{x}",
              f"COALESCE(SUM(order_value) FILTER (WHERE {f}), 0.0) AS total_purchase_value_{x}",
              f"COALESCE(AVG(order_value) FILTER (WHERE {f}), 0.0) AS average_order_value_{x}",
              f"COUNT(*) FILTER (WHERE {ff}) / {per30} AS purchase_frequency_{x}"]
        s += [f"COUNT(*) FILTER (WHERE {f}) AS session_count_{x}",
              f"COALESCE(AVG(duration_seconds) FILTER (WHERE {f}), 0.0) AS average_session_duration_{x}",
              f"COUNT(*) FILTER (WHERE {ff}) / {per30} AS session_frequency_{x}"]
        c += [f"COUNT(*) FILTER (WHERE {f}) AS cart_event_count_{x}",
              f"COUNT(*) FILTER (WHERE event_type = 'abandoned' AND {f}) AS abandoned_cart_count_{x}",
              f"COALESCE(AVG(CAST(event_type = 'converted' AS DOUBLE)) FILTER (WHERE {f}), 0.0)"
              f" AS cart_conversion_ratio_{x}",
              f"COALESCE(SUM(cart_value) FILTER (WHERE event_type = 'abandoned' AND {f}), 0.0)"
              f" AS abandoned_cart_value_{x}"]
        t += [f"COUNT(*) FILTER (WHERE {f}) AS support_ticket_count_{x}",
              f"AVG(response_time_hours) FILTER (WHERE {f}) AS average_response_time_hours_{x}",
              f"COUNT(*) FILTER (WHERE escalated = 1 AND {f}) AS escalation_count_{x}",
              f"COALESCE(AVG(CAST(escalated AS DOUBLE)) FILTER (WHERE {f}), 0.0) AS escalation_ratio_{x}"]
    p.append(f"($as_of_us - MAX(event_time_us)) // {DAY} AS purchase_recency_days")
    p.append("MAX(event_time_us) AS last_purchase_us")

    def agg(exprs, table):
        body = ",\n        ".join(["customer_id"] + exprs)
        return f"SELECT\n        {body}\n    FROM {table}\n    WHERE event_time_us <= $as_of_us\n    GROUP BY customer_id"

    out = []
    for col in reference.columns():
        alias = ("p" if col.startswith(("purchase", "total_purchase", "average_order", "last_purchase")) else
                 "s" if col.startswith(("session", "average_session")) else
                 "c" if col.startswith(("cart", "abandoned")) else "t")
        if col in ("purchase_recency_days", "last_purchase_us") or col.startswith("average_response_time"):
            out.append(f"{alias}.{col}")
        else:
            out.append(f"COALESCE({alias}.{col}, 0) AS {col}")
    select = ",\n    ".join(["ids.customer_id AS customer_id"] + out + ["d.device_type AS primary_device"])
    return (
        "SELECT *,\n"
        "    CAST(COALESCE(purchase_recency_days > 60, false) OR declining_engagement = 1 OR support_risk = 1\n"
        "        OR cart_abandonment_risk = 1 AS INTEGER) AS retention_concern,\n"
        "    CASE WHEN declining_engagement = 1 THEN 'declining' WHEN high_short_term_activity = 1 THEN 'stable'\n"
        "        ELSE 'inactive' END AS activity_trend\n"
        "FROM (SELECT *,\n"
        "    CAST(purchase_count_30d > 0 AND session_count_30d > 0 AS INTEGER) AS high_short_term_activity,\n"
        "    CAST(purchase_count_30d > 0 AND purchase_count_90d > 0\n"
        "        AND CAST(purchase_count_30d AS DOUBLE) / (CAST(purchase_count_90d AS DOUBLE) / 3.0) < 0.7\n"
        "        AS INTEGER) AS declining_engagement,\n"
        "    CAST(escalation_ratio_30d > 0.5 OR support_ticket_count_30d > 3 AS INTEGER) AS support_risk,\n"
        "    CAST(cart_conversion_ratio_30d < 0.3 AND abandoned_cart_count_30d > 2 AS INTEGER)"
        " AS cart_abandonment_risk\n"
        "FROM (\n"
        "WITH\n"
        "ids AS (SELECT customer_id FROM customers UNION SELECT customer_id FROM purchases\n"
        "    UNION SELECT customer_id FROM sessions UNION SELECT customer_id FROM cart_events\n"
        "    UNION SELECT customer_id FROM support_interactions),\n"
        f"p AS (\n    {agg(p, 'purchases')}),\n"
        f"s AS (\n    {agg(s, 'sessions')}),\n"
        f"c AS (\n    {agg(c, 'cart_events')}),\n"
        f"t AS (\n    {agg(t, 'support_interactions')}),\n"
        "dev AS (\n    SELECT customer_id, device_type, ROW_NUMBER() OVER (PARTITION BY customer_id\n"
        "        ORDER BY COUNT(*) DESC, MIN(event_time_us), device_type) AS rank\n"
        "    FROM sessions WHERE event_time_us <= $as_of_us\n"
        "    GROUP BY customer_id, device_type)\n"
        f"SELECT\n    {select}\n"
        "FROM ids\n"
        "LEFT JOIN p ON p.customer_id = ids.customer_id\n"
        "LEFT JOIN s ON s.customer_id = ids.customer_id\n"
        "LEFT JOIN c ON c.customer_id = ids.customer_id\n"
        "LEFT JOIN t ON t.customer_id = ids.customer_id\n"
        "LEFT JOIN dev AS d ON d.customer_id = ids.customer_id AND d.rank = 1\n"
        "))"
    )


def duckdb_connect():
    import duckdb
    # no network: never try to download an extension
    return duckdb.connect(config={"autoinstall_known_extensions": False,
                                  "autoload_known_extensions": False})


def duckdb_load(con, frames):
    """Copy the pandas frames into DuckDB tables of the same names."""
    for name, frame in frames.items():
        con.register("frame_" + name, frame)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame_{name}")
        con.unregister("frame_" + name)


def duckdb_compute(con, as_of_us):
    """The one statement written into the DuckDB table ``features`` (as the hand-written one writes a table)."""
    con.execute("CREATE TABLE features AS " + duckdb_statement(), {"as_of_us": int(as_of_us)})


def run_duckdb(db, as_of_us):
    """(seconds, customers, duckdb connection holding table ``features``, load seconds): load + compute.

    Load: sqlite3 -> pandas frames (chunked read_sql_query) -> DuckDB tables (the frames are then
    dropped); compute: ``duckdb_compute``."""
    import pandas as pd
    conn = sqlite3.connect(db)
    con = duckdb_connect()
    try:
        t0 = time.perf_counter()
        frames = load_frames(pd, conn)
        duckdb_load(con, frames)
        del frames
        loaded = time.perf_counter() - t0
        duckdb_compute(con, as_of_us)
        seconds = time.perf_counter() - t0
    finally:
        conn.close()
    n = con.execute("SELECT COUNT(*) FROM features").fetchone()[0]
    return seconds, n, con, loaded


def duckdb_rows(con):
    """Yield (customer_id, values tuple in all_columns() order), ordered by customer_id."""
    cols = reference.all_columns()
    cur = con.execute(f"SELECT customer_id, {', '.join(cols)} FROM features ORDER BY customer_id")
    while True:
        rows = cur.fetchmany(COMPARE_CHUNK)
        if not rows:
            return
        for row in rows:
            yield row[0], row[1:]


# -- agreement with the hand-written table ------------------------------------------------------
def compare(conn, rows, table="bench_handwritten"):
    """Compare (customer_id, values) in customer order with the hand-written table, as
    ``reference.compare`` does (floats to 1e-6 relative, None only equals None).
    Returns {rows_checked, mismatches, missing, extra, columns: {name: mismatching rows}}."""
    cols = reference.all_columns()
    cur = conn.execute(f"SELECT customer_id, {', '.join(cols)} FROM {table} ORDER BY customer_id")
    ours = iter(rows)
    checked = mismatches = missing = extra = 0
    by_column = {}
    mine = next(ours, None)
    while True:
        batch = cur.fetchmany(COMPARE_CHUNK)
        if not batch:
            break
        for ref in batch:
            while mine is not None and mine[0] < ref[0]:
                extra += 1
                mine = next(ours, None)
            if mine is None or mine[0] != ref[0]:
                missing += 1
                mismatches += 1
                continue
            checked += 1
            bad = [name for name, a, b in zip(cols, mine[1], ref[1:]) if _differs(a, b)]
            if bad:
                mismatches += 1
                for name in bad:
                    by_column[name] = by_column.get(name, 0) + 1
            mine = next(ours, None)
    while mine is not None:
        extra += 1
        mine = next(ours, None)
    return {"rows_checked": checked, "mismatches": mismatches + extra, "missing": missing, "extra": extra,
            "columns": by_column}


def _differs(a, b):
    if isinstance(a, float) and math.isnan(a):
        a = None
    if a is None or b is None:
        return (a is None) != (b is None)
    if isinstance(a, str) or isinstance(b, str):
        return a != b
    return abs(a - b) > 1e-6 * max(1.0, abs(b))


# -- one variant in its own process (``python -m benchmarks.dataframes NAME CONFIG_JSON``) ---------
def measure(name, db, as_of_us, repeat):
    """{seconds (median), runs, load_seconds (the load part), load_runs, customers, customers_per_s, agreement_with_handwritten_sql, version,
    peak_rss_mb}: ``repeat`` runs of load + compute, the first checked against ``bench_handwritten``
    (None when that table is absent)."""
    import resource
    import statistics
    run, rows = {"pandas": (run_pandas, pandas_rows), "duckdb": (run_duckdb, duckdb_rows)}[name]
    conn = sqlite3.connect(db)
    try:
        conn.execute("SELECT 1 FROM bench_handwritten LIMIT 1")
        have_reference = True
    except sqlite3.OperationalError:
        have_reference = False
    times, loads, check, n = [], [], None, 0
    for _ in range(repeat):
        seconds, n, result, loaded = run(db, as_of_us)
        times.append(seconds)
        loads.append(loaded)
        if check is None and have_reference:
            check = compare(conn, rows(result))
        del result
    conn.close()
    out = {"seconds": statistics.median(times), "runs": times, "load_seconds": statistics.median(loads),
           "load_runs": loads, "customers": n,
           "customers_per_s": n / statistics.median(times), "agreement_with_handwritten_sql": check,
           "version": __import__(name).__version__}
    if name == "duckdb":
        con = duckdb_connect()
        out["threads"] = con.execute("SELECT current_setting('threads')").fetchone()[0]
        con.close()
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


if __name__ == "__main__":
    import json
    import sys
    cfg = json.loads(sys.argv[2])
    sys.stdout.write("\n" + json.dumps(measure(sys.argv[1], cfg["db"], cfg["as_of_us"], cfg["repeat"])) + "\n")
