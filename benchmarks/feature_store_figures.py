"""Figures of the feature-store capabilities (issue 3), at N customers (default 100,000).

    .venv/bin/python benchmarks/feature_store_figures.py [--customers 100000] [--dir /tmp/fs_bench]

Generates the seeded synthetic shop once into DIR/base-N.db (store.synthetic,
~20 events per customer) and reuses it. Each measured step runs in its own
subprocess on a fresh copy of that database, so its peak RSS (ru_maxrss) is
its own:

* materialize (seed features only: the 7 seed families; and with every
  family registered in store/catalog.py), customers per second;
* the seed computation as one hand-written SQL statement run by the sqlite3
  shell binary on the same database (one GROUP BY per event table with one
  FILTER per window, joined on customer): ratio to materialize (seed);
* refresh after 1% of customers got new events and one day passed, and its
  ratio to a full materialize (same families);
* iter_features over every customer.

The machine may be shared: figures are wall-clock seconds of one run each.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AS_OF = "2026-01-01T00:00:00Z"
NEXT_DAY = "2026-01-02T00:00:00Z"
WINDOWS = (7, 30, 90, 365)


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _seed_only():
    from store import catalog
    catalog.FAMILIES[:] = [f for f in catalog.FAMILIES if f.added_by.startswith("issue 3")]
    catalog.FEATURES[:] = [f for f in catalog.FEATURES if f.added_by.startswith("issue 3")]


# -- steps (each in its own process) --------------------------------------------------
def step(name, db, seed_only):
    from customer_activity_features import CustomerActivityFeatures
    if seed_only:
        _seed_only()
    out = {"step": name, "seed_only": seed_only}
    with CustomerActivityFeatures(db) as store:
        if name == "materialize":
            t = time.perf_counter()
            r = store.materialize(as_of=AS_OF, windows=WINDOWS)
            out.update(seconds=time.perf_counter() - t, rows=r["rows"], columns=r["columns"])
        elif name == "refresh":
            store.materialize(as_of=AS_OF, windows=WINDOWS)
            n = store.conn.execute("SELECT COUNT(*) FROM customer_features").fetchone()[0]
            changed = [cid for (cid,) in store.conn.execute(
                "SELECT customer_id FROM customer_features ORDER BY customer_id")][:: 100]
            store.add_purchases({"customer_id": c, "order_value": 42.0, "purchase_date": "2026-01-01T12:00:00Z",
                                 "order_id": f"bench-new-{c}"} for c in changed)
            store.add_sessions({"customer_id": c, "duration_seconds": 100.0, "device_type": "mobile",
                                "session_date": "2026-01-01T13:00:00Z", "session_id": f"bench-new-{c}"}
                               for c in changed)
            t = time.perf_counter()
            r = store.refresh(as_of=NEXT_DAY)
            out.update(seconds=time.perf_counter() - t, rows=r["rows"], recomputed=r["recomputed"],
                       changed_customers=len(changed), customers=n)
        elif name == "iter_features":
            t = time.perf_counter()
            n = sum(1 for _ in store.iter_features(as_of=AS_OF))
            out.update(seconds=time.perf_counter() - t, rows=n)
    out["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(out))


# -- the hand-written reference ----------------------------------------------------------
def reference_sql(as_of_us):
    """The seed computation as one statement: per event table one GROUP BY customer with a
    FILTER per window, joined on customer; the rules from the 30/90-day columns."""
    day = 86_400_000_000
    win = [("", None)] + [(f"_{w}d", w * day) for w in WINDOWS]

    def f(cond_window, extra=None):
        parts = []
        if cond_window is not None:
            parts.append(f"event_time_us >= {as_of_us - cond_window}")
        if extra:
            parts.append(extra)
        return f" FILTER (WHERE {' AND '.join(parts)})" if parts else ""

    p, s, c, k = [], [], [], []
    for suffix, w in win:
        fw = w if w is not None else None
        freq_days = (w // day) if w else 30
        fq = w if w else 30 * day
        p += [f"COUNT(*){f(fw)} AS purchase_count{suffix}",
              f"COUNT(*){f(fq)} / ({freq_days} / 30.0) AS purchase_frequency{suffix}",
              f"COALESCE(AVG(order_value){f(fw)}, 0.0) AS average_order_value{suffix}",
              f"TOTAL(order_value){f(fw)} AS total_purchase_value{suffix}"]
        s += [f"COUNT(*){f(fw)} AS session_count{suffix}",
              f"COUNT(*){f(fq)} / ({freq_days} / 30.0) AS session_frequency{suffix}",
              f"COALESCE(AVG(duration_seconds){f(fw)}, 0.0) AS average_session_duration{suffix}"]
        c += [f"COUNT(*){f(fw)} AS cart_event_count{suffix}",
              f"COUNT(*){f(fw, chr(39).join(['event_type = ', 'abandoned', '']))} AS abandoned_cart_count{suffix}",
              f"COALESCE(AVG(event_type = 'converted'){f(fw)}, 0.0) AS cart_conversion_ratio{suffix}",
              f"TOTAL(cart_value){f(fw, chr(39).join(['event_type = ', 'abandoned', '']))} AS abandoned_cart_value{suffix}"]
        k += [f"COUNT(*){f(fw)} AS support_ticket_count{suffix}",
              f"AVG(response_time_hours){f(fw)} AS average_response_time_hours{suffix}",
              f"COUNT(*){f(fw, 'escalated = 1')} AS escalation_count{suffix}",
              f"COALESCE(AVG(escalated * 1.0){f(fw)}, 0.0) AS escalation_ratio{suffix}"]
    p += [f"MAX(event_time_us) AS last_purchase_us",
          f"({as_of_us} - MAX(event_time_us)) / {day} AS purchase_recency_days"]
    where = f"WHERE shop_id = '' AND event_time_us <= {as_of_us} GROUP BY customer_id"
    zero = {"p": p, "s": s, "c": c, "k": k}
    cols = []
    for alias, items in zero.items():
        for item in items:
            name = item.rsplit(" AS ", 1)[1]
            if name.startswith(("average_response_time_hours", "last_purchase_us", "purchase_recency_days")):
                cols.append(f"{alias}.{name}")
            elif "frequency" in name or "average" in name or "ratio" in name or "value" in name:
                cols.append(f"COALESCE({alias}.{name}, 0.0) AS {name}")
            else:
                cols.append(f"COALESCE({alias}.{name}, 0) AS {name}")
    return f"""
CREATE TABLE reference_features AS
WITH cu AS (SELECT DISTINCT customer_id FROM all_customers WHERE shop_id = ''),
p AS (SELECT customer_id, {', '.join(p)} FROM purchases {where}),
s AS (SELECT customer_id, {', '.join(s)} FROM sessions {where}),
c AS (SELECT customer_id, {', '.join(c)} FROM cart_events {where}),
k AS (SELECT customer_id, {', '.join(k)} FROM support_interactions {where}),
d AS (SELECT customer_id, device_type AS primary_device FROM (
        SELECT customer_id, device_type, ROW_NUMBER() OVER (PARTITION BY customer_id
               ORDER BY COUNT(*) DESC, MIN(event_time_us), device_type) AS rank
        FROM sessions {where}, device_type) WHERE rank = 1),
x AS (SELECT cu.customer_id, {', '.join(cols)}, d.primary_device
      FROM cu LEFT JOIN p ON p.customer_id = cu.customer_id LEFT JOIN s ON s.customer_id = cu.customer_id
      LEFT JOIN c ON c.customer_id = cu.customer_id LEFT JOIN k ON k.customer_id = cu.customer_id
      LEFT JOIN d ON d.customer_id = cu.customer_id)
SELECT '' AS shop_id, x.*,
    (purchase_count_30d > 0 AND session_count_30d > 0) AS high_short_term_activity,
    (purchase_count_30d > 0 AND purchase_count_90d > 0
        AND (purchase_count_30d / 1.0) / (purchase_count_90d / 3.0) < 0.7) AS declining_engagement,
    (escalation_ratio_30d > 0.5 OR support_ticket_count_30d > 3) AS support_risk,
    (cart_conversion_ratio_30d < 0.3 AND abandoned_cart_count_30d > 2) AS cart_abandonment_risk
FROM x;
"""


def _fresh_copy(base, work):
    for extra in ("-wal", "-shm"):
        Path(str(work) + extra).unlink(missing_ok=True)
    shutil.copyfile(base, work)


def run_step(name, base, work, seed_only):
    _fresh_copy(base, work)
    out = subprocess.run([sys.executable, __file__, "--step", name, "--db", str(work)]
                         + (["--seed-only"] if seed_only else []),
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--dir", default="/tmp/fs_bench")
    ap.add_argument("--step")
    ap.add_argument("--db")
    ap.add_argument("--seed-only", action="store_true")
    ap.add_argument("--only", default="materialize,reference,refresh,iter_features,materialize_all,refresh_all")
    args = ap.parse_args()
    if args.step:
        return step(args.step, args.db, args.seed_only)

    from customer_activity_features import CustomerActivityFeatures
    from store import synthetic, timeutil
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / f"base-{args.customers}.db"
    if not base.exists():
        t = time.perf_counter()
        with CustomerActivityFeatures(folder / "building.db") as store:
            synthetic.populate(store, args.customers)
        (folder / "building.db").rename(base)
        print(f"populated {base} in {time.perf_counter() - t:.1f} s", flush=True)
    with CustomerActivityFeatures(base) as store:  # apply pending migrations once
        events = sum(store.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                     for t in ("purchases", "sessions", "cart_events", "support_interactions"))
    work = folder / "work.db"
    only = args.only.split(",")
    results = {"customers": args.customers, "events": events, "load_average": os.getloadavg()}
    print(f"{args.customers} customers, {events} events; load average {os.getloadavg()}", flush=True)
    if "materialize" in only:
        r = results["materialize_seed"] = run_step("materialize", base, work, True)
        print(f"materialize (seed families): {r['seconds']:.1f} s, {r['rows'] / r['seconds']:.0f} customers/s, "
              f"{r['columns']} columns, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    if "reference" in only and shutil.which("sqlite3"):
        _fresh_copy(base, work)
        sql = reference_sql(timeutil.to_us(AS_OF))
        t = time.perf_counter()
        subprocess.run(["sqlite3", str(work)], input=sql, text=True, check=True)
        secs = time.perf_counter() - t
        results["reference_sqlite3_seconds"] = secs
        line = f"hand-written single statement in the sqlite3 shell: {secs:.1f} s"
        if "materialize_seed" in results:
            ratio = secs / results["materialize_seed"]["seconds"]
            results["reference_over_materialize"] = ratio
            line += f"; reference time / materialize time = {ratio:.2f}"
        print(line, flush=True)
    if "refresh" in only:
        r = results["refresh_seed"] = run_step("refresh", base, work, True)
        line = (f"refresh (seed) after 1% changed + 1 day: {r['seconds']:.2f} s, recomputed {r['recomputed']} "
                f"of {r['rows']}, peak RSS {r['peak_rss_mb']:.0f} MB")
        if "materialize_seed" in results:
            results["materialize_over_refresh_seed"] = results["materialize_seed"]["seconds"] / r["seconds"]
            line += f"; full / refresh = {results['materialize_over_refresh_seed']:.1f}"
        print(line, flush=True)
    if "iter_features" in only:
        r = results["iter_features"] = run_step("iter_features", base, work, False)
        print(f"iter_features over everyone: {r['seconds']:.1f} s, {r['rows'] / r['seconds']:.0f} customers/s, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    if "materialize_all" in only:
        r = results["materialize_all"] = run_step("materialize", base, work, False)
        print(f"materialize (every registered family): {r['seconds']:.1f} s, {r['rows'] / r['seconds']:.0f} "
              f"customers/s, {r['columns']} columns, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    if "refresh_all" in only:
        r = results["refresh_all"] = run_step("refresh", base, work, False)
        line = f"refresh (every family): {r['seconds']:.2f} s, recomputed {r['recomputed']} of {r['rows']}"
        if "materialize_all" in results:
            line += f"; full / refresh = {results['materialize_all']['seconds'] / r['seconds']:.1f}"
        print(line, flush=True)
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
