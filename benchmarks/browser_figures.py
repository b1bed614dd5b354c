"""Figures of the quality report and the feature browser (issue 14 items 2 and 3):

    python -m benchmarks.browser_figures --customers 20000 --db /tmp/b.db report
    python -m benchmarks.browser_figures --customers 20000 --db /tmp/b.db serve
    PYTHONPATH=<checkout> python benchmarks/browser_figures.py --db /tmp/b.db materialize

The store (``--db``) is generated once (store.synthetic, ``--customers``) and materialised at
2025-12-01 and 2026-01-01 when it has no materialisation. ``report``: CPU seconds of
``report.compute`` and of ``report.render``, the page's size and its number of plots.
``serve``: ``caf serve`` as a process, 300 lookups of one customer's features over HTTP
(``/DB/customer.json?customer_id=...``), wall milliseconds p50/p95 after 20 warm-up requests.
``materialize``: wall and CPU seconds of one ``materialize`` of the seed families at 2026-01-01
(the second of two, so that the table it replaces exists) with the checkout on the path, and the
database's size: run it alternately with this branch and with main to see what keeping
``customer_features_previous`` costs (the machine is shared: compare medians).
Prints one JSON line.
"""

import argparse
import json
import os
import random
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SEED_FAMILIES = ("purchase_features", "session_features", "cart_features", "support_features",
                 "all_features", "primary_device")


def build(db, customers):
    from customer_activity_features import CustomerActivityFeatures
    from store import synthetic

    with CustomerActivityFeatures(db) as store:
        if store.conn.execute("SELECT COUNT(*) FROM materializations").fetchone()[0] == 0:
            synthetic.populate(store, customers, seed=1)
            store.materialize(as_of="2025-12-01")
            store.materialize(as_of="2026-01-01")


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def figures_report(db):
    from customer_activity_features import CustomerActivityFeatures
    from store import report

    with CustomerActivityFeatures(db, read_only=True) as store:
        t0 = cpu()
        found = report.compute(store.conn, store.shop_id, store.registry)
        t1 = cpu()
        html = report.render(found)
        t2 = cpu()
    return {"customers": found.rows, "columns": len(found.columns), "compute_cpu_s": round(t1 - t0, 2),
            "render_cpu_s": round(t2 - t1, 2), "html_bytes": len(html), "plots": html.count('class="plot"'),
            "drifted": len(found.drifted)}


def figures_serve(db):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "store", "--db", str(db), "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        import sqlite3
        n = sqlite3.connect(db).execute("SELECT COUNT(*) FROM customer_features").fetchone()[0]
        rng = random.Random(1)
        base = f"http://127.0.0.1:{port}/{Path(db).stem}/customer.json?_shape=objects&customer_id="
        times = []
        for i in range(320):
            cid = f"C{rng.randrange(n):07d}"
            t0 = time.perf_counter()
            with urllib.request.urlopen(base + cid, timeout=30) as response:
                rows = json.loads(response.read())["rows"]
            if i >= 20:
                times.append(time.perf_counter() - t0)
            assert len(rows) == 1, cid
        times.sort()
        return {"lookups": len(times), "p50_ms": round(1000 * times[len(times) // 2], 1),
                "p95_ms": round(1000 * times[int(len(times) * 0.95)], 1)}
    finally:
        os.kill(proc.pid, 15)
        proc.wait(timeout=30)


def figures_materialize(db):
    from customer_activity_features import CustomerActivityFeatures

    with CustomerActivityFeatures(db) as store:
        store.materialize(as_of="2026-01-01", families=SEED_FAMILIES)
        t0, c0 = time.perf_counter(), cpu()
        store.materialize(as_of="2026-01-01", families=SEED_FAMILIES)
        wall, used = time.perf_counter() - t0, cpu() - c0
        tables = [r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'customer_features%'")]
    import store as package
    return {"checkout": str(Path(package.__file__).resolve().parents[1]), "materialize_wall_s": round(wall, 2),
            "materialize_cpu_s": round(used, 2), "db_mb": round(os.path.getsize(db) / 1e6, 1),
            "tables": sorted(tables)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("report", "serve", "materialize"))
    parser.add_argument("--db", required=True)
    parser.add_argument("--customers", type=int, default=20000)
    args = parser.parse_args(argv)
    build(args.db, args.customers)
    result = {"report": figures_report, "serve": figures_serve, "materialize": figures_materialize}[args.what](args.db)
    print(json.dumps({args.what: result}))


if __name__ == "__main__":
    main()
