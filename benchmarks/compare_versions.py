"""Figures of one checkout on an existing store, for comparing two versions of the code on the
same machine (issue 12's before/after). Run it as a file, with the checkout to measure first on
the path, alternating the two checkouts a few times (the machine is shared: compare medians):

    PYTHONPATH=<checkout> python benchmarks/compare_versions.py DB materialize-seed
    PYTHONPATH=<checkout> python benchmarks/compare_versions.py DB materialize-all
    PYTHONPATH=<checkout> python benchmarks/compare_versions.py DB lookups

DB: a store loaded by ``python -m benchmarks run --only ingest_api --workdir W`` (W/shop.db),
one copy per checkout (a newer checkout migrates the file; an older one refuses it).
materialize-*: wall seconds of one ``materialize`` at 2026-01-01 of the seed families
(benchmarks/reference.py SEED_FAMILIES) or of every family. lookups: CPU time per call of
``get_all_features`` (3,000 random customers) and per 100-customer ``get_cohort_features``
(50 cohorts), the minimum of three passes, after a warm-up. Prints one JSON line.
"""

import json
import random
import sys
import time

AS_OF = "2026-01-01T00:00:00Z"
SEED_FAMILIES = ("purchase_features", "session_features", "cart_features", "support_features",
                 "all_features", "primary_device")


def main(db, what):
    from customer_activity_features import CustomerActivityFeatures

    with CustomerActivityFeatures(db) as store:
        if what.startswith("materialize"):
            t0 = time.perf_counter()
            store.materialize(as_of=AS_OF, families=SEED_FAMILIES if what == "materialize-seed" else None)
            return {what: round(time.perf_counter() - t0, 2)}
        n = store.conn.execute("SELECT COUNT(DISTINCT customer_id) FROM purchases").fetchone()[0]
        rng = random.Random(1)
        ids = [f"C{rng.randrange(n):07d}" for _ in range(3000)]
        cohorts = [[f"C{rng.randrange(n):07d}" for _ in range(100)] for _ in range(50)]
        for cid in ids[:300]:
            store.get_all_features(cid, as_of=AS_OF)
        for cohort in cohorts[:5]:
            store.get_cohort_features(cohort, as_of=AS_OF)
        one = many = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            for cid in ids:
                store.get_all_features(cid, as_of=AS_OF)
            one = min(one, (time.process_time() - t0) / len(ids))
            t0 = time.process_time()
            for cohort in cohorts:
                store.get_cohort_features(cohort, as_of=AS_OF)
            many = min(many, (time.process_time() - t0) / len(cohorts))
        return {"get_all_features_cpu_us": round(one * 1e6, 1), "cohort_100_cpu_ms": round(many * 1e3, 2)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
