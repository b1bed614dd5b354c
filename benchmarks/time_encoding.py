"""Design measurement (issue 2): event times as ISO-8601 text vs INTEGER microseconds.

Same synthetic purchases and sessions (store.synthetic), same WITHOUT ROWID
schema shape as migrations/0001_initial.sql (clustered on shop_id, customer_id,
event time, event_id, plus a unique (shop_id, event_id) index), two file
databases that differ only in the event-time column:

* ``int``: ``event_time_us INTEGER`` (microseconds since the epoch, the chosen design);
* ``iso``: ``event_time TEXT`` in the fixed-width form ``YYYY-MM-DDTHH:MM:SS.ffffffZ``
  (fixed width so that text order is time order; ``store.timeutil.iso`` drops a
  zero fraction, which would break ordering: '...:00Z' sorts after '...:00.5Z').

Measured: database size, bulk insert time (executemany of plain tuples, chunks
interleaved between the two databases), and the median of several runs of

* ``window``: per-customer 90-day window aggregate (count, sum) of 2,000
  sampled customers, the window's lower edge computed in SQL from ``as_of``
  (``as_of_us - :w`` vs ``strftime(..., as_of, '-90 days')``);
* ``window_bound``: the same with both edges bound from Python (text needs
  the caller to format the edges);
* ``recency``: whole days from the last purchase to ``as_of`` for the same
  customers (``(as_of_us - MAX(t)) / 86400000000`` vs
  ``CAST(julianday(as_of) - julianday(MAX(t)) AS INTEGER)``);
* ``group_by``: the full-table GROUP BY customer of purchases (count in
  window, sum, recency) over every customer.

Run: ``python -m benchmarks.time_encoding --customers 100000``
"""

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from store import synthetic, timeutil

RESULTS = Path(__file__).resolve().parent / "results"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
AS_OF = datetime(2026, 1, 1, tzinfo=timezone.utc)
AS_OF_US = timeutil.to_us(AS_OF)
WINDOW_DAYS = 90
WINDOW_US = WINDOW_DAYS * timeutil.US_PER_DAY


def iso_fixed(us):
    return (EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


AS_OF_ISO = iso_fixed(AS_OF_US)

SCHEMA = """
CREATE TABLE purchases (
    shop_id TEXT NOT NULL DEFAULT '', customer_id TEXT NOT NULL,
    {col} {type} NOT NULL, event_id TEXT NOT NULL,
    order_value REAL NOT NULL CHECK (order_value >= 0),
    PRIMARY KEY (shop_id, customer_id, {col}, event_id)) WITHOUT ROWID;
CREATE UNIQUE INDEX purchases_event_id ON purchases (shop_id, event_id);
CREATE TABLE sessions (
    shop_id TEXT NOT NULL DEFAULT '', customer_id TEXT NOT NULL,
    {col} {type} NOT NULL, event_id TEXT NOT NULL,
    duration_seconds REAL NOT NULL CHECK (duration_seconds >= 0),
    device_type TEXT NOT NULL DEFAULT 'unknown',
    PRIMARY KEY (shop_id, customer_id, {col}, event_id)) WITHOUT ROWID;
CREATE UNIQUE INDEX sessions_event_id ON sessions (shop_id, event_id);
"""

ENCODINGS = {
    "int": {"col": "event_time_us", "type": "INTEGER", "conv": lambda us: us, "as_of": AS_OF_US},
    "iso": {"col": "event_time", "type": "TEXT", "conv": iso_fixed, "as_of": AS_OF_ISO},
}

QUERIES = {
    "int": {
        "window": """SELECT COUNT(*), TOTAL(order_value) FROM purchases
                     WHERE shop_id = '' AND customer_id = :cid
                       AND event_time_us <= :as_of AND event_time_us >= :as_of - :window_us""",
        "window_bound": """SELECT COUNT(*), TOTAL(order_value) FROM purchases
                     WHERE shop_id = '' AND customer_id = :cid
                       AND event_time_us <= :as_of AND event_time_us >= :lo""",
        "recency": """SELECT (:as_of - MAX(event_time_us)) / 86400000000 FROM purchases
                      WHERE shop_id = '' AND customer_id = :cid AND event_time_us <= :as_of""",
        "group_by": """SELECT customer_id,
                              COUNT(*) FILTER (WHERE event_time_us >= :as_of - :window_us),
                              TOTAL(order_value),
                              (:as_of - MAX(event_time_us)) / 86400000000
                       FROM purchases WHERE shop_id = '' AND event_time_us <= :as_of
                       GROUP BY customer_id""",
    },
    "iso": {
        "window": """SELECT COUNT(*), TOTAL(order_value) FROM purchases
                     WHERE shop_id = '' AND customer_id = :cid AND event_time <= :as_of
                       AND event_time >= strftime('%Y-%m-%dT%H:%M:%f000Z', :as_of, :window_mod)""",
        "window_bound": """SELECT COUNT(*), TOTAL(order_value) FROM purchases
                     WHERE shop_id = '' AND customer_id = :cid
                       AND event_time <= :as_of AND event_time >= :lo""",
        "recency": """SELECT CAST(julianday(:as_of) - julianday(MAX(event_time)) AS INTEGER) FROM purchases
                      WHERE shop_id = '' AND customer_id = :cid AND event_time <= :as_of""",
        "group_by": """SELECT customer_id,
                              COUNT(*) FILTER (WHERE event_time >= strftime('%Y-%m-%dT%H:%M:%f000Z', :as_of, :window_mod)),
                              TOTAL(order_value),
                              CAST(julianday(:as_of) - julianday(MAX(event_time)) AS INTEGER)
                       FROM purchases WHERE shop_id = '' AND event_time <= :as_of
                       GROUP BY customer_id""",
    },
}


def open_db(path, enc):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(SCHEMA.format(col=ENCODINGS[enc]["col"], type=ENCODINGS[enc]["type"]))
    return conn


def rows_of(kind, n, seed, conv):
    """Plain tuples of one kind, times converted by ``conv``."""
    if kind == "purchase":
        for e in synthetic.events("purchase", n, seed=seed):
            yield ("", e["customer_id"], conv(timeutil.to_us(e["purchase_date"])), e["order_id"], e["order_value"])
    else:
        for e in synthetic.events("session", n, seed=seed):
            yield ("", e["customer_id"], conv(timeutil.to_us(e["session_date"])), e["session_id"],
                   e["duration_seconds"], e["device_type"])


def load(conns, n, seed, chunk=50_000):
    """Insert the same rows into each database, chunk by chunk (alternating order); seconds per encoding."""
    spent = dict.fromkeys(conns, 0.0)
    counts = {}
    for kind, table, width in (("purchase", "purchases", 5), ("session", "sessions", 6)):
        sql = f"INSERT INTO {table} VALUES ({', '.join('?' * width)})"
        buf = []
        count = 0
        flip = 0

        def flush():
            nonlocal flip
            order = list(conns) if flip % 2 == 0 else list(conns)[::-1]
            flip += 1
            for enc in order:
                conv = ENCODINGS[enc]["conv"]
                converted = [r[:2] + (conv(r[2]),) + r[3:] for r in buf]
                t0 = time.perf_counter()
                conns[enc].execute("BEGIN")
                conns[enc].executemany(sql, converted)
                conns[enc].execute("COMMIT")
                spent[enc] += time.perf_counter() - t0

        for row in rows_of(kind, n, seed, lambda us: us):
            buf.append(row)
            count += 1
            if len(buf) >= chunk:
                flush()
                buf = []
        if buf:
            flush()
        counts[table] = count
    return spent, counts


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(n_customers, seed=0, repeat=5, sample=2000, workdir=None):
    workdir = Path(workdir or tempfile.mkdtemp(prefix="caf-time-encoding-"))
    paths = {enc: workdir / f"time_{enc}.db" for enc in ENCODINGS}
    for p in paths.values():
        for suffix in ("", "-wal", "-shm"):
            Path(str(p) + suffix).unlink(missing_ok=True)
    conns = {enc: open_db(str(paths[enc]), enc) for enc in ENCODINGS}
    print(f"loading {n_customers:,} customers' purchases and sessions into {workdir} ...", file=sys.stderr)
    insert_s, counts = load(conns, n_customers, seed)
    events = sum(counts.values())
    sizes = {}
    for enc, conn in conns.items():
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("ANALYZE")
        sizes[enc] = os.path.getsize(paths[enc])

    rng = random.Random(seed)
    cids = [synthetic.customer_id(rng.randrange(n_customers)) for _ in range(sample)]
    lo_us = AS_OF_US - WINDOW_US
    results = {}
    checks = {}
    for enc, conn in conns.items():
        as_of = ENCODINGS[enc]["as_of"]
        base = {"as_of": as_of, "window_us": WINDOW_US, "window_mod": f"-{WINDOW_DAYS} days",
                "lo": lo_us if enc == "int" else iso_fixed(lo_us)}
        q = QUERIES[enc]
        per = {}
        for name in ("window", "window_bound", "recency"):
            sql = q[name]
            params = [dict(base, cid=c) for c in cids]
            keys = set(__import__("re").findall(r":(\w+)", sql))
            params = [{k: v for k, v in p.items() if k in keys} for p in params]

            def one(sql=sql, params=params):
                return [conn.execute(sql, p).fetchone() for p in params]
            checks[(enc, name)] = one()
            per[name + "_us_per_customer"] = timed(one, repeat) / sample * 1e6
        gsql = q["group_by"]
        gkeys = set(__import__("re").findall(r":(\w+)", gsql))
        gparams = {k: v for k, v in base.items() if k in gkeys}

        def group(gsql=gsql, gparams=gparams):
            n = 0
            s = 0.0
            for row in conn.execute(gsql, gparams):
                n += 1
                s += row[1]
            return n, s
        checks[(enc, "group_by")] = group()
        per["group_by_s"] = timed(group, max(3, repeat // 2))
        results[enc] = per
    agree = {name: checks[("int", name)] == checks[("iso", name)]
             for name in ("window", "window_bound", "recency", "group_by")}
    for conn in conns.values():
        conn.close()
    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "customers": n_customers, "events": events, "rows": counts, "seed": seed, "repeat": repeat,
        "sample_customers": sample,
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                    "sqlite": sqlite3.sqlite_version},
        "size_bytes": sizes,
        "insert_s": insert_s,
        "insert_rows_per_s": {enc: events / s for enc, s in insert_s.items()},
        "queries": results,
        "results_agree": agree,
    }
    for p in paths.values():
        for suffix in ("", "-wal", "-shm"):
            Path(str(p) + suffix).unlink(missing_ok=True)
    try:
        workdir.rmdir()
    except OSError:
        pass
    return report


def print_table(r):
    i, t = "int", "iso"
    lines = [f"time encoding, {r['customers']:,} customers, {r['events']:,} rows "
             f"(purchases + sessions), median of {r['repeat']}",
             f"{'measure':<44}{'INTEGER us':>14}{'ISO text':>14}{'text/int':>10}"]

    def line(name, a, b, fmt):
        lines.append(f"{name:<44}{fmt.format(a):>14}{fmt.format(b):>14}{b / a:>10.2f}")
    line("database size (MB)", r["size_bytes"][i] / 1e6, r["size_bytes"][t] / 1e6, "{:.1f}")
    line("bulk insert (s)", r["insert_s"][i], r["insert_s"][t], "{:.2f}")
    q = r["queries"]
    line("90-day window, edge in SQL (us/customer)", q[i]["window_us_per_customer"],
         q[t]["window_us_per_customer"], "{:.1f}")
    line("90-day window, edges bound (us/customer)", q[i]["window_bound_us_per_customer"],
         q[t]["window_bound_us_per_customer"], "{:.1f}")
    line("recency days (us/customer)", q[i]["recency_us_per_customer"], q[t]["recency_us_per_customer"], "{:.1f}")
    line("full-table GROUP BY customer (s)", q[i]["group_by_s"], q[t]["group_by_s"], "{:.3f}")
    lines.append("results agree: " + ", ".join(f"{k}={v}" for k, v in r["results_agree"].items()))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/time_encoding.json")
    args = ap.parse_args(argv)
    report = run(args.customers, seed=args.seed, repeat=args.repeat, workdir=args.workdir)
    print(print_table(report))
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "time_encoding.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {RESULTS / 'time_encoding.json'}")
    return report


if __name__ == "__main__":
    main()
