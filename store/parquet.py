"""Parquet in and out of the store: the shop's events out (``export_events``, for an engine that
reads Parquet, such as Spark: store/spark.py) and feature rows computed elsewhere back in
(``import_features``), both streamed in Arrow record batches (memory does not grow with the
number of rows). Needs pyarrow (the ``[spark]`` or ``[duckdb]`` extra), imported only here,
inside the functions.

The layout of an export directory ``DIR`` (docs/scale-out.md "The export format")::

    DIR/_caf_events.json                         the manifest (written last: a directory
                                                 without it is not a complete export)
    DIR/<table>/bucket=<k>/part-<i>.parquet      an event table's rows of the shop, hive-style
                                                 partitioned by bucket(customer_id)
    DIR/caf_tz_offsets/part-0.parquet            the store timezone's offsets (store/localtime.py)
    DIR/caf_tz/part-0.parquet                    its name and fixed offset (one row)

``bucket(customer_id) = crc32(UTF-8 bytes of customer_id) mod buckets`` (``zlib.crc32``; Spark
SQL ``pmod(crc32(customer_id), B)``, Java ``java.util.zip.CRC32``, DuckDB has no crc32): every
event of a customer is in one bucket, in every table. The tables are those the
materialisation reads: the ``-- tables:`` lines of the registry's families and the tables of
the targets query (``fill_targets_all_customers``: every table that names customers), found
by SQLite's authorizer as it prepares the query, never a list written here. Columns and types
are SQLite's: INTEGER -> int64, REAL -> float64, TEXT -> string.
"""

import json
import shutil
import sqlite3
import zlib
from pathlib import Path

from . import catalog, localtime, timeutil
from .db import atomic, begin_read, commit, quote_identifier
from .errors import ImportRefusedError, OutputNotEmptyError, StoreError, require_extra
from .frames import SQL_ARROW_TYPES
from .materialize import swap_in
from .plan import Plan, input_tables
from .runs import NEW_TABLE, record

FORMAT_VERSION = 1
MANIFEST = "_caf_events.json"
DEFAULT_BUCKETS = 16
MAX_BUCKETS = 4096
BATCH_ROWS = 65_536
HASH = "crc32(utf-8 customer_id) mod buckets"
TIMEZONE_TABLES = (localtime.TABLE, "caf_tz")  # temp tables of every store connection
ARROW_TYPES = SQL_ARROW_TYPES  # a declared SQLite type -> Arrow type (store.frames, from the catalog)


def pyarrow(what):
    """The pyarrow module, or ``MissingExtraError`` naming the extra that brings it."""
    # the submodules are used below; [spark] is the extra of this module ([duckdb] and [pandas] bring pyarrow too)
    return require_extra("spark", ("pyarrow", "pyarrow.dataset", "pyarrow.parquet"), what)[0]


def bucket(customer_id, buckets):
    """The export bucket of a customer id (the hash every engine can compute: module docstring)."""
    return zlib.crc32(customer_id.encode("utf-8")) % buckets


def columns(conn, table, schema="main"):
    """[(name, SQLite type)] of a table (``table``: a name the caller took from the registry, the
    targets query or TIMEZONE_TABLES); a type outside INTEGER, REAL, TEXT is refused."""
    allowed = {table}
    out = [(row[1], row[2].upper()) for row in
           conn.execute(f"PRAGMA {schema}.table_info({quote_identifier(table, allowed)})")]
    for name, decl in out:
        if decl not in ARROW_TYPES:
            raise StoreError(f"table {table}: column {name} has type {decl!r}, which the Parquet export "
                             f"does not map (known: {', '.join(ARROW_TYPES)})")
    return out


# -- export ---------------------------------------------------------------------------------
def _prepare_dir(path, overwrite):
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputNotEmptyError(f"{path} exists and is not a directory")
    entries = sorted(p.name for p in path.iterdir()) if path.exists() else []
    if entries:
        manifest = path / MANIFEST
        if not overwrite:
            raise OutputNotEmptyError(f"{path} is not empty; pass overwrite=True (caf export-events "
                                      "--overwrite) to replace an earlier export there")
        if not manifest.is_file():
            raise OutputNotEmptyError(f"{path} is not empty and holds no {MANIFEST}: not an earlier export, "
                                      "left untouched (choose an empty directory)")
        old = json.loads(manifest.read_text(encoding="utf-8"))
        manifest.unlink()  # first: a half-replaced directory is not a complete export
        for name in old.get("tables", {}):
            target = path / name
            if name and "/" not in name and name not in (".", "..") and target.is_dir():
                shutil.rmtree(target)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _batches(pa, cursor, schema, buckets):
    """Arrow record batches of the cursor's rows (``schema``'s columns), with the bucket of each
    row's customer_id as a last column when ``buckets``; BATCH_ROWS rows at a time."""
    names = schema.names
    cid = names.index("customer_id") if buckets else None
    while True:
        rows = cursor.fetchmany(BATCH_ROWS)
        if not rows:
            return
        cols = list(zip(*rows))
        arrays = []
        for name, field_type, values in zip(names, schema.types, cols):
            try:
                arrays.append(pa.array(values, type=field_type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
                raise StoreError(f"column {name}: a value does not fit its declared type "
                                 f"{field_type} ({exc})") from None
        if buckets:
            arrays.append(pa.array([bucket(c, buckets) for c in cols[cid]], type=pa.int32()))
            yield pa.RecordBatch.from_arrays(arrays, schema=schema.append(pa.field("bucket", pa.int32())))
        else:
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _write_table(pa, conn, out, table, cols, where, params, buckets):
    """Stream one table into ``out/<table>``: returns its row count."""
    ds = pa.dataset
    schema = pa.schema([(name, ARROW_TYPES[decl]) for name, decl in cols])
    allowed = {table} | {name for name, _ in cols}
    select = ", ".join(quote_identifier(name, allowed) for name, _ in cols)
    schema_name, bare = table.split(".") if "." in table else ("main", table)
    cursor = conn.execute(f"SELECT {select} FROM {schema_name}.{quote_identifier(bare, allowed | {bare})}{where}",
                          params)
    count = 0

    def counted(batches):
        nonlocal count
        for b in batches:
            count += b.num_rows
            yield b

    directory = out / bare
    directory.mkdir()
    try:
        if buckets:
            full = schema.append(pa.field("bucket", pa.int32()))
            reader = pa.RecordBatchReader.from_batches(full, counted(_batches(pa, cursor, schema, buckets)))
            ds.write_dataset(reader, directory, format="parquet",
                             partitioning=ds.partitioning(pa.schema([("bucket", pa.int32())]), flavor="hive"),
                             basename_template="part-{i}.parquet", existing_data_behavior="overwrite_or_ignore",
                             max_rows_per_group=BATCH_ROWS, max_rows_per_file=8 * BATCH_ROWS)
        else:
            with pa.parquet.ParquetWriter(directory / "part-0.parquet", schema) as writer:
                for b in counted(_batches(pa, cursor, schema, 0)):
                    writer.write_batch(b)
    finally:
        cursor.close()
    return count


def export_events(conn, shop_id, timezone, path, *, buckets=DEFAULT_BUCKETS, overwrite=False, reg=None):
    """Write the shop's event tables and the store timezone's tables to the directory ``path`` as
    Parquet (module docstring: the layout), from one read snapshot, streamed; returns the
    manifest (a dict, also written as ``path/_caf_events.json``).

    A non-empty ``path`` is refused (``OutputNotEmptyError``) unless ``overwrite``, which
    replaces an earlier export there (the tables its manifest lists); a directory holding
    anything else is always refused."""
    pa = pyarrow("export_events")
    if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= MAX_BUCKETS:
        raise ValueError(f"buckets must be a whole number in 1..{MAX_BUCKETS}, got {buckets!r}")
    plan = Plan(conn, reg=reg)
    tables = input_tables(conn, plan)
    out = _prepare_dir(path, overwrite)
    manifest = {"format": "caf-events", "format_version": FORMAT_VERSION, "shop_id": shop_id,
                "timezone": timezone, "exported_at": timeutil.iso(timeutil.now_us()),
                "buckets": buckets, "bucket_column": "bucket", "bucket_hash": HASH, "tables": {}}
    began = False
    if not conn.in_transaction:  # one read snapshot for every table
        begin_read(conn)
        began = True
    try:
        for table in tables:
            cols = columns(conn, table)
            rows = _write_table(pa, conn, out, table, cols, " WHERE shop_id = ?", [shop_id], buckets)
            manifest["tables"][table] = {"columns": [list(c) for c in cols], "rows": rows, "partitioned": True}
        for table in TIMEZONE_TABLES:
            cols = columns(conn, table, "temp")
            rows = _write_table(pa, conn, out, f"temp.{table}", cols, "", [], 0)
            manifest["tables"][table] = {"columns": [list(c) for c in cols], "rows": rows, "partitioned": False}
    finally:
        if began and conn.in_transaction:
            commit(conn)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def read_manifest(path):
    """The manifest of an export directory, checked (format and version)."""
    manifest_path = Path(path) / MANIFEST
    if not manifest_path.is_file():
        raise StoreError(f"{path} is not an events export: no {MANIFEST} (write one with caf export-events)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("format") != "caf-events" or manifest.get("format_version") != FORMAT_VERSION:
        raise StoreError(f"{manifest_path}: not a caf-events manifest of format version {FORMAT_VERSION}")
    return manifest


# -- import ---------------------------------------------------------------------------------
def _files(path):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    return path


def import_features(conn, shop_id, path, *, windows=None, families=None, reg=None):
    """Replace the shop's rows of ``customer_features`` by those of the Parquet file or directory
    ``path`` (e.g. what ``materialize_on_spark`` wrote), streamed, with the same atomic swap as
    ``materialize`` (``store.materialize.swap_in``) and a ``materializations`` record of kind
    ``import``; returns the record's summary.

    The file must have exactly the columns ``materialize(windows=..., families=...)`` writes
    (any order) with their types (INTEGER int64, REAL float64, TEXT string), rows of this shop
    only, one as_of, each customer once; otherwise ``ImportRefusedError`` and nothing is written.
    The change log (``changed_customers``) is kept: rows computed from an export do not know the
    events stored since, so the next ``refresh`` still recomputes those customers."""
    pa = pyarrow("import_features")
    import pyarrow.compute as pc

    plan = Plan(conn, windows, families, reg)
    dataset = pa.dataset.dataset(_files(path), format="parquet")
    schema = dataset.schema
    expected = {name: decl.split()[0] for name, decl in catalog.KEY_COLUMNS}
    expected.update({name: sqltype for name, sqltype, _, _ in plan.columns})
    found = set(schema.names)
    if found != set(expected) or len(schema.names) != len(found):
        missing = sorted(set(expected) - found)
        extra = sorted(found - set(expected))
        raise ImportRefusedError(f"{path}: the columns are not those of customer_features for windows "
                                 f"{list(plan.windows)}: missing {missing or 'none'}, unexpected {extra or 'none'}")
    arrow = {"INTEGER": (pa.int64(),), "REAL": (pa.float64(),), "TEXT": (pa.string(), pa.large_string())}
    wrong = [f"{name} is {schema.field(name).type}, expected {arrow[decl][0]}" for name, decl in expected.items()
             if schema.field(name).type not in arrow[decl]]
    if wrong:
        raise ImportRefusedError(f"{path}: column types differ from customer_features: {'; '.join(wrong)}")
    names = plan.column_names
    insert = plan.insert_values_sql(NEW_TABLE)
    seen = {}

    def fill(conn):
        count = 0
        for batch in dataset.to_batches(columns=names, batch_size=BATCH_ROWS):
            if batch.num_rows == 0:
                continue
            shops = pc.unique(batch.column(0)).to_pylist()
            if shops != [shop_id]:
                raise ImportRefusedError(f"{path}: rows of shop {', '.join(map(repr, sorted(map(str, shops))))}, "
                                         f"this store is shop {shop_id!r}")
            as_ofs = set(pc.unique(batch.column(3)).to_pylist()) | set(seen)
            if len(as_ofs) != 1 or None in as_ofs or pc.any(pc.is_null(batch.column(1))).as_py():
                raise ImportRefusedError(f"{path}: more than one as_of, or a row without a customer or as_of")
            seen.setdefault(as_ofs.pop(), batch.column(2)[0].as_py())
            try:  # the stored columns (plan.stored_names); as_of goes to the shop's as_of row
                conn.executemany(insert, zip(*(batch.column(i).to_pylist() for i in plan.stored_positions)))
            except sqlite3.IntegrityError as exc:
                raise ImportRefusedError(f"{path}: a customer appears twice (or a key is missing): {exc}") from None
            count += batch.num_rows
        if not count:
            raise ImportRefusedError(f"{path}: no rows to import")
        return count

    started = timeutil.iso(timeutil.now_us())
    with atomic(conn):
        catalog.sync_catalog(conn, reg)
        count = swap_in(conn, shop_id, plan, fill, lambda: next(iter(seen)))
        (as_of_us, as_of), = seen.items()
        if as_of != timeutil.iso(as_of_us):
            raise ImportRefusedError(f"{path}: as_of {as_of!r} is not as_of_us {as_of_us} as ISO-8601 UTC")
        result = record(conn, shop_id, "import", plan, as_of_us, started, count, families is None)
    return result
