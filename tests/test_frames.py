"""DataFrames and Parquet (issue 14 item 1; docs/frames.md): features_frame, to_pandas, to_arrow,
the RFM/T frames and export(format="parquet"), typed as the catalog says; the extra [pandas]."""

import csv
import json
import math
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import oracle_behavior as ob  # noqa: E402
import oracle_feature_store as ofs  # noqa: E402
from customer_activity_features import CustomerActivityFeatures, MissingExtraError  # noqa: E402
from store import catalog, timeutil  # noqa: E402
from store import synthetic  # noqa: E402

DAY = timeutil.US_PER_DAY
KEYS = ("shop_id", "customer_id", "as_of", "as_of_us")
# the second copy of the type rule (the first: store.frames.ARROW_TYPES / PANDAS_DTYPES)
DTYPES = {"integer": "Int64", "boolean": "boolean", "real": "float64", "text": "string"}
ARROW = {"integer": pa.int64(), "boolean": pa.bool_(), "real": pa.float64(), "text": pa.string()}


def _times(seed_history, behavior_history):
    times = {timeutil.to_us(next(v for k, v in rec.items() if k.endswith("_date"))) for _, rec in seed_history}
    for events in behavior_history.values():
        times.update(e["time"] for e in events) if isinstance(events, list) else times.update(events.values())
    return sorted(times) or [ob.AS_OF]


@st.composite
def cases(draw):
    """(seed history, behaviour history, entity rows [(customer, cutoff_us)], exclusive, families):
    cutoffs on event instants (ties), a microsecond either side and at window edges; duplicate
    pairs; unknown, float and missing ids."""
    seed_history = draw(ofs.events(max_size=8))
    behavior_history = draw(ob.histories(max_events=4))
    times = _times(seed_history, behavior_history) + [ob.AS_OF]
    cutoff = st.builds(lambda t, edge, d: t + edge * DAY + d, st.sampled_from(times),
                       st.sampled_from((0, 0, 1, 30, 61)), st.sampled_from((0, 0, 1, -1)))
    cutoffs = draw(st.lists(cutoff, min_size=1, max_size=3, unique=True))
    customers = st.sampled_from(ofs.CUSTOMERS + ob.CUSTOMERS + ("nobody", 17850.0, None))
    pairs = draw(st.lists(st.tuples(customers, st.sampled_from(cutoffs)), min_size=1, max_size=8))
    if draw(st.booleans()):
        pairs = pairs + pairs[:2]  # duplicate pairs
    families = draw(st.sampled_from((None, ("purchase_features", "behavior_segments"))))
    return seed_history, behavior_history, pairs, draw(st.booleans()), families


def _same(got, want):
    """A frame cell against a features_at value: NULL as missing, booleans as True/False."""
    if want is None or got is None or got is pd.NA:
        return (want is None and (got is None or got is pd.NA or (isinstance(got, float) and math.isnan(got))))
    if isinstance(want, float):
        return isinstance(got, float) and (got == want or abs(got - want) <= 1e-12 * max(1.0, abs(want)))
    return got == want


@settings(max_examples=15, deadline=None)
@given(case=cases())
def test_each_row_of_features_frame_is_features_at_of_its_pair(case):
    _check_frame_against_features_at(case)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(case=cases())
def test_each_row_of_features_frame_is_features_at_of_its_pair_many(case):
    _check_frame_against_features_at(case)


def _check_frame_against_features_at(case):
    seed_history, behavior_history, pairs, exclusive, families = case
    with CustomerActivityFeatures() as store:
        ofs.load(store, seed_history)
        ob.load(store, behavior_history)
        entity = pd.DataFrame({
            "customer_id": pd.array([cid for cid, _ in pairs], dtype=object),
            "cutoff": pd.to_datetime([us for _, us in pairs], unit="us", utc=True),
            "label": range(len(pairs)),
        }, index=[f"r{len(pairs) - i}" for i in range(len(pairs))])  # an index that is not 0..n-1
        frame = store.features_frame(entity, exclusive=exclusive, families=families)
        rows = list(store.features_at([(cid, timeutil.from_us(us)) for cid, us in pairs], exclusive=exclusive,
                                      families=families))
    assert list(frame.index) == list(entity.index)
    assert list(frame.columns[:3]) == ["customer_id", "cutoff", "label"]
    assert frame[["customer_id", "cutoff", "label"]].equals(entity)
    names = [k for k in rows[0] if k not in KEYS]
    assert list(frame.columns[3:]) == names
    for i, row in enumerate(rows):
        bad = {n: (frame[n].iloc[i], row[n]) for n in names if not _same(frame[n].iloc[i], row[n])}
        assert not bad, (pairs[i], exclusive, bad)


def _store_with_history(n=60, shop=""):
    store = CustomerActivityFeatures(shop_id=shop)
    synthetic.populate(store, n, seed=3)
    store.flush()
    return store


def test_features_frame_columns_are_typed_as_the_catalog_says():
    with _store_with_history() as store:
        entity = pd.DataFrame({"customer_id": ["C0000000", "C0000001", None],
                               "cutoff": ["2025-12-01", "2025-12-01T00:00:00Z", "2025-12-01"]})
        frame = store.features_frame(entity)
        types = {f.name: f.type for f in catalog.features(store.registry)}
        for column in frame.columns[2:]:
            feature = column if column in types else column.rsplit("_", 1)[0]
            assert str(frame[column].dtype) == DTYPES[types[feature]], column
        assert frame.iloc[2, 2:].isna().all()  # a missing id: every feature missing
        assert frame["purchase_count"].iloc[:2].notna().all()


def test_features_frame_keeps_order_index_and_duplicates_and_checks_its_input():
    with _store_with_history() as store:
        ids = ["C0000005", "C0000001", "C0000005", "nobody", "C0000001"]
        entity = pd.DataFrame({"cid": ids, "t": pd.Timestamp("2025-11-01", tz="UTC"), "y": [1, 0, 1, 0, 0]},
                              index=[9, 3, 7, 1, 8])
        frame = store.features_frame(entity, customer_col="cid", time_col="t", families=["purchase_features"])
        assert list(frame.index) == [9, 3, 7, 1, 8] and list(frame["cid"]) == ids
        assert frame.loc[9, "total_purchase_value"] == frame.loc[7, "total_purchase_value"]
        expected = store.get_all_features("C0000001", as_of="2025-11-01T00:00:00Z")["total_purchase_value"]
        assert frame.loc[3, "total_purchase_value"] == pytest.approx(expected)
        with pytest.raises(ValueError, match="no column 'customer_id'"):
            store.features_frame(entity)
        with pytest.raises(ValueError, match="already has feature column"):
            store.features_frame(entity.rename(columns={"y": "purchase_count"}), customer_col="cid", time_col="t")
        with pytest.raises(ValueError, match="pair 1: "):
            store.features_frame(pd.DataFrame({"customer_id": ["1", True], "cutoff": "2025-11-01"}))
        with pytest.raises(ValueError, match="pair 1: .*not an ISO-8601"):
            store.features_frame(pd.DataFrame({"customer_id": ["1", "2"], "cutoff": ["2025-11-01", "soon"]}))
        for missing in (pd.NaT, None, math.nan):
            with pytest.raises(ValueError, match="pair 1: the cutoff is missing"):
                store.features_frame(pd.DataFrame({"customer_id": ["1", "2"], "cutoff": ["2025-11-01", missing]}))
        with pytest.raises(TypeError, match="DataFrame"):
            store.features_frame([("1", "2025-11-01")])
        empty = store.features_frame(entity.iloc[:0], customer_col="cid", time_col="t")
        assert len(empty) == 0 and len(empty.columns) > 100


def _table_rows(store):
    cursor = store.conn.execute("SELECT * FROM customer_features WHERE shop_id = ? ORDER BY customer_id",
                                [store.shop_id])
    names = [d[0] for d in cursor.description]
    return names, [dict(zip(names, r)) for r in cursor]


def test_to_pandas_and_to_arrow_are_the_materialised_table():
    with _store_with_history(shop="s1") as store:
        store.materialize(as_of="2025-12-01T00:00:00Z")
        names, rows = _table_rows(store)
        frame = store.to_pandas()
        table = store.to_arrow()
    assert list(frame.columns) == names and len(frame) == len(rows) == table.num_rows
    types = {f.name: f.type for f in catalog.features()}
    for field in table.schema:
        feature = field.name if field.name in types else field.name.rsplit("_", 1)[0]
        kind = types.get(feature, "integer" if field.name == "as_of_us" else "text")
        assert field.type == ARROW[kind], field.name
    for i, row in enumerate(rows):
        bad = {n: (frame[n].iloc[i], row[n]) for n in names if not _same(frame[n].iloc[i], row[n])}
        assert not bad
    booleans = {f.name for f in table.schema if f.type == pa.bool_()}
    assert table.to_pylist() == [{k: (bool(v) if k in booleans and v is not None else v) for k, v in row.items()}
                                 for row in rows]


def test_to_pandas_without_a_snapshot_computes_the_rows_at_as_of():
    with _store_with_history() as store:
        frame = store.to_pandas(as_of="2025-10-01T00:00:00Z")
        store.materialize(as_of="2025-10-01T00:00:00Z")
        assert frame.equals(store.to_pandas())


def test_parquet_export_round_trips_equal_to_the_ndjson_and_csv_exports(tmp_path):
    with _store_with_history() as store:
        for as_of in ("2025-12-01T00:00:00Z", None):  # computed (no snapshot), then materialised
            if as_of is None:
                store.materialize(as_of="2025-12-01T00:00:00Z")
            parquet = store.export(tmp_path / "f.parquet", format="parquet", as_of=as_of)
            ndjson = store.export(tmp_path / "f.ndjson", format="ndjson", as_of=as_of)
            store.export(tmp_path / "f.csv", format="csv", as_of=as_of)
            assert parquet["rows"] == ndjson["rows"] > 0 and parquet["columns"] == ndjson["columns"]
            assert parquet["source"] == ndjson["source"] == ("materialized" if as_of is None else "computed")
            lines = [json.loads(line) for line in (tmp_path / "f.ndjson").read_text().splitlines()]
            assert pq.read_table(tmp_path / "f.parquet").to_pylist() == lines  # True == 1: booleans
            with open(tmp_path / "f.csv", newline="", encoding="utf-8") as f:
                from_csv = list(csv.reader(f))
            table = pq.read_table(tmp_path / "f.parquet")
            assert from_csv[0] == table.column_names
            assert from_csv[1:] == [[_csv_cell(v) for v in row.values()] for row in table.to_pylist()]


def _csv_cell(value):
    """How the csv module writes an SQLite value (a boolean is its 0/1 integer)."""
    if value is None:
        return ""
    return str(int(value)) if isinstance(value, bool) else str(value)


def test_rfm_frames_are_the_iterators_indexed_by_customer_id():
    with _store_with_history() as store:
        summary = store.rfm_summary_frame("2025-12-31")
        rows = list(store.rfm_summary("2025-12-31"))
        assert summary.index.name == "customer_id" and list(summary.columns) == list(rows[0]._fields[1:])
        assert list(summary.index) == [r.customer_id for r in rows]
        assert all(summary.loc[r.customer_id].tolist() == list(r[1:]) for r in rows)
        assert all(str(t) == "float64" for t in summary.dtypes)
        holdout = store.calibration_and_holdout_frame("2025-09-30", "2025-12-31")
        rows = list(store.calibration_and_holdout("2025-09-30", "2025-12-31"))
        assert list(holdout.index) == [r.customer_id for r in rows]
        assert all(holdout.loc[r.customer_id].tolist() == pytest.approx(list(r[1:])) for r in rows)


@pytest.fixture
def no_pandas(monkeypatch):
    """pandas and pyarrow absent: importing them raises ImportError (None in sys.modules)."""
    for name in ("pandas", "pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, name, None)


def test_without_the_extra_a_clear_error_names_it(no_pandas, tmp_path):
    with CustomerActivityFeatures() as store:
        store.add_purchase("c1", 10.0, "2025-01-01T00:00:00Z")
        calls = [lambda: store.features_frame(object()), store.to_pandas, store.to_arrow, store.rfm_summary_frame,
                 lambda: store.calibration_and_holdout_frame("2025-01-01"),
                 lambda: store.export(tmp_path / "f.parquet", format="parquet")]
        for call in calls:
            with pytest.raises(MissingExtraError,
                               match=r"\[pandas\].*pip install 'customer-activity-features\[pandas\]'"):
                call()
        assert not (tmp_path / "f.parquet").exists()
        assert isinstance(MissingExtraError("x", "pandas"), ImportError)
        store.export(tmp_path / "f.csv")  # the other formats need nothing


def test_caf_export_parquet_and_its_one_line_error_without_the_extra(tmp_path, monkeypatch):
    from test_cli import assert_error, ok, run

    db = tmp_path / "shop.db"
    with CustomerActivityFeatures(db) as store:
        synthetic.populate(store, 20, seed=1)
    result = ok(run(["export", str(tmp_path / "f.parquet")], db=db))
    assert "(parquet)" in result.output
    assert pq.read_table(tmp_path / "f.parquet").num_rows == 20
    for name in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, name, None)
    assert_error(run(["export", "features", str(tmp_path / "g.out"), "--format", "parquet"], db=db), 1,
                 "customer-activity-features[pandas]")
    assert not list(tmp_path.glob("g.out*"))
