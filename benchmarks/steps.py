"""The benchmark steps. Each runs in its own subprocess (``python -m benchmarks.steps NAME CONFIG_JSON``)
so that its peak RSS (``ru_maxrss``) is its own; it prints one JSON object on its last line.

A step that needs a feature the store does not have yet returns ``{"skipped": reason}``.
Memory discipline: no step holds per-customer data for the whole shop in Python,
except ``python_memory`` (the in-memory reference, whose memory is what it measures).
"""

import inspect
import json
import marshal
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

from . import reference

KINDS = ("purchase", "session", "cart_event", "support_interaction")
API = {"purchase": "add_purchases", "session": "add_sessions", "cart_event": "add_cart_events",
       "support_interaction": "add_support_interactions"}
TABLES = {"purchase": "purchases", "session": "sessions", "cart_event": "cart_events",
          "support_interaction": "support_interactions"}
CHUNK = 50_000  # events per chunk of the source file (timing never includes reading it)


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def median(xs):
    return statistics.median(xs)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100.0 * (len(xs) - 1))))]


def remove_db(path):
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def checkpoint(path):
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def copy_db(src, dst):
    checkpoint(src)
    remove_db(dst)
    shutil.copyfile(src, dst)


def source_path(cfg):
    return Path(cfg["workdir"]) / f"source-{cfg['customers']}-{cfg['seed']}.marshal"


def read_source(cfg):
    """Yield (kind, [record value tuples in the bulk API's field order]) chunks."""
    with open(source_path(cfg), "rb") as f:
        while True:
            try:
                yield marshal.load(f)
            except EOFError:
                return


def fields(kind):
    from store.ingest import KINDS as INGEST_KINDS
    return INGEST_KINDS[kind].fields


# -- steps ------------------------------------------------------------------------------------
def step_generate(cfg):
    """Write the seeded synthetic shop (store.synthetic) to a source file, chunk by chunk."""
    from store import synthetic
    path = source_path(cfg)
    if path.exists():
        counts = json.loads(Path(str(path) + ".counts").read_text())
        return {"events": sum(counts.values()), "by_kind": counts, "cached": True}
    tmp = Path(str(path) + ".tmp")
    counts = {}
    t0 = time.perf_counter()
    with open(tmp, "wb") as f:
        for kind in KINDS:
            names = fields(kind)
            buf = []
            counts[kind] = 0
            for e in synthetic.events(kind, cfg["customers"], seed=cfg["seed"]):
                buf.append(tuple(e.get(n) for n in names))
                if len(buf) >= CHUNK:
                    marshal.dump((kind, buf), f)
                    counts[kind] += len(buf)
                    buf = []
            if buf:
                marshal.dump((kind, buf), f)
                counts[kind] += len(buf)
    tmp.rename(path)
    Path(str(path) + ".counts").write_text(json.dumps(counts))
    return {"events": sum(counts.values()), "by_kind": counts, "seconds": time.perf_counter() - t0}


def _api_load(cfg, path, batch_size):
    """Load the source through the public bulk API into a fresh file store; seconds spent in the API."""
    from customer_activity_features import CustomerActivityFeatures
    remove_db(path)
    spent = 0.0
    accepted = 0
    with CustomerActivityFeatures(str(path)) as store:
        for kind, rows in read_source(cfg):
            names = fields(kind)
            records = [dict(zip(names, r)) for r in rows]
            add = getattr(store, API[kind])
            t0 = time.perf_counter()
            result = add(records, batch_size=batch_size)
            spent += time.perf_counter() - t0
            accepted += result.accepted
    return spent, accepted


def step_ingest_api(cfg):
    """(1) Bulk ingest through the public API, fresh file store each repeat; keeps the last as the shop."""
    times = []
    for _ in range(cfg["heavy_repeat"]):
        spent, accepted = _api_load(cfg, cfg["db"], 5000)
        times.append(spent)
    # customer metadata (untimed): part of the shop the other steps read
    from customer_activity_features import CustomerActivityFeatures
    from store import synthetic
    with CustomerActivityFeatures(cfg["db"]) as store:
        store.set_customers_metadata(synthetic.metadata(cfg["customers"], seed=cfg["seed"]))
    checkpoint(cfg["db"])
    return {"events": accepted, "seconds": median(times), "runs": times,
            "events_per_s": accepted / median(times), "db_bytes": os.path.getsize(cfg["db"])}


def schema_ddl():
    """The CREATE statements of a fresh store, from its sqlite_master (tables first)."""
    from customer_activity_features import CustomerActivityFeatures
    with CustomerActivityFeatures() as store:
        rows = store.conn.execute(
            "SELECT type, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
            "ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, rowid").fetchall()
    return [sql for _, sql in rows]


def _raw_rows(kind, rows):
    """Plain tuples exactly as the store inserts them (computed before timing)."""
    from store import timeutil
    from store.ingest import KINDS as INGEST_KINDS
    now = timeutil.now_us()
    make = INGEST_KINDS[kind].row
    return [make("", now, *r) for r in rows]


def _raw_load(cfg, path, *, index_after=False, batch=5000):
    remove_db(path)
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    ddl = schema_ddl()
    deferred = [s for s in ddl if index_after and s.upper().startswith("CREATE UNIQUE INDEX")]
    for s in ddl:
        if s not in deferred:
            conn.execute(s)
    spent = 0.0
    n = 0
    for kind, rows in read_source(cfg):
        tuples = _raw_rows(kind, rows)
        sql = f"INSERT INTO {TABLES[kind]} VALUES ({', '.join('?' * len(tuples[0]))})"
        t0 = time.perf_counter()
        for i in range(0, len(tuples), batch):
            conn.execute("BEGIN")
            conn.executemany(sql, tuples[i:i + batch])
            conn.execute("COMMIT")
        spent += time.perf_counter() - t0
        n += len(tuples)
    t0 = time.perf_counter()
    for s in deferred:
        conn.execute(s)
    spent += time.perf_counter() - t0
    conn.close()
    remove_db(path)
    return spent, n


def step_ingest_raw(cfg):
    """(1, reference) raw sqlite3 executemany of plain tuples into the same indexed schema."""
    path = Path(cfg["workdir"]) / "raw.db"
    times = []
    for _ in range(cfg["heavy_repeat"]):
        spent, n = _raw_load(cfg, path)
        times.append(spent)
    return {"events": n, "seconds": median(times), "runs": times, "events_per_s": n / median(times)}


def step_ingest_fast(cfg):
    """(1, fast path) large first load: ``store.load_history(kind, records)`` once per kind into a fresh
    file store, records streamed from the source (presorted by customer and time, as a history export is).

    Reading the source file and building the input dicts is not timed: the generator times its own
    work (a whole chunk at a time) and that time is taken off the call's.
    """
    import itertools
    from customer_activity_features import CustomerActivityFeatures
    path = Path(cfg["workdir"]) / "fast.db"
    times = []
    n = 0
    for _ in range(cfg["heavy_repeat"]):
        remove_db(path)
        with CustomerActivityFeatures(str(path)) as store:
            spent = 0.0
            n = 0
            for kind, chunks in itertools.groupby(read_source(cfg), key=lambda chunk: chunk[0]):
                untimed = [0.0]

                def records(chunks=chunks, names=fields(kind), untimed=untimed):
                    # Reading the next chunk and making dicts (5,000 at a time: the input's own memory
                    # stays small) is untimed.
                    while True:
                        t0 = time.perf_counter()
                        chunk = next(chunks, None)
                        untimed[0] += time.perf_counter() - t0
                        if chunk is None:
                            return
                        rows = chunk[1]
                        chunk = None
                        for i in range(0, len(rows), 5000):
                            t0 = time.perf_counter()
                            batch = [dict(zip(names, r)) for r in rows[i:i + 5000]]
                            untimed[0] += time.perf_counter() - t0
                            yield from batch
                            batch = None

                t0 = time.perf_counter()
                result = store.load_history(kind, records())
                spent += time.perf_counter() - t0 - untimed[0]
                n += result.accepted
        times.append(spent)
    remove_db(path)
    return {"events": n, "seconds": median(times), "runs": times, "events_per_s": n / median(times),
            "method": "store.load_history per kind (one transaction, event-id index and change trigger "
                      "built after the load), presorted input"}


def step_single_add(cfg):
    """(2) single add_* calls per second on a file database (buffered writes, flushed at close)."""
    from customer_activity_features import CustomerActivityFeatures
    from store import timeutil
    n = 2_000 if cfg["smoke"] else 20_000
    path = Path(cfg["workdir"]) / "single.db"
    base = timeutil.to_us("2025-06-01T00:00:00Z")
    times = []
    for rep in range(cfg["repeat"]):
        remove_db(path)
        store = CustomerActivityFeatures(str(path))
        dates = [timeutil.iso(base + i * 1_000_003) for i in range(n)]
        t0 = time.perf_counter()
        for i in range(n):
            k = i % 4
            cid = f"S{i % 1000:05d}"
            if k == 0:
                store.add_purchase(cid, 10.0 + i % 7, dates[i], order_id=f"o{i}")
            elif k == 1:
                store.add_session(cid, 120.0, "mobile", dates[i], session_id=f"s{i}")
            elif k == 2:
                store.add_cart_event(cid, "abandoned", 30.0, dates[i], cart_id=f"k{i}")
            else:
                store.add_support_interaction(cid, f"t{i}", 2.0, False, dates[i])
        store.close()
        times.append(time.perf_counter() - t0)
    remove_db(path)
    return {"calls": n, "seconds": median(times), "runs": times, "calls_per_s": n / median(times)}


def dump_file(cfg):
    """The online-retail dump, or (smoke mode) its first ``dump_lines`` lines as a gzip file in the workdir."""
    import gzip
    data = Path(cfg["data_dir"]) / "online_retail.csv.gz"
    if not data.exists() or not cfg.get("dump_lines"):
        return data
    head = Path(cfg["workdir"]) / f"online_retail_head{cfg['dump_lines']}.csv.gz"
    if not head.exists():
        with gzip.open(data, "rb") as src, gzip.open(str(head) + ".tmp", "wb") as dst:
            for i, line in enumerate(src):
                if i > cfg["dump_lines"]:
                    break
                dst.write(line)
        os.rename(str(head) + ".tmp", head)
    return head


def step_dump_loader(cfg):
    """(3) the online-retail preset of store.loaders on ../shared/data/online_retail.csv.gz."""
    data = dump_file(cfg)
    if not data.exists():
        return {"skipped": f"{data} is absent"}
    try:
        from store import loaders
        load = loaders.load
    except Exception as exc:  # noqa: BLE001 (any import problem means: not available yet)
        return {"skipped": f"store.loaders.load is not importable: {type(exc).__name__}: {exc}"}
    from customer_activity_features import CustomerActivityFeatures
    path = Path(cfg["workdir"]) / "retail.db"
    lines = _count_lines(data)
    times = []
    report = None
    cpu = []
    for _ in range(cfg["dump_repeat"]):
        remove_db(path)
        with CustomerActivityFeatures(str(path)) as store:
            c0 = time.process_time()
            t0 = time.perf_counter()
            try:
                report = load(store, "online-retail", str(data))
            except NotImplementedError as exc:
                return {"skipped": f"store.loaders.load is not implemented yet ({exc})"}
            store.flush()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    remove_db(path)
    return {"lines": lines, "seconds": median(times), "runs": times, "lines_per_s": lines / median(times),
            "cpu_seconds": median(cpu), "lines_per_cpu_s": lines / median(cpu),
            "file": data.name, "report": _jsonable(report)}


def _jsonable(obj):
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        for attr in ("as_dict", "to_dict"):
            if hasattr(obj, attr):
                try:
                    return _jsonable(getattr(obj, attr)())
                except Exception:  # noqa: BLE001
                    pass
        return repr(obj)[:500]


def _count_lines(gz):
    import gzip
    with gzip.open(gz, "rb") as f:
        return sum(1 for _ in f) - 1  # minus the header


def step_dump_sqlite_utils(cfg):
    """(3, reference) `sqlite-utils insert DB lines - --csv` of the same CSV (decompressed by gzip -dc)."""
    data = dump_file(cfg)
    if not data.exists():
        return {"skipped": f"{data} is absent"}
    exe = Path(sys.executable).parent / "sqlite-utils"
    exe = str(exe) if exe.exists() else shutil.which("sqlite-utils")
    if not exe:
        return {"skipped": "sqlite-utils command not found"}
    path = Path(cfg["workdir"]) / "su.db"
    lines = _count_lines(data)
    times = []
    cpu = []
    for _ in range(cfg["dump_repeat"]):
        remove_db(path)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(f'gzip -dc "{data}" | "{exe}" insert "{path}" lines - --csv', shell=True, check=True)
        times.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    remove_db(path)
    return {"lines": lines, "seconds": median(times), "runs": times, "lines_per_s": lines / median(times),
            "cpu_seconds": median(cpu), "lines_per_cpu_s": lines / median(cpu),
            "file": data.name, "child_rss_mb": child,
            "note": "sqlite-utils defaults (rollback journal, synchronous=FULL, a commit per batch); "
                    "cpu_seconds includes gzip -dc"}


def _store(cfg, path=None):
    from customer_activity_features import CustomerActivityFeatures
    return CustomerActivityFeatures(str(path or cfg["db"]))


def _materialize_params():
    from customer_activity_features import CustomerActivityFeatures
    fn = getattr(CustomerActivityFeatures, "materialize", None)
    return None if fn is None else inspect.signature(fn).parameters


def step_materialize(cfg):
    """(4) store.materialize() of every customer, one core: the families the references compute
    (reference.SEED_FAMILIES: the same 84 feature columns), then every family (129 columns)."""
    if _materialize_params() is None:
        return {"skipped": "CustomerActivityFeatures.materialize does not exist yet"}
    from store import timeutil
    as_of = timeutil.iso(cfg["as_of_us"])
    times, full_times = [], []
    with _store(cfg) as store:
        for _ in range(cfg["heavy_repeat"]):
            t0 = time.perf_counter()
            seed = store.materialize(as_of=as_of, families=reference.SEED_FAMILIES)
            times.append(time.perf_counter() - t0)
        rows = _materialized_rows(store)
        for _ in range(cfg["heavy_repeat"]):
            t0 = time.perf_counter()
            result = store.materialize(as_of=as_of)  # left in place: the lookups step reads it
            full_times.append(time.perf_counter() - t0)
    return {"customers": rows, "seconds": median(times), "runs": times, "columns": seed["columns"],
            "customers_per_s": (rows or cfg["customers"]) / median(times),
            "all_families_seconds": median(full_times), "all_families_runs": full_times,
            "all_families_columns": result["columns"],
            "all_families_customers_per_s": (rows or cfg["customers"]) / median(full_times),
            "method": f"materialize(families=<the reference's {len(reference.SEED_FAMILIES)}>); every family: "
                      f"{median(full_times):.2f} s, {result['columns']} columns"}


def _materialized_rows(store):
    try:
        return store.conn.execute("SELECT COUNT(*) FROM customer_features").fetchone()[0]
    except sqlite3.OperationalError:
        return None


def step_handwritten_sql(cfg):
    """(4, reference) the hand-written statement (benchmarks/reference.py) run by the sqlite3 shell."""
    exe = shutil.which("sqlite3")
    if not exe:
        return {"skipped": "the sqlite3 shell is not installed"}
    checkpoint(cfg["db"])
    script = Path(cfg["workdir"]) / "handwritten.sql"
    script.write_text(reference.shell_script(cfg["as_of_us"]))
    times = []
    for _ in range(cfg["repeat"]):
        t0 = time.perf_counter()
        subprocess.run([exe, cfg["db"], f".read {script}"], check=True)
        times.append(time.perf_counter() - t0)
    conn = sqlite3.connect(cfg["db"])
    rows = conn.execute("SELECT COUNT(*) FROM bench_handwritten").fetchone()[0]
    try:
        agree = reference.compare_materialized(conn)
    except sqlite3.OperationalError as exc:  # no customer_features yet
        agree = (0, str(exc))
    conn.close()
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {"customers": rows, "seconds": median(times), "runs": times, "customers_per_s": rows / median(times),
            "agreement_with_materialize": {"rows_checked": agree[0], "mismatches": agree[1]},
            "child_rss_mb": child, "sqlite3_shell": subprocess.run([exe, "--version"], capture_output=True,
                                                                  text=True).stdout.split()[0]}


def step_python_memory(cfg):
    """(4, reference) plain in-memory Python, load + compute every customer: the seed module's way
    (reference.SeedStyleShop: dicts of lists of event dicts with datetimes), and a faster Python
    (reference.InMemoryShop: tuples of integer microseconds). Both checked against the hand-written
    table."""
    out = {}
    for label, cls in (("seed_style", reference.SeedStyleShop), ("tuples", reference.InMemoryShop)):
        times = []
        check = None
        for _ in range(cfg["repeat"]):
            conn = sqlite3.connect(cfg["db"])
            t0 = time.perf_counter()
            shop = cls().load(conn)
            n = 0
            for _row in shop.features(cfg["as_of_us"]):
                n += 1
            times.append(time.perf_counter() - t0)
            if check is None:
                try:  # agreement with the hand-written SQL table, when present
                    check = reference.compare(conn, shop, cfg["as_of_us"], limit=None if cfg["smoke"] else 20_000)
                except sqlite3.OperationalError:
                    check = None
            del shop
            conn.close()
        out[label] = {"seconds": median(times), "runs": times, "peak_rss_mb_so_far": rss_mb(),
                      "agreement_with_handwritten_sql": None if check is None else
                      {"rows_checked": check[0], "mismatches": check[1]}}
    seed = out["seed_style"]
    return {"customers": n, "seconds": seed["seconds"], "runs": seed["runs"],
            "customers_per_s": n / seed["seconds"], "tuples_seconds": out["tuples"]["seconds"],
            "tuples_customers_per_s": n / out["tuples"]["seconds"], "variants": out,
            "agreement_with_handwritten_sql": seed["agreement_with_handwritten_sql"],
            "method": f"seed-style dicts+datetimes {seed['seconds']:.2f} s; "
                      f"tuples of integers {out['tuples']['seconds']:.2f} s"}


def step_dataframes(cfg):
    """(4, optional) pandas and DuckDB on the same data, only when importable (never a dependency):
    load the shop's event tables with sqlite3 + compute every customer's 84 reference columns
    (benchmarks/dataframes.py), each variant in its own process (its peak RSS is its own) and
    checked against the hand-written table."""
    from importlib.util import find_spec
    out = {}
    for name in ("pandas", "duckdb"):  # not imported here: this process's RSS stays small
        if find_spec(name) is None:
            out[name] = {"skipped": f"{name} is not importable"}
    if "duckdb" not in out and "pandas" in out:
        out["duckdb"] = {"skipped": "duckdb is importable, but its variant loads through pandas frames"}
    if len(out) == 2:
        return {"skipped": "; ".join(v["skipped"] for v in out.values()), "detail": out}
    checkpoint(cfg["db"])
    for name in ("pandas", "duckdb"):  # each in its own process: its own peak RSS
        if name in out:
            continue
        proc = subprocess.run([sys.executable, "-m", "benchmarks.dataframes", name, json.dumps(cfg)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} variant failed: " + (proc.stderr or proc.stdout).strip()[-600:])
        out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    main = out["duckdb"] if "seconds" in out["duckdb"] else out["pandas"]

    def summary(name):
        v = out[name]
        if "skipped" in v:
            return f"{name}: skipped"
        threads = f", {v['threads']} thr" if "threads" in v else ""
        return f"{name} {v['seconds']:.2f} s (load {v['load_seconds']:.2f}{threads}, {v['peak_rss_mb']:.0f} MB)"

    checks = [v.get("agreement_with_handwritten_sql") for v in out.values() if "skipped" not in v]
    agree = ("not checked (no bench_handwritten)" if None in checks else
             "rows differing: {} of {}".format(", ".join(str(a["mismatches"]) for a in checks),
                                               max(a["rows_checked"] + a["missing"] for a in checks)))

    return {"seconds": main["seconds"], "customers": main["customers"],
            "customers_per_s": main["customers_per_s"],
            "pandas_seconds": out["pandas"].get("seconds"), "duckdb_seconds": out["duckdb"].get("seconds"),
            "agreement_with_handwritten_sql": {k: v.get("agreement_with_handwritten_sql") for k, v in out.items()},
            "variants": out,
            "child_rss_mb": max((v.get("peak_rss_mb") or 0) for v in out.values()) or None,
            "method": ", ".join(summary(k) for k in ("duckdb", "pandas")) + "; " + agree}


def step_parallel(cfg):
    """(8) every core: materialize(families=<the reference's>, workers=os.cpu_count()): customer
    ranges computed by worker processes over read-only connections, merged by the single writer."""
    params = _materialize_params()
    if params is None or "workers" not in params:
        return {"skipped": "CustomerActivityFeatures.materialize has no workers option"}
    from store import timeutil
    as_of = timeutil.iso(cfg["as_of_us"])
    k = max(2, os.cpu_count() or 2)
    times = []
    path = Path(cfg["workdir"]) / "parallel.db"
    copy_db(cfg["db"], path)  # the lookups step keeps reading the shop's every-family table
    with _store(cfg, path) as store:
        for _ in range(cfg["repeat"]):
            t0 = time.perf_counter()
            result = store.materialize(as_of=as_of, families=reference.SEED_FAMILIES, workers=k)
            times.append(time.perf_counter() - t0)
        rows = _materialized_rows(store)
    remove_db(path)
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {"customers": rows, "workers": k, "seconds": median(times), "runs": times,
            "customers_per_s": rows / median(times), "columns": result["columns"], "child_rss_mb": child,
            "method": f"materialize(families=<the reference's>, workers={k})"}


def step_refresh(cfg):
    """(5) refresh after 1% of customers get new events and one day passes, vs a full materialize."""
    from customer_activity_features import CustomerActivityFeatures
    if _materialize_params() is None or not hasattr(CustomerActivityFeatures, "refresh"):
        return {"skipped": "CustomerActivityFeatures.materialize/refresh do not exist yet"}
    from store import timeutil
    path = Path(cfg["workdir"]) / "refresh.db"
    day = timeutil.US_PER_DAY
    as_of, as_of2 = cfg["as_of_us"], cfg["as_of_us"] + day
    rng = random.Random(cfg["seed"])
    changed = max(1, cfg["customers"] // 100)
    refresh_times, full_times = [], []
    for rep in range(cfg["heavy_repeat"]):
        copy_db(cfg["db"], path)
        with CustomerActivityFeatures(str(path)) as store:
            store.materialize(as_of=timeutil.iso(as_of))
            picks = rng.sample(range(cfg["customers"]), changed)
            store.add_purchases(
                {"customer_id": f"C{i:07d}", "order_value": 12.5,
                 "purchase_date": timeutil.iso(as_of + day // 2 + j), "order_id": f"R{rep}-{i}"}
                for j, i in enumerate(picks))
            t0 = time.perf_counter()
            store.refresh(as_of=timeutil.iso(as_of2))
            refresh_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            store.materialize(as_of=timeutil.iso(as_of2))
            full_times.append(time.perf_counter() - t0)
    remove_db(path)
    return {"changed_customers": changed, "refresh_seconds": median(refresh_times),
            "full_seconds": median(full_times), "refresh_runs": refresh_times, "full_runs": full_times,
            "full_over_refresh": median(full_times) / median(refresh_times)}


def step_lookups(cfg):
    """(6) get_all_features p50/p99 (on demand), one materialised row p50, a 100-customer cohort."""
    from store import timeutil
    rng = random.Random(cfg["seed"] + 1)
    n = cfg["customers"]
    calls = 500 if cfg["smoke"] else 3000
    ids = [f"C{rng.randrange(n):07d}" for _ in range(calls)]
    as_of = timeutil.iso(cfg["as_of_us"])
    out = {}
    with _store(cfg) as store:
        for cid in ids[:200]:  # warm the statement cache and the page cache
            store.get_all_features(cid, as_of=as_of)
        lat = []
        for cid in ids:
            t0 = time.perf_counter()
            store.get_all_features(cid, as_of=as_of)
            lat.append(time.perf_counter() - t0)
        out["get_all_features_p50_us"] = pct(lat, 50) * 1e6
        out["get_all_features_p99_us"] = pct(lat, 99) * 1e6
        table = _materialized_table(store)
        if table is None:
            out["materialized_row"] = {"skipped": "no materialised table (customer_features) yet"}
        else:
            sql = f'SELECT * FROM "{table}" WHERE customer_id = ?'
            if "shop_id" in [r[1] for r in store.conn.execute(f'PRAGMA table_info("{table}")')]:
                sql += " AND shop_id = ''"
            for cid in ids[:200]:
                store.conn.execute(sql, [cid]).fetchone()
            lat = []
            for cid in ids:
                t0 = time.perf_counter()
                store.conn.execute(sql, [cid]).fetchone()
                lat.append(time.perf_counter() - t0)
            out["materialized_row_p50_us"] = pct(lat, 50) * 1e6
            out["materialized_row_p99_us"] = pct(lat, 99) * 1e6
            out["materialized_table"] = table
        lat = []
        batches = 20 if cfg["smoke"] else 100
        for b in range(batches + 3):
            cohort = [f"C{rng.randrange(n):07d}" for _ in range(100)]
            t0 = time.perf_counter()
            res = store.get_cohort_features(cohort, as_of=as_of)
            if b >= 3:
                lat.append(time.perf_counter() - t0)
        out["cohort_100_p50_ms"] = pct(lat, 50) * 1e3
        out["cohort_100_p99_ms"] = pct(lat, 99) * 1e3
        out["cohort_size_returned"] = len(res)
    return out


def _materialized_table(store):
    row = store.conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                             "AND name = 'customer_features'").fetchone()
    return row[0] if row else None


def step_capped(cfg):
    """(7) materialize and iter_features in this process with RLIMIT_AS capped below the db size, mmap off."""
    from customer_activity_features import CustomerActivityFeatures
    cap = cfg["as_cap_bytes"]
    out = {"cap_mb": cap / 2**20, "db_mb": os.path.getsize(cfg["db"]) / 2**20}
    out["cap_below_db_size"] = cap < os.path.getsize(cfg["db"])
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from store import timeutil
    as_of = timeutil.iso(cfg["as_of_us"])
    out["ok"] = True
    for op in ("materialize", "iter_features"):
        try:
            with CustomerActivityFeatures(cfg["db"]) as store:
                store.conn.execute("PRAGMA mmap_size = 0")
                if not hasattr(store, op):
                    out[op] = f"skipped: {op} does not exist yet"
                    continue
                t0 = time.perf_counter()
                if op == "materialize":
                    store.materialize(as_of=as_of)
                else:
                    out["iter_features_rows"] = sum(1 for _ in store.iter_features(as_of=as_of))
                out[op + "_seconds"] = time.perf_counter() - t0
                out[op] = "ok"
        except (MemoryError, sqlite3.Error) as exc:
            out["ok"] = False
            out[op] = f"failed: {type(exc).__name__}: {exc}"
            out[op + "_rss_mb_at_failure"] = rss_mb()
    return out


def step_engine_run(cfg):
    """One materialize(engine=cfg["engine"]) of every family on the store cfg["path"] (a helper of
    ``engines``, in its own process so that its peak RSS and CPU time are its own)."""
    from store import timeutil
    with _store(cfg, cfg["path"]) as store:
        cpu0, t0 = time.process_time(), time.perf_counter()
        kwargs = {"engine": cfg["engine"]} if cfg["engine"] != "sqlite" else {}
        if cfg.get("memory_limit") and cfg["engine"] != "sqlite":
            kwargs["memory_limit"] = cfg["memory_limit"]
        result = store.materialize(as_of=timeutil.iso(cfg["as_of_us"]), **kwargs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"engine": cfg["engine"], "seconds": wall, "cpu_seconds": cpu, "rows": result["rows"],
            "columns": result["columns"], "split": result.get("seconds")}


def _same_tables(a, b):
    """(rows compared, mismatched cells) of customer_features in two stores (store.engines.cells_equal)."""
    from store import engines
    ca, cb = sqlite3.connect(str(a)), sqlite3.connect(str(b))
    q = "SELECT * FROM customer_features ORDER BY shop_id, customer_id"
    rows = bad = 0
    for x, y in zip(ca.execute(q), cb.execute(q)):
        rows += 1
        bad += sum(1 for u, v in zip(x, y) if not engines.cells_equal(u, v))
    n = [c.execute("SELECT COUNT(*) FROM customer_features").fetchone()[0] for c in (ca, cb)]
    ca.close()
    cb.close()
    return rows, bad + abs(n[0] - n[1])


def step_engines(cfg):
    """(issue 13) materialize(engine="duckdb") vs engine="sqlite" of every family, end to end (read
    from the store, compute, written back into customer_features), alternated in fresh processes
    on copies of the shop; DuckDB's split (translate, read, compute, write), CPU time and peak RSS
    under its memory_limit; the two tables compared cell by cell."""
    try:
        import duckdb, pyarrow, sqlglot  # noqa: F401,E401
    except ImportError as exc:
        return {"skipped": f"the extra [duckdb] is not installed ({exc.name})"}
    memory_limit = cfg.get("engine_memory_limit") or "1GB"
    runs = {"sqlite": [], "duckdb": []}
    paths = {e: Path(cfg["workdir"]) / f"engine-{e}.db" for e in runs}
    for _ in range(cfg["heavy_repeat"]):
        for engine in runs:
            copy_db(cfg["db"], paths[engine])
            sub = {**cfg, "engine": engine, "path": str(paths[engine]), "memory_limit": memory_limit}
            proc = subprocess.run([sys.executable, "-m", "benchmarks.steps", "engine_run", json.dumps(sub)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                return {"error": f"{engine}: " + " | ".join(proc.stderr.strip().splitlines()[-4:])[-600:]}
            runs[engine].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    rows, mismatched = _same_tables(paths["sqlite"], paths["duckdb"])
    for p in paths.values():
        remove_db(p)

    def med(engine, key):
        return median([r[key] for r in runs[engine]])

    split = {k: median([r["split"][k] for r in runs["duckdb"]]) for k in runs["duckdb"][0]["split"]}
    out = {"customers": rows, "columns": runs["sqlite"][0]["columns"], "memory_limit": memory_limit,
           "sqlite_seconds": med("sqlite", "seconds"), "duckdb_seconds": med("duckdb", "seconds"),
           "sqlite_cpu_seconds": med("sqlite", "cpu_seconds"), "duckdb_cpu_seconds": med("duckdb", "cpu_seconds"),
           "duckdb_split_seconds": split,
           "sqlite_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["sqlite"]),
           "duckdb_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["duckdb"]),
           "mismatched_cells": mismatched, "runs": runs}
    out["sqlite_over_duckdb"] = out["sqlite_seconds"] / out["duckdb_seconds"]
    out["seconds"] = out["duckdb_seconds"]
    out["method"] = (f"every family: sqlite {out['sqlite_seconds']:.1f} s, duckdb {out['duckdb_seconds']:.1f} s "
                     f"(x{out['sqlite_over_duckdb']:.2f}; split {split}), {mismatched} mismatched cells")
    return out


STEPS = {name[5:]: fn for name, fn in globals().items() if name.startswith("step_")}


def main():
    name, cfg = sys.argv[1], json.loads(sys.argv[2])
    t0 = time.perf_counter()
    result = STEPS[name](cfg)
    result["step_wall_seconds"] = time.perf_counter() - t0
    result["peak_rss_mb"] = rss_mb()
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
