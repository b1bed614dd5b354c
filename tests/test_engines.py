"""The family SQL on other engines (issue 13): store/engines.py.

* the lint: every statement of every built-in family and of the documented user family
  (docs/examples/user_features.sql) translates exactly to DuckDB and Spark SQL (an
  untranslatable construct raises EngineError);
* DuckDB equals SQLite cell by cell (integers and text exact, REALs within 1e-12 relative)
  on an enriched synthetic shop (store.synthetic.populate_enriched: every event kind, so
  every behaviour family has data), in UTC and in America/New_York, with a user family:
  2,000 customers (the issue's size; ~14 s), and on random small histories (hypothesis, tests/oracle_behavior.py's edge-heavy generator);
* materialize(engine="duckdb") writes the same table as engine="sqlite" and records the run;
* ``caf materialize --engine duckdb`` and ``caf verify-engine duckdb`` as a user runs them.
"""

import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from customer_activity_features import CustomerActivityFeatures
from store import engines, plan, registry, synthetic
from store.errors import EngineError, MissingExtraError

import oracle_behavior as ob

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "user_features.sql"
AS_OF = "2026-01-01T00:00:00Z"
ZONES = ("UTC", "America/New_York")


def shop(tmp_path_factory, n):
    path = tmp_path_factory.mktemp(f"enriched{n}") / "shop.db"
    with CustomerActivityFeatures(path) as store:
        result = synthetic.populate_enriched(store, n)
    assert all(r.rejected == 0 for r in result.values())
    return path


@pytest.fixture(scope="module")
def shop500(tmp_path_factory):
    return shop(tmp_path_factory, 500)


@pytest.fixture(scope="module")
def shop2000(tmp_path_factory):
    return shop(tmp_path_factory, 2000)


def statements(store, dialect):
    p = plan.Plan(store.conn, reg=store.registry)
    params = p.params(store.shop_id, 1_767_225_600_000_000)
    return p, engines.statements_for(dialect, p, params, engines.input_schemas(store.conn, p))


# -- the lint ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", engines.DIALECTS)
def test_every_family_statement_translates_exactly(dialect, tmp_path):
    """Every built-in family and the documented user family: statements_for raises EngineError on
    any construct it cannot translate exactly (an untyped division, an unknown SQLite function)."""
    with CustomerActivityFeatures(tmp_path / "s.db", feature_paths=[EXAMPLE]) as store:
        p, out = statements(store, dialect)
        names = [st.relation for st in out]
        assert names[0] == engines.TARGET and names[-1] is None
        assert set(names[1:-1]) >= {st.table for st in p.stage_statements()} | {"big_order_features"}
        for st in out:
            text = st.sql.upper()
            assert "TOTAL(" not in text and "MATERIALIZED" not in text and "TEMP." not in text
            assert "STRFTIME(" not in text or dialect == "duckdb"


def test_an_untranslatable_construct_is_an_error(tmp_path):
    """A user family using a SQLite-only function, or dividing values of unknown type, is refused
    by the lint with a message naming the construct."""
    for body, fragment in (("julianday(MAX(p.event_time_us))", "julianday"),
                           ("MAX(p.event_id) / 2", "division")):
        fam = tmp_path / f"f{len(fragment)}" / "odd.sql"
        fam.parent.mkdir()
        fam.write_text("-- family: odd_features\n-- order: 1001\n-- tables: purchases\nSELECT\n"
                       "    t.target_id AS target_id,\n"
                       f"    -- odd_value: Something.; real, units; NULL when none\n    {body} AS odd_value\n"
                       "FROM target AS t LEFT JOIN purchases AS p ON p.shop_id = :shop_id "
                       "AND p.customer_id = t.customer_id GROUP BY t.target_id\n")
        with CustomerActivityFeatures(feature_paths=[fam.parent]) as store:
            with pytest.raises(EngineError, match=fragment):
                statements(store, "duckdb")


def test_parameters_are_bound_on_the_tree_as_typed_literals():
    from sqlglot import exp

    assert engines.literal(None).sql() == "NULL"
    assert engines.literal(7).sql("duckdb") == "CAST(7 AS BIGINT)"
    assert engines.literal(0.5).sql("duckdb") == "CAST(0.5 AS DOUBLE)"
    quoted = engines.literal("x'; DROP TABLE purchases; --")
    assert isinstance(quoted, exp.Literal) and quoted.is_string
    with pytest.raises(EngineError):
        engines.literal(b"blob")


# -- DuckDB = SQLite -------------------------------------------------------------------------
def assert_same(result, customers):
    assert result["mismatched_cells"] == 0, (result["by_column"], result["examples"])
    assert result["rows"] == customers and result["cells"] == customers * result["columns"]


@pytest.mark.parametrize("zone", ZONES)
def test_duckdb_equals_sqlite_on_an_enriched_shop_of_2000(shop2000, zone):
    with CustomerActivityFeatures(shop2000, timezone=zone, feature_paths=[EXAMPLE]) as store:
        assert_same(store.verify_engine("duckdb", as_of=AS_OF, sample=0), 2000)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=ob.histories(), zone=ob.st.sampled_from(ZONES))
def test_duckdb_equals_sqlite_on_random_histories(h, zone):
    """The edge-heavy histories of the behaviour oracle (window edges, ties, NULL extras)."""
    with CustomerActivityFeatures(timezone=zone) as store:
        ob.load(store, h)
        customers = len(set(ob.CUSTOMERS) & {e["customer_id"] for k in ("purchases", "sessions", "interactions",
                                                                        "attributions", "carts", "tickets")
                                             for e in h[k]} | set(h["created_at"]))
        result = store.verify_engine("duckdb", as_of=ob.iso(ob.AS_OF), sample=0)
        assert_same(result, customers)


def test_a_sample_is_the_first_customers_in_id_order(shop500):
    with CustomerActivityFeatures(shop500) as store:
        result = store.verify_engine("duckdb", as_of=AS_OF, sample=40)
        assert_same(result, 40)


def test_cells_equal_rule():
    assert engines.cells_equal(1, 1) and not engines.cells_equal(1, 1.0) and not engines.cells_equal(1, True)
    assert engines.cells_equal(None, None) and not engines.cells_equal(None, 0)
    assert engines.cells_equal(0.1 + 0.2, 0.3) and not engines.cells_equal(1.0, 1.0 + 1e-9)
    assert engines.cells_equal("a", "a") and not engines.cells_equal("a", "A")


# -- materialize(engine="duckdb") -------------------------------------------------------------
def table_rows(store):
    return store.conn.execute("SELECT * FROM customer_features ORDER BY shop_id, customer_id").fetchall()


def test_materialize_on_duckdb_writes_the_same_table(shop500, tmp_path, monkeypatch):
    path = tmp_path / "copy.db"
    shutil.copy(shop500, path)
    scratch_dirs = tmp_path / "tmp"
    scratch_dirs.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_dirs))
    # batches of 2 rows: a column NULL in its first rows and text later (browser) is read as
    # text because of the typing row, not as the integers the ADBC driver would infer
    monkeypatch.setattr(engines, "READ_BATCH_ROWS", 2)
    # the final select in chunks of 37 targets (14 runs), the rows still in customer order
    monkeypatch.setattr(engines, "FINAL_CHUNK_TARGETS", 37)
    with CustomerActivityFeatures(path, feature_paths=[EXAMPLE]) as store:
        plain = store.materialize(as_of=AS_OF)
        expected = table_rows(store)
        summary = store.materialize(as_of=AS_OF, engine="duckdb", memory_limit="500MB")
        # the rows' file was detached after the commit and its scratch directory removed
        assert [r[1] for r in store.conn.execute("PRAGMA database_list")] == ["main", "temp"]
        assert list(scratch_dirs.iterdir()) == []
        got = table_rows(store)
        assert summary["engine"] == "duckdb" and set(summary["seconds"]) == {"translate", "read", "compute", "write"}
        assert {k: v for k, v in summary.items() if k not in ("engine", "seconds")} == plain
        assert len(got) == len(expected) == 500
        for a, b in zip(expected, got):
            assert all(engines.cells_equal(x, y) for x, y in zip(a, b)), (a, b)
        runs = store.conn.execute("SELECT kind, rows FROM materializations").fetchall()
        assert runs == [("full", 500), ("full", 500)]
        assert store.conn.execute("SELECT name FROM sqlite_master WHERE name = 'customer_features_new'").fetchone() is None


def test_materialize_on_duckdb_of_a_store_in_memory():
    """A store with no file: its tables go to DuckDB through this connection."""
    with CustomerActivityFeatures() as store:
        synthetic.populate_enriched(store, 40)
        store.materialize(as_of=AS_OF)
        expected = table_rows(store)
        store.materialize(as_of=AS_OF, engine="duckdb")
        got = table_rows(store)
    assert len(got) == len(expected) == 40
    for a, b in zip(expected, got):
        assert all(engines.cells_equal(x, y) for x, y in zip(a, b)), (a, b)


def test_materialize_on_duckdb_keeps_other_shops_and_chosen_families(tmp_path):
    db = tmp_path / "s.db"
    with CustomerActivityFeatures(db, shop_id="other") as other:
        other.add_purchase("x", 5.0, "2025-12-01T00:00:00Z")
        other.materialize(as_of=AS_OF)
    with CustomerActivityFeatures(db) as store:
        synthetic.populate(store, 30)
        store.materialize(as_of=AS_OF, families=["purchase_features", "behavior_segments"])
        expected = table_rows(store)
        store.materialize(as_of=AS_OF, families=["purchase_features", "behavior_segments"], engine="duckdb")
        assert table_rows(store) == expected
        assert any(r[0] == "other" for r in expected)


def test_engine_arguments_are_checked():
    with CustomerActivityFeatures() as store:
        with pytest.raises(ValueError, match="unknown engine"):
            store.materialize(engine="postgres")
        with pytest.raises(ValueError, match="workers"):
            store.materialize(engine="duckdb", workers=2)
        with pytest.raises(EngineError, match="(?i)memory"):  # the statements of test_a_sample...'s as_of
            store.materialize(as_of=AS_OF, engine="duckdb", memory_limit="lots")


def test_duckdb_runs_under_the_memory_limit_given():
    con = engines.duckdb_connection("300MB")
    try:
        limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        assert limit.replace(" ", "").upper().startswith(("286.1MIB", "300.0MB", "286MIB", "300MB")), limit
    finally:
        con.close()


def test_a_missing_extra_names_it(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_duckdb(name, *args, **kwargs):
        if name == "duckdb":
            raise ImportError("No module named 'duckdb'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_duckdb)
    monkeypatch.delitem(sys.modules, "duckdb", raising=False)
    with pytest.raises(MissingExtraError, match=r"\[duckdb\]"):
        engines.duckdb_connection()


# -- the commands -----------------------------------------------------------------------------
def caf(*args, db):
    env = {**os.environ, "CAF_DB": str(db)}
    return subprocess.run([sys.executable, "-m", "store", *args], capture_output=True, text=True, env=env,
                          cwd=str(ROOT), timeout=300)


def test_caf_materialize_engine_and_verify_engine(shop500, tmp_path):
    db = tmp_path / "copy.db"
    shutil.copy(shop500, db)
    done = caf("materialize", "--engine", "duckdb", "--as-of", AS_OF, "--memory-limit", "400MB", db=db)
    assert done.returncode == 0, done.stderr
    assert "500 customers" in done.stdout and "duckdb" in done.stdout
    checked = caf("verify-engine", "duckdb", "--sample", "100", db=db)
    assert checked.returncode == 0, checked.stderr
    assert "100 customers" in checked.stdout and ", 0 mismatched" in checked.stdout
    bad = caf("verify-engine", "oracle", db=db)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    wrong = caf("materialize", "--memory-limit", "1GB", db=db)
    assert wrong.returncode == 2 and "--engine duckdb" in wrong.stderr


def test_verify_engine_reports_a_mismatch_with_exit_status_1(shop500, tmp_path, monkeypatch):
    """A wrong engine (here: DuckDB rows with one cell changed) is reported, not hidden."""
    db = tmp_path / "copy.db"
    shutil.copy(shop500, db)
    real = engines.ROW_SOURCES["duckdb"]

    def off_by_one(*args, **kwargs):
        for i, row in enumerate(real(*args, **kwargs)):
            yield row if i != 3 else row[:-1] + (row[-1] + 1 if isinstance(row[-1], int) else 1,)

    monkeypatch.setitem(engines.ROW_SOURCES, "duckdb", off_by_one)
    from click.testing import CliRunner
    from store.cli import cli

    result = CliRunner().invoke(cli, ["--db", str(db), "verify-engine", "duckdb", "--as-of", AS_OF,
                                 "--sample", "10"])
    assert result.exit_code == 1, result.output
    assert "1 mismatched" in result.output and "C0000003" in result.output


def test_the_transfer_benchmark_runs_each_way(tmp_path):
    """benchmarks/engine_transfer.py (the README's figures for moving rows): each way moves every row."""
    from benchmarks import engine_transfer

    db = tmp_path / "s.db"
    with CustomerActivityFeatures(db) as store:
        synthetic.populate(store, 40)
        store.materialize(as_of=AS_OF)
        events = sum(store.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                     for t in ("customers", "purchases", "cart_events", "sessions", "support_interactions"))
    got = {(kind, way): engine_transfer.run_one(str(db), kind, way)["rows"] for kind, way in engine_transfer.WAYS}
    assert got[("read", "python")] == got[("read", "adbc")] >= events  # + the timezone tables' rows
    assert got[("write", "executemany")] == got[("write", "adbc")] == 40


def test_ahead_keeps_order_raises_the_producers_error_and_stops_when_closed():
    import threading

    assert list(engines.ahead(iter(range(100)), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise EngineError("boom")
    with pytest.raises(EngineError, match="boom"):
        list(engines.ahead(failing()))
    made = []

    def endless():
        for i in range(10**9):
            made.append(i)
            yield i
    it = engines.ahead(endless(), depth=2)
    assert next(it) == 0
    it.close()  # the producer stops: at most a few items past the queue's depth
    assert len(made) <= 5
    assert not [t for t in threading.enumerate() if t.name == "caf-ahead"]
