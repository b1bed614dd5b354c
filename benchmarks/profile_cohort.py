"""Where the time of one 100-customer get_cohort_features call goes (issue 6, lookups).

    python -m benchmarks.profile_cohort DB [--customers N] [--batches 100] [--immutable]

DB is a file store (e.g. W/shop.db of ``python -m benchmarks run --workdir W``).
``--immutable`` opens it ``mode=ro&immutable=1``: no lock and no -wal/-shm file
is written next to it (for a shared, read-only database such as a 1M run's).
Every batch is a fresh random cohort (pages not yet in SQLite's cache, as in the
benchmark). Prints the p50 wall and thread-CPU time of the public call (CPU time
is steadier on a shared machine), then the p50 CPU time and the number of read
syscalls of each statement of the call run on its own (fill, features, devices,
metadata), and the EXPLAIN QUERY PLAN of the statements.
"""

import argparse
import random
import sqlite3
import statistics
import time
from pathlib import Path


def _read_syscalls():
    try:
        with open("/proc/self/io") as fh:
            for line in fh:
                if line.startswith("syscr"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("--customers", type=int, default=None, help="id range C0000000..; default: count in db")
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--immutable", action="store_true")
    args = ap.parse_args(argv)

    from customer_activity_features import CustomerActivityFeatures
    from store import features as F
    from store import timeutil

    if args.immutable:
        uri = Path(args.db).resolve().as_uri() + "?mode=ro&immutable=1"
        store = CustomerActivityFeatures(sqlite3.connect(uri, uri=True, check_same_thread=False))
    else:
        store = CustomerActivityFeatures(args.db)
    conn, reader = store.conn, store._reader
    n = args.customers or conn.execute("SELECT COUNT(*) FROM customers").fetchone()[0]
    rng = random.Random(1)
    as_of = "2026-01-01T00:00:00Z"
    as_of_us = timeutil.to_us(as_of)

    def batch():
        return list(dict.fromkeys(f"C{rng.randrange(n):07d}" for _ in range(100)))

    for _ in range(3):
        store.get_cohort_features(batch(), as_of=as_of)
    wall, cpu = [], []
    for _ in range(args.batches):
        ids = batch()
        c0, t0 = time.thread_time(), time.perf_counter()
        store.get_cohort_features(ids, as_of=as_of)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    print(f"get_cohort_features, 100 random of {n:,} customers, {args.batches} batches:")
    print(f"  p50 wall {statistics.median(wall) * 1e3:.3f} ms, p50 thread CPU {statistics.median(cpu) * 1e3:.3f} ms")

    params = F.parameters(store.shop_id, frequency_days=F.DEFAULT_FREQUENCY_DAYS)
    params["as_of_us"] = as_of_us
    table = reader._acquire_table()
    statements = {
        "features (all_features)": F.compose_cohort("all_features", F.FAMILIES, table, True),
        "devices (session_devices)": F.compose_cohort("session_devices", (), table, True),
        "metadata (customer_metadata)": F.compose_cohort("customer_metadata", (), table, True,
                                                         " ORDER BY t.target_id"),
    }
    parts = {"fill (json ids)": ([], [])}
    parts.update({name: ([], []) for name in statements})
    try:
        for _ in range(args.batches):
            ids = batch()
            r0, c0 = _read_syscalls(), time.thread_time()
            reader._fill_cohort(table, (), None, ids, as_of_us)
            parts["fill (json ids)"][0].append(time.thread_time() - c0)
            parts["fill (json ids)"][1].append(_read_syscalls() - r0)
            for name, sql in statements.items():
                r0, c0 = _read_syscalls(), time.thread_time()
                conn.execute(sql, params).fetchall()
                parts[name][0].append(time.thread_time() - c0)
                parts[name][1].append(_read_syscalls() - r0)
            conn.execute(f"DELETE FROM temp.{table}")
        print("each statement on its own (fresh cohorts): p50 thread CPU, p50 read syscalls")
        width = max(map(len, parts))
        for name, (times, reads) in parts.items():
            print(f"  {name:<{width}}  {statistics.median(times) * 1e3:7.3f} ms  {statistics.median(reads):6.0f}")
        reader._fill_cohort(table, (), None, batch(), as_of_us)
        for name, sql in statements.items():
            print(f"\nEXPLAIN QUERY PLAN {name}:")
            for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params):
                print("  ", row[3])
    finally:
        reader._release_table(table)
        store.close()


if __name__ == "__main__":
    main()
