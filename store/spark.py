"""The feature families on Apache Spark: ``materialize_on_spark`` (docs/scale-out.md).

It reads an events export (``store.parquet.export_events``, ``caf export-events``), makes each
table a temporary view of the Spark session, and runs the statements of the engine adapter
(``store.engines.statements_for('spark', ...)``: the statements ``materialize`` runs, composed
by ``store.plan``, bound and transpiled on sqlglot's tree, Spark's fixes included) one relation
at a time, each a ``localCheckpoint()``-ed temporary view (the query plans would otherwise grow across
families), then the final SELECT: a DataFrame with exactly the columns of
``customer_features``, typed as SQLite declares them (INTEGER bigint, REAL double, TEXT string).

The session settings the results depend on are set here, on the session handed in
(``SESSION_SETTINGS``, ``EXCLUDED_RULES``): the session timezone UTC (event times are UTC
microseconds; local times come from the exported timezone tables), ANSI mode off (SQLite gives
NULL for ``x/0`` and an out-of-range cast; Spark 4 raises with ANSI on) and the optimizer rule
``RemoveRedundantAliases`` excluded (a Spark 4 bug on the segments query: wrong columns).

The plan (windows, families, users' family files) is made as ``materialize`` makes it, over an
in-memory SQLite copy of the store's schema (no events): the Spark run reads only the export.
pyspark, sqlglot and pyarrow are the optional extra ``[spark]``, imported only inside the
functions. ``store/spark_submit.py`` is the same from the command line (``spark-submit``).
"""

import sqlite3
from pathlib import Path

from . import catalog, engines, localtime, parquet, timeutil, user_families
from .db import configure, migrate
from .errors import StoreError
from .plan import DEFAULT_WINDOWS, Plan, check_families, check_windows

SESSION_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
}
EXCLUDED_RULES = ("org.apache.spark.sql.catalyst.optimizer.RemoveRedundantAliases",)
# The memory page of Spark's sorters in the local sessions this package starts. The final select
# joins ~35 staged relations by sort-merge joins, each sorter holding at least one page in the
# same task; with the default page (1-64 MB, from the heap) a local[2] run of the test shop ran
# out ("Unable to acquire 44 bytes of memory, got 0"), and more heap only made the pages larger.
SORT_PAGE_SIZE = "1m"
_EXCLUDED_KEY = "spark.sql.optimizer.excludedRules"
_SPARK_TYPES = {"INTEGER": "bigint", "REAL": "double", "TEXT": "string"}


def require_spark():
    """The pyspark module (with sqlglot), or EngineError naming the [spark] extra."""
    pyspark, _ = engines.require("spark", "pyspark", "sqlglot")
    return pyspark


def configure_session(spark):
    """Set the settings the results depend on, on ``spark`` (a SparkSession): SESSION_SETTINGS,
    and EXCLUDED_RULES added to the session's excluded optimizer rules."""
    for key, value in SESSION_SETTINGS.items():
        spark.conf.set(key, value)
    current = [r for r in (spark.conf.get(_EXCLUDED_KEY, "") or "").split(",") if r.strip()]
    spark.conf.set(_EXCLUDED_KEY, ",".join(current + [r for r in EXCLUDED_RULES if r not in current]))


def _schema_store(timezone):
    """An in-memory SQLite database with the store's schema and the export's timezone tables:
    what ``Plan`` and the adapter read the table declarations from (it holds no events)."""
    conn = sqlite3.connect(":memory:")
    configure(conn)
    migrate(conn)
    localtime.install(conn, timezone)
    return conn


def _table_frame(spark, events_path, name, info):
    """The exported table ``name`` as a DataFrame with its columns (not the partition column),
    typed from the manifest."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    cols = [(c, _SPARK_TYPES[t]) for c, t in info["columns"]]
    if info["rows"] == 0:  # an empty table has no files to read
        kinds = {"bigint": T.LongType(), "double": T.DoubleType(), "string": T.StringType()}
        return spark.createDataFrame([], T.StructType([T.StructField(c, kinds[t]) for c, t in cols]))
    frame = spark.read.parquet(str(Path(events_path) / name))
    return frame.select(*[F.col(c).cast(t).alias(c) for c, t in cols])


def materialize_on_spark(spark, events_path, *, as_of, windows=DEFAULT_WINDOWS, families=None, feature_paths=()):
    """The rows of ``customer_features`` at ``as_of``, computed by Spark from the events export
    ``events_path`` (``export_events``): a DataFrame with exactly the table's columns, in its
    order, one row per customer of the exported shop, as ``materialize(as_of, windows,
    families=...)`` of the store would write them. ``feature_paths``: the store's own family
    files (as ``CustomerActivityFeatures(feature_paths=...)``). Sets the session settings of
    SESSION_SETTINGS and EXCLUDED_RULES on ``spark``; registers temporary views named after the
    exported tables and the staged relations (``target``, the families). Write the result with
    ``.write.parquet(PATH)`` and load it with ``caf import-features PATH``."""
    require_spark()
    manifest = parquet.read_manifest(events_path)
    windows = check_windows(windows)
    if isinstance(feature_paths, (str, Path)):
        feature_paths = [feature_paths]
    reg = user_families.load(list(feature_paths or ()))
    check_families(families, reg)
    as_of_us = timeutil.as_of_us(as_of)
    configure_session(spark)
    conn = _schema_store(manifest["timezone"])
    try:
        plan = Plan(conn, windows, families, reg)
        params = plan.params(manifest["shop_id"], as_of_us)
        schemas = engines.input_schemas(conn, plan)
        statements = engines.statements_for("spark", plan, params, schemas)
        column_types = _declared(plan)
    finally:
        conn.close()
    register_tables(spark, events_path, manifest, schemas)
    return run_statements(spark, statements, column_types)


def register_tables(spark, events_path, manifest, schemas):
    """Each table the statements read (``schemas``: ``engines.input_schemas``) as a temporary view
    of the export ``events_path`` (its ``manifest``)."""
    missing = sorted(set(schemas) - set(manifest["tables"]))
    if missing:
        raise StoreError(f"{events_path}: the export has no table {', '.join(missing)} (export it again "
                         "with this version: caf export-events --overwrite)")
    for name in schemas:
        _table_frame(spark, events_path, name, manifest["tables"][name]).createOrReplaceTempView(name)


def session():
    """The active Spark session, else a new ``local[2]`` one (``verify``'s row source)."""
    require_spark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    spark = (SparkSession.builder.master("local[2]").appName("caf verify-engine spark")
             .config("spark.ui.showConsoleProgress", "false").config("spark.sql.shuffle.partitions", "8")
             .config("spark.buffer.pageSize", SORT_PAGE_SIZE).getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_rows(conn, plan, shop_id, params, *, lo=None, hi=None, memory_limit=None):
    """The row source of ``engines.verify`` for Spark (``caf verify-engine spark``): the store's
    events exported to a temporary directory (``parquet.export_events``, in the caller's read
    snapshot), the plan's statements for the customers lo <= id < hi run on the active Spark
    session (a ``local[2]`` one when there is none), the rows yielded in customer id order
    (``toLocalIterator``: one partition at a time). ``memory_limit`` is DuckDB's: unused."""
    import shutil
    import tempfile

    spark = session()
    configure_session(spark)
    work = Path(tempfile.mkdtemp(prefix="caf-verify-spark-"))
    try:
        events = work / "events"
        manifest = parquet.export_events(conn, shop_id, localtime.installed(conn) or "UTC", events, reg=plan.reg)
        schemas = engines.input_schemas(conn, plan)
        statements = engines.statements_for("spark", plan, params, schemas, lo=lo, hi=hi)
        register_tables(spark, events, manifest, schemas)
        frame = run_statements(spark, statements, _declared(plan))
        for row in frame.orderBy("customer_id").toLocalIterator():
            yield tuple(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)


engines.ROW_SOURCES["spark"] = spark_rows  # verify's row source for Spark (engines.ROW_SOURCES)


def _declared(plan):
    """[(column, spark type)] of customer_features for ``plan``, as ``materialize`` declares it."""
    decls = [(name, decl.split()[0]) for name, decl in catalog.KEY_COLUMNS]
    decls += [(name, sqltype) for name, sqltype, _, _ in plan.columns]
    return [(name, _SPARK_TYPES[decl]) for name, decl in decls]


def run_statements(spark, statements, column_types):
    """Run the adapter's Spark statements: each relation a temporary view (a table's rows
    ``localCheckpoint()``-ed, so that every later plan starts from them; ``purchase_local_time``
    a plain view), then the final SELECT, cast to ``column_types`` [(name, spark type)]."""
    from pyspark.sql import functions as F

    for st in statements[:-1]:
        frame = spark.sql(st.sql)
        if not st.view:
            frame = frame.localCheckpoint()
        frame.createOrReplaceTempView(st.relation)
    final = spark.sql(statements[-1].sql)
    if len(final.columns) != len(column_types):
        raise StoreError(f"the final select has {len(final.columns)} columns, customer_features "
                         f"{len(column_types)}")
    final = final.toDF(*[name for name, _ in column_types])  # by position: the select's names repeat
    return final.select(*[F.col(name).cast(t).alias(name) for name, t in column_types])
