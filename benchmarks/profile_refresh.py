"""Where the time of one ``refresh`` goes: the wall time of each statement it runs.

    python -m benchmarks.profile_refresh DB WORK [--again] [--top N]

DB is a file store (e.g. W/shop.db of ``python -m benchmarks run --only ingest_api --workdir W``);
WORK a path for the copy this script changes. As the harness's refresh step does: a copy of DB,
``materialize`` at 2026-01-01, 1% of the customers (1,000 of 100,000) get a purchase half a day
later; the store is then kept as WORK.before. Then ``refresh`` one day later on a fresh copy of
WORK.before, with a trace callback timing every statement (the time from one statement's start to
the next one's, so a statement's rows read by Python count too). ``--again`` skips the
``materialize`` and reuses WORK.before: run versions alternately on their own WORK to compare them.
Prints the refresh's wall time and the statements that took longest, summed by their first 150
characters.
"""

import argparse
import collections
import random
import shutil
import time

AS_OF_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z, the end of the synthetic year, as the harness


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("work")
    ap.add_argument("--again", action="store_true", help="reuse WORK.before (no materialize)")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args(argv)

    from customer_activity_features import CustomerActivityFeatures
    from store import timeutil

    day = timeutil.US_PER_DAY
    before = args.work + ".before"
    if not args.again:
        shutil.copy(args.db, args.work)
        with CustomerActivityFeatures(args.work) as store:
            t0 = time.perf_counter()
            store.materialize(as_of=timeutil.iso(AS_OF_US))
            print(f"materialize {time.perf_counter() - t0:.2f} s")
            customers = store.conn.execute("SELECT COUNT(*) FROM customer_features_stored").fetchone()[0]
            picks = random.Random(0).sample(range(customers), max(1, customers // 100))
            store.add_purchases({"customer_id": f"C{i:07d}", "order_value": 12.5, "order_id": f"R0-{i}",
                                 "purchase_date": timeutil.iso(AS_OF_US + day // 2 + j)} for j, i in enumerate(picks))
        shutil.copy(args.work, before)
    shutil.copy(before, args.work)
    with CustomerActivityFeatures(args.work) as store:
        marks = []
        store.conn.set_trace_callback(lambda sql: marks.append((time.perf_counter(), sql)))
        t0 = time.perf_counter()
        store.refresh(as_of=timeutil.iso(AS_OF_US + day))
        total = time.perf_counter() - t0
        marks.append((time.perf_counter(), "END"))
        store.conn.set_trace_callback(None)
    spent = collections.Counter()
    for (start, sql), (end, _) in zip(marks, marks[1:]):
        spent[" ".join(sql.split())[:150]] += end - start
    print(f"refresh {total:.2f} s")
    for sql, seconds in spent.most_common(args.top):
        print(f"{seconds:7.3f}  {sql}")


if __name__ == "__main__":
    main()
