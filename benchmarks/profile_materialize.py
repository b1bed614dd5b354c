"""Where the time of one ``materialize`` goes: the CPU time of each statement it runs.

    python -m benchmarks.profile_materialize DB [seed|all|FAMILY,FAMILY...] [--repeat N] [--plans]

DB is a file store (e.g. W/shop.db of ``python -m benchmarks run --only ingest_api --workdir W``).
Runs the statements of ``materialize`` at 2026-01-01 for every customer of the shop exactly as
``Plan.write`` does (the targets, then each staged statement of ``Plan.stage_statements`` in
order, then the final join), but into temp tables only (customer_features is not touched), and
prints the median thread CPU time of each over ``--repeat`` runs, the windowed families' share,
and the total. ``seed``: the seven seed families (benchmarks/reference.py); ``all``: every
family. ``--plans`` adds each statement's ``EXPLAIN QUERY PLAN``. CPU time, not wall time: the
machine is shared.
"""

import argparse
import statistics
import time

AS_OF_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z, the end of the synthetic year


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("families", nargs="?", default="seed")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--plans", action="store_true")
    args = ap.parse_args(argv)

    from customer_activity_features import CustomerActivityFeatures
    from store import plan as P
    from store.db import automatic_indexes, quote_identifier
    from store.resources import query

    from .reference import SEED_FAMILIES

    families = (SEED_FAMILIES if args.families == "seed" else None if args.families == "all"
                else args.families.split(","))
    with CustomerActivityFeatures(args.db) as store:
        conn = store.conn
        plan = P.Plan(conn, P.DEFAULT_WINDOWS, families)
        params = plan.params(store.shop_id, AS_OF_US)
        P.fill_targets(conn, query("fill_targets_all_customers"), P.all_customers_params(store.shop_id, AS_OF_US))
        targets = conn.execute("SELECT COUNT(*) FROM temp.target").fetchone()[0]
        statements = plan.stage_statements()
        allowed = {st.table for st in statements}
        spent = {}
        final = plan.staged_select_sql()
        for _ in range(args.repeat):
            with automatic_indexes(conn):
                try:
                    for st in statements:
                        t0 = time.thread_time()
                        P.stage_keyed(conn, "temp." + quote_identifier(st.table, allowed), st.sql,
                                      {**params, **st.parameters}, st.table)
                        spent.setdefault(st.table, []).append(time.thread_time() - t0)
                    t0 = time.thread_time()
                    for _ in conn.execute(f"SELECT COUNT(*) FROM ({final})", params):
                        pass
                    spent.setdefault("(final join)", []).append(time.thread_time() - t0)
                finally:
                    plan.unstage(conn, [st.table for st in statements])
        windowed = {f.query for f in plan.windowed}
        per_window = {P.window_table(name, w) for name in windowed for w in plan.windows}
        total = sum(statistics.median(v) for v in spent.values())
        print(f"materialize statements, {targets:,} customers, families: {args.families}, "
              f"median thread CPU of {args.repeat} run(s)")
        for name, values in spent.items():
            print(f"  {name:32s} {statistics.median(values) * 1e3:8.0f} ms")
        window_total = sum(statistics.median(spent[n]) for n in per_window if n in spent)
        print(f"  {'per-window statements':32s} {window_total * 1e3:8.0f} ms "
              f"({len(per_window)} statements, {window_total / total:.0%})")
        print(f"  {'total':32s} {total * 1e3:8.0f} ms")
        if args.plans:
            P.fill_targets(conn, query("fill_targets_all_customers"),
                           P.all_customers_params(store.shop_id, AS_OF_US))
            with automatic_indexes(conn):
                try:
                    for st in statements:
                        bound = {**params, **st.parameters}
                        print(f"\nEXPLAIN QUERY PLAN {st.table}:")
                        for row in conn.execute("EXPLAIN QUERY PLAN " + st.sql, bound):
                            print("   ", row[3])
                        P.stage_keyed(conn, "temp." + quote_identifier(st.table, allowed), st.sql, bound, st.table)
                finally:
                    plan.unstage(conn, [st.table for st in statements])
        P.drop_targets(conn)


if __name__ == "__main__":
    main()
