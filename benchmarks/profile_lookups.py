"""Where the time of one get_all_features call goes (issue 6, lookups).

    python -m benchmarks.profile_lookups DB [--calls 3000]

DB is a file store (e.g. one kept by ``python -m benchmarks run --keep --workdir W``:
W/shop.db). Prints: the p50 of the public call; the p50 of each part measured
on its own (parameters + compose, each of the three statements executed with
the SQL text already built, the Python shaping); EXPLAIN QUERY PLAN of the
statements; and the top of a cProfile of the public call.
"""

import argparse
import cProfile
import io
import pstats
import random
import statistics
import time


def p50(fn, ids, as_of):
    lat = []
    for cid in ids:
        t0 = time.perf_counter()
        fn(cid, as_of)
        lat.append(time.perf_counter() - t0)
    return statistics.median(lat) * 1e6


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--customers", type=int, default=None, help="id range C0000000..; default: count in db")
    args = ap.parse_args(argv)

    from customer_activity_features import CustomerActivityFeatures
    from store import features as F
    from store import timeutil

    store = CustomerActivityFeatures(args.db)
    n = args.customers or store.conn.execute("SELECT COUNT(*) FROM customers").fetchone()[0]
    rng = random.Random(1)
    ids = [f"C{rng.randrange(n):07d}" for _ in range(args.calls)]
    as_of = "2026-01-01T00:00:00Z"
    as_of_us = timeutil.to_us(as_of)
    conn = store.conn
    reader = store._reader

    for cid in ids[:300]:
        store.get_all_features(cid, as_of=as_of)
    out = {"public get_all_features": p50(lambda c, a: store.get_all_features(c, as_of=a), ids, as_of)}
    out["reader.all_features (no id/as_of validation)"] = p50(lambda c, a: reader.all_features(c, a), ids, as_of_us)

    params = F.parameters("", frequency_days=F.DEFAULT_FREQUENCY_DAYS)
    sql_all = F.compose(F.GETTER_QUERY, F.GETTER_CTES)
    sql_dev = F.compose("session_devices")
    sql_meta = F.compose("customer_metadata")
    out["parameters() + 3 x compose()"] = p50(
        lambda c, a: (F.parameters("", frequency_days=F.DEFAULT_FREQUENCY_DAYS), F.compose(F.GETTER_QUERY, F.GETTER_CTES),
                      F.compose("session_devices"), F.compose("customer_metadata")), ids, as_of_us)

    def run(sql):
        def fn(c, a):
            p = dict(params, customer_id=c, as_of_us=a)
            return conn.execute(sql, p).fetchall()
        return fn
    out["all_features statement (SQL prebuilt)"] = p50(run(sql_all), ids, as_of_us)
    out["session_devices statement"] = p50(run(sql_dev), ids, as_of_us)
    out["customer_metadata statement"] = p50(run(sql_meta), ids, as_of_us)
    # the same statement with only the parameters it uses bound (sqlite3 binds every named one given)
    cursor = conn.execute(sql_all, dict(params, customer_id=ids[0], as_of_us=as_of_us))
    row, shape = cursor.fetchone(), F.positional_shaper(tuple(d[0] for d in cursor.description))
    out["positional_shaper (Python)"] = p50(lambda c, a: shape(row, [("mobile", 3)], None), ids, 0)
    out["SELECT 1 (sqlite3 call floor)"] = p50(lambda c, a: conn.execute("SELECT 1").fetchall(), ids, 0)
    width = max(map(len, out))
    print(f"p50 over {len(ids)} calls, {n:,} customers, {args.db}")
    for k, v in out.items():
        print(f"  {k:<{width}}  {v:8.1f} us")

    for name, sql in (("all_features", sql_all), ("session_devices", sql_dev)):
        print(f"\nEXPLAIN QUERY PLAN {name}:")
        for r in conn.execute("EXPLAIN QUERY PLAN " + sql, dict(params, customer_id=ids[0], as_of_us=as_of_us)):
            print("  ", r[3])

    prof = cProfile.Profile()
    prof.enable()
    for cid in ids:
        store.get_all_features(cid, as_of=as_of)
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(14)
    print("\ncProfile of the public call (tottime):")
    print("\n".join(s.getvalue().splitlines()[4:30]))
    store.close()
    return out


if __name__ == "__main__":
    main()
