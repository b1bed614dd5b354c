"""DataFrames and Parquet (issue 14 item 1): the store's rows as Arrow tables and pandas frames.

Optional: the extra ``[pandas]`` (pandas and pyarrow), imported inside the functions that need
it; without it they raise ``MissingExtraError`` naming the extra (``require``). Importing this
module needs neither library.

Types follow the catalog, through one mapping, ``ARROW_TYPES`` (a catalog type -> an Arrow type),
and one fixed mapping of those Arrow types to pandas dtypes (``PANDAS_DTYPES``):

=========  ===========  ========================  =================
catalog    Arrow        pandas                    NULL
=========  ===========  ========================  =================
integer    int64        ``Int64`` (nullable)      ``pd.NA``
boolean    bool         ``boolean`` (nullable)    ``pd.NA``
real       float64      ``float64``               ``NaN``
text       string       ``string``                ``pd.NA``
=========  ===========  ========================  =================

Integers are nullable ``Int64`` for every integer column, not only those whose null rule allows
NULL: a falsy customer id gives a row whose every feature is NULL (``features_at``), and one
dtype per catalog type keeps frames of different calls concatenable. The key columns of
``customer_features`` take the type their declaration names (``catalog.KEY_COLUMNS``).

Rows travel in Arrow record batches of ``BATCH_ROWS`` rows: a batch is built from at most that
many Python rows, so the Python objects alive at a time are bounded whatever the number of rows.
``features_frame`` allocates each feature column once, for every entity row, fills it a batch at
a time and builds the frame from those arrays without a copy (memory beyond the frame: one
batch). ``to_arrow`` concatenates the batches (``pa.Table.from_batches``: the table is the result)
and ``to_pandas`` converts that table column by column, each Arrow column freed once converted
(``self_destruct``). A Parquet file is written batch by batch (``pyarrow.parquet.ParquetWriter``):
its memory is one batch.
"""

import itertools
import operator

from . import catalog
from .errors import require_extra

EXTRA = "pandas"
INSTALL = "pip install 'customer-activity-features[pandas]'"
BATCH_ROWS = 10_000  # rows per Arrow record batch (the bound of the Python rows alive at a time)

# catalog type -> Arrow type alias (pyarrow.type_for_alias): the one mapping of types
ARROW_TYPES = {"integer": "int64", "real": "float64", "text": "string", "boolean": "bool"}
# Arrow type alias -> pandas extension dtype name (float64 stays numpy float64, NULL as NaN)
PANDAS_DTYPES = {"int64": "Int64", "bool": "boolean", "string": "string"}
# a key column's declared SQL type -> its catalog type (catalog.SQL_TYPES read backwards)
_KEY_TYPES = {sql: name for name, sql in catalog.SQL_TYPES.items() if name != "boolean"}
# a declared SQLite column type -> Arrow type alias (INTEGER int64, REAL float64, TEXT string),
# derived from the two above: the Parquet export of the event tables (store.parquet) uses it
SQL_ARROW_TYPES = {sql: ARROW_TYPES[name] for sql, name in _KEY_TYPES.items()}


def require(what="this method"):
    """(pyarrow, pandas), imported; ``MissingExtraError`` naming the extra when one is missing."""
    return tuple(require_extra(EXTRA, ("pyarrow", "pandas"), what))


def require_parquet(what="export(format='parquet')"):
    """pyarrow.parquet, imported; ``MissingExtraError`` naming the extra when pyarrow is missing."""
    return require_extra(EXTRA, ("pyarrow.parquet",), what)[0]


# -- types ------------------------------------------------------------------------------------
def column_types(plan, reg=None):
    """[(column, catalog type)] of every column of customer_features for ``plan`` (a
    ``store.plan.Plan``), in table order: the keys as declared, each feature column the type
    of its catalog record (a windowed column ``<name>_<N>d`` that of ``<name>``)."""
    records = catalog.by_name(reg)
    keys = [(name, _KEY_TYPES[decl.split()[0]]) for name, decl in catalog.KEY_COLUMNS]
    return keys + [(column, records[feature].type) for column, _, _, feature in plan.columns]


def feature_types(plan, reg=None):
    """[(column, catalog type)] of the feature columns only (no keys), in table order."""
    return column_types(plan, reg)[len(catalog.KEY_COLUMNS):]


def schema(pa, columns):
    """The Arrow schema of [(column, catalog type)]."""
    return pa.schema([(name, pa.type_for_alias(ARROW_TYPES[kind])) for name, kind in columns])


def pandas_types(pa, pd):
    """The ``types_mapper`` of ``pa.Table.to_pandas``: Arrow type -> pandas dtype."""
    mapping = {pa.type_for_alias(arrow): pd.api.types.pandas_dtype(dtype) for arrow, dtype in PANDAS_DTYPES.items()}
    return mapping.get


# -- rows -> Arrow ----------------------------------------------------------------------------
def _array(pa, values, arrow_type):
    if pa.types.is_boolean(arrow_type):  # SQLite's booleans are 0/1 integers
        return pa.array(values, type=pa.int64()).cast(arrow_type)
    return pa.array(values, type=arrow_type)


def record_batches(pa, arrow_schema, rows, batch_rows=BATCH_ROWS):
    """Arrow record batches of ``arrow_schema`` from ``rows`` (tuples in its column order), read
    ``batch_rows`` at a time."""
    iterator = iter(rows)
    while True:
        chunk = list(itertools.islice(iterator, batch_rows))
        if not chunk:
            return
        columns = list(zip(*chunk))
        del chunk
        yield pa.RecordBatch.from_arrays(
            [_array(pa, values, field.type) for values, field in zip(columns, arrow_schema)], schema=arrow_schema)


def cursor_rows(cursor, size=BATCH_ROWS):
    """The rows of an SQLite cursor, fetched ``size`` at a time; the cursor closed at the end."""
    try:
        while True:
            rows = cursor.fetchmany(size)
            if not rows:
                return
            yield from rows
    finally:
        cursor.close()


def table(pa, columns, rows, batch_rows=BATCH_ROWS):
    """An Arrow table of [(column, catalog type)] from ``rows`` (tuples), built batch by batch."""
    arrow_schema = schema(pa, columns)
    return pa.Table.from_batches(list(record_batches(pa, arrow_schema, rows, batch_rows)), schema=arrow_schema)


def to_pandas(pa, pd, arrow_table):
    """``arrow_table`` as a DataFrame typed by ``PANDAS_DTYPES``; the Arrow columns are freed as
    they are converted (the table is unusable afterwards)."""
    return arrow_table.to_pandas(types_mapper=pandas_types(pa, pd), self_destruct=True, split_blocks=True)


def write_parquet(path, columns, rows, batch_rows=BATCH_ROWS):
    """Write ``rows`` (tuples of [(column, catalog type)]) to a Parquet file at ``path``, one
    record batch at a time; returns the number of rows written."""
    pq = require_parquet()
    import pyarrow as pa

    arrow_schema = schema(pa, columns)
    count = 0
    with pq.ParquetWriter(path, arrow_schema) as writer:
        for batch in record_batches(pa, arrow_schema, rows, batch_rows):
            writer.write_batch(batch)
            count += batch.num_rows
    return count


# -- the entity frame of features_frame --------------------------------------------------------
def check_entity(pd, entity, customer_col, time_col, feature_names):
    """TypeError unless ``entity`` is a DataFrame; ValueError when it lacks ``customer_col`` or
    ``time_col`` or has a column of the same name as a feature column."""
    if not isinstance(entity, pd.DataFrame):
        raise TypeError(f"entity_df must be a pandas DataFrame, got {type(entity).__name__}")
    missing = [c for c in (customer_col, time_col) if c not in entity.columns]
    if missing:
        raise ValueError(f"entity_df has no column {', '.join(map(repr, missing))} "
                         f"(customer_col={customer_col!r}, time_col={time_col!r})")
    if not entity.columns.is_unique:
        raise ValueError("entity_df has duplicate column names")
    clash = [c for c in entity.columns if c in set(feature_names)]
    if clash:
        raise ValueError(f"entity_df already has feature column(s) {', '.join(map(repr, clash[:5]))}: "
                         "rename or drop them")


def entity_pairs(pd, entity, customer_col, time_col, chunk_rows=BATCH_ROWS):
    """(customer_id, cutoff) of each row of ``entity``, in row order, as Python values (numpy
    integers become ints, datetime64 values Timestamps), read ``chunk_rows`` rows at a time. A
    missing id (None, NaN, NA) becomes None (``features_at``: a row of NULL features); a
    missing cutoff (None, NaT, NaN, NA) is a ValueError naming the row's position: a training
    frame has no "now" (``features_at``'s None), since pandas turns None into NaN or NaT in a
    typed column and a forgotten cutoff would silently leak the present into the features."""
    ids, cutoffs = entity[customer_col], entity[time_col]
    for start in range(0, len(entity), chunk_rows):
        stop = start + chunk_rows
        for i, (cid, cutoff) in enumerate(zip(ids.iloc[start:stop].tolist(), cutoffs.iloc[start:stop].tolist()),
                                          start):
            if cid is not None and pd.isna(cid):
                cid = None
            if cutoff is None or pd.isna(cutoff):
                raise ValueError(f"pair {i}: the cutoff is missing ({cutoff!r})")
            yield cid, cutoff


def features_frame(pa, pd, entity, rows, columns, batch_rows=BATCH_ROWS):
    """``entity`` (its columns, row order and index) plus the feature columns [(column, catalog
    type)] taken from ``rows`` (the dicts of ``features_at``, one per entity row).

    Each feature column is allocated once, for every entity row, and filled a record batch at
    a time (``_Column``); the frame is made of those arrays without a copy (and the entity's
    columns are not copied either): the memory beyond the frame is one batch, not a second
    copy of the frame (as ``pa.Table.to_pandas`` of the whole table would hold)."""
    import numpy as np  # a dependency of pandas

    pick = operator.itemgetter(*(name for name, _ in columns))
    values = ((pick(row),) for row in rows) if len(columns) == 1 else (pick(row) for row in rows)
    arrow_schema = schema(pa, columns)
    filled = [_Column(np, pd, field.type, len(entity)) for field in arrow_schema]
    at = 0
    for batch in record_batches(pa, arrow_schema, values, batch_rows):
        if at + batch.num_rows > len(entity):
            break
        for column, array in zip(filled, batch.columns):
            column.fill(at, array)
        at += batch.num_rows
    if at != len(entity):  # features_at yields one row per pair: never expected
        raise RuntimeError(f"features_at gave {at}+ rows for {len(entity)} entity rows")
    features = pd.DataFrame({name: column.array(pa, pd) for (name, _), column in zip(columns, filled)},
                            index=entity.index, copy=False)
    return pd.concat([entity, features], axis=1)


class _Column:
    """One feature column of ``features_frame``, filled from Arrow arrays a batch at a time: numbers
    and booleans into numpy values allocated once for every row (with a NULL mask for the nullable
    pandas dtypes of ``PANDAS_DTYPES``), text kept as its Arrow chunks (compact, no Python
    objects); then the pandas array of its dtype (text through the dtype's ``__from_arrow__``, as
    ``pa.Table.to_pandas`` makes it)."""

    def __init__(self, np, pd, arrow_type, size):
        name = PANDAS_DTYPES.get(str(arrow_type))  # None: numpy float64, NULL as NaN
        self.dtype = None if name is None else pd.api.types.pandas_dtype(name)
        self.kind = name
        self.chunks = []
        self.values = self.mask = None
        if name != PANDAS_DTYPES["string"]:
            self.values = np.empty(size, dtype=arrow_type.to_pandas_dtype())
            self.mask = None if name is None else np.zeros(size, dtype=bool)

    def fill(self, at, array):
        if self.values is None:
            self.chunks.append(array)
            return
        end = at + len(array)
        if self.mask is not None:
            self.mask[at:end] = array.is_null().to_numpy(zero_copy_only=False)
            array = array.fill_null(False if self.kind == "boolean" else 0)
        self.values[at:end] = array.to_numpy(zero_copy_only=False)  # floats: NULL is NaN

    def array(self, pa, pd):
        if self.values is None:
            return self.dtype.__from_arrow__(pa.chunked_array(self.chunks, type=pa.string()))
        if self.kind == "Int64":
            return pd.arrays.IntegerArray(self.values, self.mask)
        if self.kind == "boolean":
            return pd.arrays.BooleanArray(self.values, self.mask)
        return self.values


def indexed_frame(pa, pd, fields, rows, batch_rows=BATCH_ROWS):
    """A DataFrame of named tuples with ``fields`` (``customer_id`` then numbers, the RFM/T rows of
    ``store.rfm``), indexed by customer_id (string), every other column float64 (lifetimes'
    frames)."""
    columns = [(name, "text" if name == "customer_id" else "real") for name in fields]
    frame = to_pandas(pa, pd, table(pa, columns, rows, batch_rows))
    return frame.set_index("customer_id")
