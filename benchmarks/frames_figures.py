"""features_frame on a large entity frame: wall and CPU time, and peak RSS beyond the frame (issue 14).

    python -m benchmarks run --customers 100000 --only ingest_api --workdir /tmp/frames_w --keep
    python -m benchmarks.frames_figures --db /tmp/frames_w/shop.db --rows 100000 [--rows 20000 ...]
        [--cutoffs 12] [--sort] [--families NAME ...] [--naive] [--stream]

Each measurement runs in a fresh process (``--child``) so that its peak RSS (``ru_maxrss``) is
its own. The process imports pandas and pyarrow, opens the store and builds the entity frame
(``--rows`` rows: customers drawn with replacement from the shop's, seeded; cutoffs drawn from
``--cutoffs`` month ends of 2025; a label column; ``--sort``: sorted by cutoff, which the docs
advise: each chunk of ``features_at`` then holds one or two distinct cutoffs), makes the call
once on one row (so that the modules it imports lazily are in the baseline), then takes its RSS
(the baseline) and calls ``store.features_frame(entity)``. Printed per run: rows, feature columns, wall and CPU seconds,
the baseline RSS, the peak RSS, the frame's own size (``memory_usage(deep=True)``) and
``beyond`` = peak - baseline - frame size: the memory the call needed besides the frame it
returns. ``--naive`` measures, beside it, the obvious alternative that holds every row as a
Python dict: ``pd.DataFrame(list(store.features_at(pairs)))``; ``--stream`` measures
``features_at`` alone, every row read and dropped (its own memory: SQLite's temporary tables and
caches, one chunk of pairs).
Needs the extra [pandas] (pandas, pyarrow) on the path.
"""

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone


def _rss_mb():
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(db, rows, cutoffs, families, seed, naive, sort):
    import pandas as pd
    import pyarrow  # noqa: F401  (imported before the baseline, as a user's session has it)

    from customer_activity_features import CustomerActivityFeatures

    store = CustomerActivityFeatures(db, read_only=True)
    ids = [r[0] for r in store.conn.execute("SELECT customer_id FROM customers WHERE shop_id = ? ORDER BY customer_id",
                                            [store.shop_id])]
    rng = random.Random(seed)
    # the last instant of each month of 2025 (the synthetic year), the last ``cutoffs`` of them
    ends = [datetime(2025 + m // 12, m % 12 + 1, 1, tzinfo=timezone.utc) - timedelta(microseconds=1)
            for m in range(1, 13)][-cutoffs:]
    entity = pd.DataFrame({"customer_id": [rng.choice(ids) for _ in range(rows)],
                           "cutoff": pd.to_datetime([rng.choice(ends) for _ in range(rows)], utc=True),
                           "label": [rng.random() < 0.2 for _ in range(rows)]})
    del ids
    if sort:  # few distinct cutoffs per chunk of features_at (docs/feature_store.md); the index keeps the order
        entity = entity.sort_values("cutoff", kind="stable")
    # warm-up on one row, so that the modules the call imports lazily (pyarrow.compute, ...) are
    # in the baseline: they are code, not memory that grows with the frame
    if naive:
        pd.DataFrame(list(store.features_at([(entity["customer_id"].iloc[0], entity["cutoff"].iloc[0])],
                                            families=families)))
    else:
        store.features_frame(entity.iloc[:1], families=families)
    baseline = _rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    if naive == "stream":  # features_at's own memory: every row read and dropped
        pairs = zip(entity["customer_id"].tolist(), entity["cutoff"].tolist())
        count = sum(1 for _ in store.features_at(pairs, families=families))
        frame = pd.DataFrame(index=range(count))
    elif naive:
        pairs = zip(entity["customer_id"].tolist(), entity["cutoff"].tolist())
        frame = pd.DataFrame(list(store.features_at(pairs, families=families)))
    else:
        frame = store.features_frame(entity, families=families)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    frame_mb = frame.memory_usage(deep=True).sum() / 2**20
    peak = _peak_mb()
    variant = {"stream": "features_at rows read and dropped", True: "naive list of dicts"}.get(naive, "features_frame")
    return {"variant": variant, "rows": len(frame),
            "columns": frame.shape[1], "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "baseline_rss_mb": round(baseline), "peak_rss_mb": round(peak), "frame_mb": round(frame_mb),
            "beyond_frame_mb": round(peak - baseline - frame_mb)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", required=True, help="a store (e.g. built by benchmarks run --only ingest_api --keep)")
    p.add_argument("--rows", type=int, action="append", help="entity rows (repeatable; default 100000)")
    p.add_argument("--cutoffs", type=int, default=12, help="distinct cutoffs (month ends of 2025, the last N)")
    p.add_argument("--families", nargs="*", help="feature families (default: every family)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sort", action="store_true", help="sort the entity frame by cutoff (stable) before the call")
    p.add_argument("--naive", action="store_true", help="also measure pd.DataFrame(list(features_at(...)))")
    p.add_argument("--stream", action="store_true",
                   help="also measure features_at alone (every row read and dropped): its own memory")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--naive-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--stream-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        variant = "stream" if args.stream_child else args.naive_child
        print(json.dumps(child(args.db, args.rows[0], args.cutoffs, args.families, args.seed, variant, args.sort)))
        return
    for rows in args.rows or [100_000]:
        for naive in (False,) + ((True,) if args.naive else ()) + (("stream",) if args.stream else ()):
            cmd = [sys.executable, "-m", "benchmarks.frames_figures", "--child", "--db", args.db, "--rows", str(rows),
                   "--cutoffs", str(args.cutoffs), "--seed", str(args.seed)]
            if args.families:
                cmd += ["--families", *args.families]
            if naive == "stream":
                cmd.append("--stream-child")
            elif naive:
                cmd.append("--naive-child")
            if args.sort:
                cmd.append("--sort")
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                print(out.stderr.strip().splitlines()[-1], file=sys.stderr)
                sys.exit(out.returncode)
            print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
