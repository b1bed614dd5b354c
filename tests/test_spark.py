"""Apache Spark on local[2] (marker ``spark``, out of the default run; .ci/run runs ``pytest -m
spark``): ``materialize_on_spark`` over an events export equals ``materialize()`` on SQLite cell
by cell (integers and text exact, REALs within 1e-12 relative) for an enriched synthetic shop
(every event kind, so every behaviour family has data) of 200+ customers in UTC and in
America/New_York, through the whole round trip a user runs: caf's export, Spark, Parquet,
import-features. Needs the [spark] extra and Java."""

import math
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.spark

pyspark = pytest.importorskip("pyspark")
pq = pytest.importorskip("pyarrow.parquet")

from customer_activity_features import CustomerActivityFeatures, materialize_on_spark  # noqa: E402
from store import spark as caf_spark  # noqa: E402
from store import synthetic  # noqa: E402

AS_OF = "2026-01-01T00:00:00Z"
CUSTOMERS = 220
REL = 1e-12


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None:
        pytest.skip("no Java runtime")
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("caf tests")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.buffer.pageSize", caf_spark.SORT_PAGE_SIZE)
               .config("spark.sql.codegen.wholeStage", "false").config("spark.sql.adaptive.enabled", "false")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def mismatches(expected, got, names):
    """[(customer, column, expected, got)] of the cells that differ (rows keyed by customer_id)."""
    out = []
    by_id = {row[1]: row for row in got}
    assert len(by_id) == len(got) and set(by_id) == {row[1] for row in expected}
    for row in expected:
        other = by_id[row[1]]
        for name, a, b in zip(names, row, other):
            if isinstance(a, float) and isinstance(b, float):
                same = a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= REL * max(abs(a), abs(b))
            else:
                same = a == b and type(a) is type(b)
            if not same:
                out.append((row[1], name, a, b))
    return out


def _rows(store):
    cur = store.conn.execute("SELECT * FROM customer_features WHERE shop_id = ? ORDER BY customer_id",
                             [store.shop_id])
    return [d[0] for d in cur.description], cur.fetchall()


@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_spark_equals_sqlite_cell_by_cell_through_export_and_import(spark, tmp_path, tz):
    with CustomerActivityFeatures(str(tmp_path / "shop.db"), shop_id="s1", timezone=tz) as store:
        synthetic.populate_enriched(store, CUSTOMERS)
        for table in ("interactions", "purchase_attributions", "refunds", "sessions"):
            assert store.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] > 0
        manifest = store.export_events(tmp_path / "events", buckets=4)
        assert manifest["timezone"] == tz
        store.materialize(as_of=AS_OF)
        names, expected = _rows(store)

        frame = materialize_on_spark(spark, tmp_path / "events", as_of=AS_OF)
        assert frame.columns == names
        assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
        assert spark.conf.get("spark.sql.ansi.enabled") == "false"
        assert caf_spark.EXCLUDED_RULES[0] in spark.conf.get("spark.sql.optimizer.excludedRules")
        frame.write.parquet(str(tmp_path / "features"))

        result = store.import_features(tmp_path / "features")
        assert result["kind"] == "import" and result["rows"] == len(expected) >= CUSTOMERS
        names_after, imported = _rows(store)
        assert names_after == names
        bad = mismatches(expected, imported, names)
        assert bad == [], f"{len(bad)} mismatched cells of {len(expected) * len(names)}: {bad[:20]}"


def test_session_settings_keep_the_users_excluded_rules(spark):
    spark.conf.set("spark.sql.optimizer.excludedRules", "org.apache.spark.sql.catalyst.optimizer.CollapseProject")
    caf_spark.configure_session(spark)
    rules = spark.conf.get("spark.sql.optimizer.excludedRules").split(",")
    assert rules == ["org.apache.spark.sql.catalyst.optimizer.CollapseProject", *caf_spark.EXCLUDED_RULES]
    caf_spark.configure_session(spark)
    assert spark.conf.get("spark.sql.optimizer.excludedRules").split(",") == rules
    spark.conf.set("spark.sql.optimizer.excludedRules", ",".join(caf_spark.EXCLUDED_RULES))


@pytest.mark.slow  # a second JVM (~100 s on the shared machine): pytest -m spark runs it, .ci/run does not
def test_spark_submit_script_writes_parquet_that_import_features_loads(tmp_path):
    """store/spark_submit.py as a user runs it (python -m, its own local session), one family."""
    if shutil.which("java") is None:
        pytest.skip("no Java runtime")
    with CustomerActivityFeatures(str(tmp_path / "shop.db"), timezone="America/New_York") as store:
        synthetic.populate_enriched(store, 30)
        store.export_events(tmp_path / "events")
        store.materialize(as_of=AS_OF, windows=(30,), families=["purchase_features"])
        names, expected = _rows(store)
    out = tmp_path / "features"
    args = [sys.executable, "-m", "store.spark_submit", str(tmp_path / "events"), str(out), "--as-of", AS_OF,
            "--windows", "30", "--family", "purchase_features"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"wrote {out}: 30 customers" in done.stdout
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert again.returncode == 1 and "exists" in again.stderr and "Traceback" not in again.stderr
    with CustomerActivityFeatures(str(tmp_path / "shop.db"), timezone="America/New_York") as store:
        store.import_features(out, windows=(30,), families=["purchase_features"])
        assert mismatches(expected, _rows(store)[1], names) == []
