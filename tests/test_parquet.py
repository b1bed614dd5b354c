"""Parquet out and in (store/parquet.py, docs/scale-out.md): export_events / caf export-events
(layout, manifest, bucket hash, rows = SQLite's) and import_features / caf import-features
(round trip; every refusal leaves customer_features and materializations unchanged). No Spark
needed: the Spark tests are tests/test_spark.py (marker ``spark``)."""

import json
import sqlite3
import subprocess
import sys
import zlib

import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.dataset as ds  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from customer_activity_features import (  # noqa: E402
    CustomerActivityFeatures,
    ImportRefusedError,
    MissingExtraError,
    OutputNotEmptyError,
)
from store import catalog, localtime, parquet, plan, registry, synthetic  # noqa: E402

AS_OF = "2026-01-01T00:00:00Z"
N = 60


def _store(conn=None, shop="a", tz="America/New_York", n=N, seed=0):
    store = CustomerActivityFeatures(conn, shop_id=shop, timezone=tz)
    synthetic.populate(store, n, seed=seed)
    store.add_interaction("C0000001", "search", "2025-12-01T10:00:00Z", session_id="S-C0000001-0",
                          search_query="boots")
    store.add_attribution("C0000001", "O-C0000001-0", "google", "cpc", "2025-12-01T10:00:00Z")
    store.add_refund("C0000002", 3.5, "2025-12-02T10:00:00Z", order_id="O-C0000002-0")
    store.flush()
    return store


@pytest.fixture(scope="module")
def two_shops(tmp_path_factory):
    """One database file, shops 'a' and 'b': the export of 'a' must hold only its rows."""
    path = tmp_path_factory.mktemp("db") / "two.db"
    conn = sqlite3.connect(path, check_same_thread=False)
    _store(conn, "b", n=20, seed=7).flush()
    store = _store(conn, "a")
    yield store
    conn.close()


def test_export_layout_manifest_bucket_hash_and_rows(two_shops, tmp_path):
    store = two_shops
    out = tmp_path / "events"
    manifest = store.export_events(out, buckets=5)
    assert json.loads((out / parquet.MANIFEST).read_text()) == manifest
    assert manifest["format_version"] == parquet.FORMAT_VERSION and manifest["shop_id"] == "a"
    assert manifest["timezone"] == "America/New_York" and manifest["buckets"] == 5
    # the tables: the registry's tables lines and the targets query's, derived, not listed here
    declared = {t for fam in registry.builtin().families() for t in fam.tables}
    tables = {name for name, t in manifest["tables"].items() if t["partitioned"]}
    assert declared <= tables and "customers" in tables
    assert tables == set(plan.input_tables(store.conn, plan.Plan(store.conn)))
    assert {name for name, t in manifest["tables"].items() if not t["partitioned"]} == set(parquet.TIMEZONE_TABLES)
    types = {"INTEGER": pa.int64(), "REAL": pa.float64(), "TEXT": pa.string()}
    for name, info in manifest["tables"].items():
        cols = [tuple(c) for c in info["columns"]]
        schema = "temp" if name in parquet.TIMEZONE_TABLES else "main"
        assert cols == [(r[1], r[2]) for r in store.conn.execute(f"PRAGMA {schema}.table_info({name})")]
        where = "" if schema == "temp" else " WHERE shop_id = 'a'"
        expected = store.conn.execute(f"SELECT {', '.join(c for c, _ in cols)} FROM {schema}.{name}{where}").fetchall()
        assert info["rows"] == len(expected)
        if not info["partitioned"]:
            table = pq.read_table(out / name)
            assert sorted(map(tuple, zip(*table.to_pydict().values()))) == sorted(expected)
            continue
        assert all(p.name.startswith("bucket=") and 0 <= int(p.name[7:]) < 5 for p in (out / name).iterdir())
        rows = []
        for part in (out / name).iterdir():
            k = int(part.name[7:])
            table = pq.read_table(part)  # a bucket's files: its columns, the bucket in the path only
            assert table.schema == pa.schema([(c, types[t]) for c, t in cols])
            for row in zip(*table.to_pydict().values()):
                assert zlib.crc32(row[1].encode("utf-8")) % 5 == k
                rows.append(row)
        assert sorted(rows) == sorted(expected), name
    assert manifest["tables"]["purchases"]["rows"] > 0 and manifest["tables"]["interactions"]["rows"] == 1
    offsets = pq.read_table(out / "caf_tz_offsets").to_pydict()
    assert list(zip(offsets["start_us"], offsets["offset_us"])) == list(localtime.transitions("America/New_York"))


def test_a_whole_directory_reads_as_one_dataset_with_the_bucket_column(two_shops, tmp_path):
    out = tmp_path / "events"
    two_shops.export_events(out, buckets=3)
    table = ds.dataset(out / "sessions", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == two_shops.conn.execute("SELECT COUNT(*) FROM sessions WHERE shop_id = 'a'").fetchone()[0]
    assert set(table.column("bucket").to_pylist()) <= {0, 1, 2}


def test_non_empty_directory_refused_unless_overwrite_of_an_earlier_export(two_shops, tmp_path):
    out = tmp_path / "events"
    two_shops.export_events(out, buckets=2)
    with pytest.raises(OutputNotEmptyError, match="not empty"):
        two_shops.export_events(out)
    manifest = two_shops.export_events(out, buckets=4, overwrite=True)
    assert manifest["buckets"] == 4
    assert {p.name for p in (out / "purchases").iterdir()} <= {f"bucket={k}" for k in range(4)}
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(OutputNotEmptyError, match="not an earlier export"):
        two_shops.export_events(other, overwrite=True)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_without_pyarrow_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with CustomerActivityFeatures() as store:
        with pytest.raises(MissingExtraError, match=r"\[spark\]"):
            store.export_events(tmp_path / "x")
        with pytest.raises(MissingExtraError, match=r"\[spark\]"):
            store.import_features(tmp_path / "x")
    assert not (tmp_path / "x").exists()


# -- import -------------------------------------------------------------------------------
def _features_table(store):
    cur = store.conn.execute("SELECT * FROM customer_features ORDER BY shop_id, customer_id")
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    # the declared types of the stored rows (a derived column of the view has none: its catalog type)
    decl = {r[1]: r[2] for r in store.conn.execute("PRAGMA table_info(customer_features)")}
    decl.update({r[1]: r[2] for r in store.conn.execute("PRAGMA table_info(customer_features_as_of)")})
    decl.update({name: catalog.SQL_TYPES[catalog.by_name()[name].type] for name, t in decl.items() if not t})
    types = {"INTEGER": pa.int64(), "REAL": pa.float64(), "TEXT": pa.string()}
    return pa.table({n: pa.array([r[i] for r in rows], type=types[decl[n]]) for i, n in enumerate(names)})


def _state(store):
    return (store.conn.execute("SELECT * FROM customer_features ORDER BY shop_id, customer_id").fetchall(),
            store.conn.execute("SELECT COUNT(*) FROM materializations").fetchone()[0])


@pytest.fixture
def materialized(tmp_path):
    with _store(shop="", tz="UTC", n=40) as store:
        store.materialize(as_of=AS_OF)
        table = _features_table(store)
        path = tmp_path / "features.parquet"
        pq.write_table(table, path)
        yield store, table, path


def test_import_round_trip_is_recorded_and_keeps_the_change_log(materialized, tmp_path):
    store, table, path = materialized
    before, runs = _state(store)
    store.add_purchase("C0000003", 10.0, "2025-12-30T00:00:00Z")
    store.flush()
    changed = store.conn.execute("SELECT COUNT(*) FROM changed_customers").fetchone()[0]
    # a directory of several files, shuffled columns, as Spark writes it
    out = tmp_path / "spark_out"
    out.mkdir()
    shuffled = table.select(list(reversed(table.column_names)))
    pq.write_table(shuffled.slice(0, 15), out / "part-00000.parquet")
    pq.write_table(shuffled.slice(15), out / "part-00001.parquet")
    (out / "_SUCCESS").write_text("")
    result = store.import_features(out)
    assert result["kind"] == "import" and result["rows"] == 40 and result["as_of"] == AS_OF
    assert _state(store) == (before, runs + 1)
    run = store.conn.execute("SELECT kind, as_of_us, recomputed FROM materializations ORDER BY id DESC").fetchone()
    assert run[0] == "import" and run[2] == 40
    assert store.conn.execute("SELECT COUNT(*) FROM changed_customers").fetchone()[0] == changed > 0
    store.refresh(as_of=AS_OF)  # refresh works from an imported snapshot
    store.materialize(as_of=AS_OF)
    assert _state(store)[0] == store.conn.execute(
        "SELECT * FROM customer_features ORDER BY shop_id, customer_id").fetchall()


def _bad_tables(table):
    i = table.column_names.index
    yield "missing", table.drop(["purchase_count"]), "missing"
    yield "extra", table.append_column("x", pa.array([1] * table.num_rows)), "unexpected"
    col = table.column("purchase_count").cast(pa.float64())
    yield "type", table.set_column(i("purchase_count"), "purchase_count", col), "purchase_count is double"
    yield "shop", table.set_column(0, "shop_id", pa.array(["other"] * table.num_rows)), "shop"
    us = table.column("as_of_us").to_pylist()
    us[-1] += 1
    yield "as_of", table.set_column(i("as_of_us"), "as_of_us", pa.array(us, pa.int64())), "as_of"
    yield "duplicate", pa.concat_tables([table, table.slice(3, 1)]), "twice"
    yield "empty", table.slice(0, 0), "no rows"


@pytest.mark.parametrize("case", ["missing", "extra", "type", "shop", "as_of", "duplicate", "empty"])
def test_import_refusals_write_nothing(materialized, tmp_path, case):
    store, table, _ = materialized
    before = _state(store)
    _, bad, message = next(b for b in _bad_tables(table) if b[0] == case)
    path = tmp_path / f"{case}.parquet"
    pq.write_table(bad, path, row_group_size=7)  # several batches: a late duplicate or as_of too
    with pytest.raises(ImportRefusedError, match=message):
        store.import_features(path)
    assert _state(store) == before


def test_import_of_other_windows_needs_them_named(materialized, tmp_path):
    store, table, path = materialized
    with pytest.raises(ImportRefusedError, match="missing"):
        store.import_features(path, windows=(7, 30, 90, 365, 730))
    store.materialize(as_of=AS_OF, windows=(30,), families=["purchase_features"])
    small = _features_table(store)
    pq.write_table(small, tmp_path / "small.parquet")
    store.materialize(as_of=AS_OF)
    result = store.import_features(tmp_path / "small.parquet", windows=(30,), families=["purchase_features"])
    assert result["columns"] == len(small.column_names)


# -- the commands, as a user runs them ----------------------------------------------------
def _caf(*args, cwd):
    return subprocess.run([sys.executable, "-m", "store", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_caf_export_events_and_import_features(tmp_path):
    db = tmp_path / "shop.db"
    with _store(str(db), shop="", tz="UTC", n=30) as store:
        store.materialize(as_of=AS_OF)
        pq.write_table(_features_table(store), tmp_path / "f.parquet")
    done = _caf("--db", str(db), "export-events", "ev", "--buckets", "4", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tables"]["purchases"]["rows"] > 0
    again = _caf("--db", str(db), "export-events", "ev", cwd=tmp_path)
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "--overwrite" in again.stderr
    assert _caf("--db", str(db), "export-events", "ev", "--overwrite", cwd=tmp_path).returncode == 0
    done = _caf("--db", str(db), "import-features", "f.parquet", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["kind"] == "import"
    bad = _caf("--db", str(db), "import-features", "f.parquet", "--windows", "7", cwd=tmp_path)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "missing" in bad.stderr
