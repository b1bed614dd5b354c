"""How long ``materialize`` holds the write lock (issue 11, item 11).

``materialize`` rebuilds ``customer_features`` in one ``BEGIN IMMEDIATE`` transaction, so it
holds the store's write lock from its start to its commit: every other writer (``add_*``, a load,
another ``materialize``) waits for it, up to its busy timeout, then gets ``DatabaseLockedError``.
Readers are not blocked (WAL).

Measured from outside, as a waiting writer sees it: a seeded synthetic shop (store.synthetic) in a
file database; ``caf materialize --as-of 2026-01-01`` runs in a subprocess while this process tries
``BEGIN IMMEDIATE`` (busy timeout 0, released at once) every 10 ms and runs a small read
(one purchase row) on another connection. The lock is "held" from the first
failed attempt to the last one; the figure is that span, beside the subprocess's wall time and
the longest wait of a read meanwhile.

Run: ``python -m benchmarks.lock_hold --customers 100000`` (``--family NAME`` repeatable: only
those families; ``--workers N``; ``--db PATH`` reuses or keeps the shop).
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2026-01-01T00:00:00Z"
POLL_SECONDS = 0.01


def build(path, customers):
    from customer_activity_features import CustomerActivityFeatures
    from store import synthetic

    started = time.perf_counter()
    with CustomerActivityFeatures(path) as store:
        synthetic.populate(store, customers)
    return time.perf_counter() - started


def measure(path, families=(), workers=1):
    args = [sys.executable, "-m", "store", "--db", str(path), "materialize", "--as-of", AS_OF, "--json"]
    for family in families:
        args += ["--family", family]
    if workers != 1:
        args += ["--workers", str(workers)]
    writer = sqlite3.connect(path, isolation_level=None, timeout=0)
    reader = sqlite3.connect(path, isolation_level=None)
    first = last = None
    attempts = refused = 0
    longest_read = 0.0
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:
        now = time.perf_counter()
        attempts += 1
        try:
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("ROLLBACK")
        except sqlite3.OperationalError:
            refused += 1
            first = now if first is None else first
            last = now
        t0 = time.perf_counter()
        reader.execute("SELECT customer_id FROM purchases LIMIT 1").fetchone()
        longest_read = max(longest_read, time.perf_counter() - t0)
        time.sleep(POLL_SECONDS)
    wall = time.perf_counter() - started
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"materialize failed: {err.strip()}")
    writer.close()
    reader.close()
    return {"materialize_wall_seconds": round(wall, 2),
            "lock_held_seconds": round(last - first + POLL_SECONDS, 2) if first is not None else 0.0,
            "attempts": attempts, "refused": refused, "longest_read_seconds": round(longest_read, 4),
            "run": json.loads(out)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--family", action="append", default=[])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--db", help="the shop's file (built when missing, kept)")
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(opts.db) if opts.db else Path(scratch) / "shop.db"
        built = None if path.exists() else build(path, opts.customers)
        result = measure(path, opts.family, opts.workers)
    result.update({"customers": opts.customers, "families": opts.family or "every family",
                   "workers": opts.workers, "build_seconds": built and round(built, 1),
                   "sqlite": sqlite3.sqlite_version, "cpus": os.cpu_count()})
    result["run"] = {k: result["run"].get(k) for k in ("rows", "columns", "as_of")}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
