"""Set-based cohort reads: get_cohort_features, get_cohort_summary, iter_features."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from customer_activity_features import SUMMARY_FEATURES, CustomerActivityFeatures
from oracle_feature_store import AS_OF, CUSTOMERS, approx_equal, events, load

cohorts = st.lists(st.sampled_from(CUSTOMERS + ("unknown", "", None)), max_size=8)
days_values = st.sampled_from((None, 0, -3, 1, 7, 30, 90, 365, 2.5))


@settings(max_examples=15, deadline=None)
@given(history=events(), cohort=cohorts, days=days_values)
def test_cohort_features_equal_per_customer_getters(history, cohort, days):
    with CustomerActivityFeatures() as store:
        load(store, history)
        got = store.get_cohort_features(cohort, days, as_of=AS_OF)
        expected = {c: store.get_all_features(c, days, as_of=AS_OF) for c in cohort if c}
        assert list(got) == list(dict.fromkeys(c for c in cohort if c))
        assert got == expected
        # iter_features over the same cohort: same rows, in first-seen order
        assert list(store.iter_features(cohort, days=days, as_of=AS_OF)) == list(expected.items())


@settings(max_examples=15, deadline=None)
@given(history=events(), cohort=cohorts, days=days_values)
def test_cohort_summary_is_the_mean_of_the_getters(history, cohort, days):
    with CustomerActivityFeatures() as store:
        load(store, history)
        got = store.get_cohort_summary(cohort, days, as_of=AS_OF)
        ids = list(dict.fromkeys(c for c in cohort if c))
        assert got["size"] == len(ids)
        expected = {}
        for key in SUMMARY_FEATURES:
            values = [store.get_all_features(c, days, as_of=AS_OF)[key] for c in ids]
            values = [v for v in values if v is not None]
            if values:
                expected[key] = sum(values) / len(values)
        assert got["aggregates"].keys() == expected.keys()
        assert approx_equal(got["aggregates"], expected)
        assert all(isinstance(v, float) for v in got["aggregates"].values())


@settings(max_examples=12, deadline=None)
@given(history=events(), days=days_values)
def test_iter_features_over_everyone(history, days):
    with CustomerActivityFeatures(shop_id="s1") as store, CustomerActivityFeatures(store.conn, shop_id="s2") as other:
        load(store, history)
        other.add_purchase("only-in-s2", 10.0, "2025-01-01T00:00:00Z")
        other.flush()
        store.set_customer_metadata("meta-only", {"tier": "gold"})
        got = list(store.iter_features(days=days, as_of=AS_OF))
        everyone = sorted({rec["customer_id"] for _, rec in history} | {"meta-only"})
        assert [c for c, _ in got] == everyone  # every customer of this shop, none of the other
        for cid, features in got:
            assert features == store.get_all_features(cid, days, as_of=AS_OF)


def test_empty_and_falsy_cohorts():
    with CustomerActivityFeatures() as store:
        assert store.get_cohort_features([]) == {}
        assert store.get_cohort_features(["", None]) == {}
        assert store.get_cohort_summary([]) == {"size": 0, "aggregates": {}}
        assert store.get_cohort_summary(["x"], as_of=AS_OF)["aggregates"]["purchase_frequency"] == 0.0
        assert "average_response_time_hours" not in store.get_cohort_summary(["x"], as_of=AS_OF)["aggregates"]
        assert list(store.iter_features([])) == []
        assert list(store.iter_features()) == []
        assert store.get_cohort_features([17850.0], as_of=AS_OF) == {
            17850.0: store.get_all_features("17850", as_of=AS_OF)}


def _count_statements(store, call):
    statements = []
    store.conn.set_trace_callback(statements.append)
    try:
        call()
    finally:
        store.conn.set_trace_callback(None)
    return len(statements)


@pytest.fixture(scope="module")
def big_store():
    store = CustomerActivityFeatures()
    store.add_purchases({"customer_id": f"C{i:05d}", "order_value": 1.0 + i % 7,
                         "purchase_date": "2025-05-20T00:00:00Z", "order_id": f"o{i}"} for i in range(5000))
    store.add_sessions({"customer_id": f"C{i:05d}", "duration_seconds": 60.0, "device_type": "mobile",
                        "session_date": "2025-05-21T00:00:00Z", "session_id": f"s{i}"} for i in range(0, 5000, 3))
    store.flush()
    yield store
    store.close()


@pytest.mark.parametrize("call", [
    lambda s, ids: s.get_cohort_features(ids, as_of=AS_OF),
    lambda s, ids: s.get_cohort_features(ids, 30, as_of=AS_OF),
    lambda s, ids: s.get_cohort_summary(ids, as_of=AS_OF),
    lambda s, ids: list(s.iter_features(ids, as_of=AS_OF)),
], ids=["cohort_features", "cohort_features_days", "cohort_summary", "iter_features"])
def test_statement_count_does_not_depend_on_cohort_size(big_store, call):
    small = [f"C{i:05d}" for i in range(5)]
    large = [f"C{i:05d}" for i in range(5000)]
    call(big_store, small)  # the first cohort read of a connection also creates its temp table
    n_small = _count_statements(big_store, lambda: call(big_store, small))
    n_large = _count_statements(big_store, lambda: call(big_store, large))
    assert n_small == n_large
    assert n_large < 20


def test_features_at_statement_count_does_not_depend_on_the_number_of_pairs(big_store):
    """features_at: a constant number of statements per chunk of pairs (the targets, one
    statement per staged family, the copy of the rows), plus one bounded read per
    store.point_in_time.READ_BATCH rows (no statement stays active while a row is yielded)."""
    from store.point_in_time import READ_BATCH

    def call(ids):
        return lambda: list(big_store.features_at((c, AS_OF) for c in ids))

    small = [f"C{i:05d}" for i in range(5)]
    large = [f"C{i:05d}" for i in range(5000)]
    call(small)()
    n_small = _count_statements(big_store, call(small))
    n_large = _count_statements(big_store, call(large))
    assert n_large - n_small == -(-len(large) // READ_BATCH) - 1


def test_statement_count_everyone(big_store):
    n = _count_statements(big_store, lambda: sum(1 for _ in big_store.iter_features(as_of=AS_OF)))
    assert n < 20
    with CustomerActivityFeatures() as small:
        small.add_purchase("a", 1.0, "2025-01-01T00:00:00Z")
        small.flush()
        list(small.iter_features(as_of=AS_OF))  # the first cohort read also creates its temp table
        assert _count_statements(small, lambda: list(small.iter_features(as_of=AS_OF))) == n


# -- the one-as_of fast path of get_cohort_features (issue 6, lookups) ---------------------------
metadata_values = st.one_of(st.none(), st.dictionaries(st.sampled_from(("tier", "país", "n")),
                                                       st.one_of(st.integers(), st.text(max_size=5)), max_size=2))


@settings(max_examples=15, deadline=None)
@given(history=events(), cohort=cohorts, days=days_values,
       metadata=st.dictionaries(st.sampled_from(CUSTOMERS), metadata_values, max_size=3))
def test_one_as_of_path_equals_the_general_path(history, cohort, days, metadata):
    """get_cohort_features fills its targets from one JSON array of ids and binds its one as_of
    (t.as_of_us -> :as_of_us); the general path (per-target as_of, triples) gives the same rows."""
    from store import timeutil
    with CustomerActivityFeatures() as store:
        load(store, history)
        for cid, value in metadata.items():
            if value is not None:
                store.set_customer_metadata(cid, value)
        store.flush()
        as_of_us = timeutil.to_us(AS_OF)
        targets, _ = store._cohort_targets(cohort, as_of_us)
        general = list(store._reader.iter_cohort(targets, days=days))
        fast = list(store._reader.iter_cohort((), days=days, as_of_us=as_of_us,
                                              ids=[cid for _, cid, _ in targets]))
        bound = list(store._reader.iter_cohort(targets, days=days, as_of_us=as_of_us))
        assert fast == general == bound
        assert [tid for tid, _ in fast] == list(range(len(targets)))
        got = store.get_cohort_features(cohort, days, as_of=AS_OF)
        assert got == {c: store.get_all_features(c, days, as_of=AS_OF) for c in cohort if c}


def test_ids_fill_in_chunks(monkeypatch):
    from store import features
    monkeypatch.setattr(features, "TARGET_CHUNK", 3)  # 8 ids: three INSERT statements
    with CustomerActivityFeatures() as store:
        ids = [f"x{i}" for i in range(8)]
        for i, cid in enumerate(ids):
            store.add_purchase(cid, 1.0 + i, "2025-01-01T00:00:00Z")
        store.set_customer_metadata("x5", {"tier": "gold"})
        store.flush()
        got = store.get_cohort_features(ids + ["nobody"], as_of=AS_OF)
        assert list(got) == ids + ["nobody"]
        assert got == {c: store.get_all_features(c, as_of=AS_OF) for c in ids + ["nobody"]}
        assert got["x5"]["metadata"] == {"tier": "gold"}


def test_ids_fill_needs_the_as_of():
    with CustomerActivityFeatures() as store:
        with pytest.raises(ValueError, match="as_of_us"):
            list(store._reader.iter_cohort((), ids=["a"]))


def test_cohort_statements_read_the_target_table_in_place():
    """The target CTE is NOT MATERIALIZED (no copy, target_id order kept) and, with one as_of,
    the target relation gives the bound :as_of_us as every target's as_of (the edges are
    computed once from it) while the family queries run as written."""
    from store import features
    from store.resources import query
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 1.0, "2025-01-01T00:00:00Z")
        store.flush()
        store.get_cohort_features(["a"], as_of=AS_OF)  # creates the connection's temp table
        table = store._reader._acquire_table()
        try:
            params = features.parameters("", frequency_days=features.DEFAULT_FREQUENCY_DAYS)
            params["as_of_us"] = 0
            for main, ctes in ((features.GETTER_QUERY, features.GETTER_CTES), ("session_devices", ())):
                sql = features.compose_cohort(main, ctes, table, True)
                assert "NOT MATERIALIZED" in sql and ":as_of_us AS as_of_us" in sql
                assert query(main) in sql  # the query as written, not rewritten
                plan = [r[3] for r in store.conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
                assert "MATERIALIZE target" not in plan
            assert ":as_of_us AS as_of_us" not in features.compose_cohort(features.GETTER_QUERY, features.GETTER_CTES,
                                                                          table)
        finally:
            store._reader._release_table(table)


# -- iter_features(ids) streams with bounded memory (issue 11, item 12) -------------------------
@settings(max_examples=25, deadline=None)
@given(history=events(), cohort=st.lists(st.sampled_from(CUSTOMERS + ("unknown", "", None)), max_size=14),
       chunk=st.integers(1, 4), days=days_values)
def test_iter_features_in_chunks_equals_the_cohort(history, cohort, chunk, days):
    """Chunked streaming keeps the contract: first-seen order, falsy ids skipped, an id
    repeated in a later chunk yielded once, with the caller's first spelling."""
    from store import features
    with CustomerActivityFeatures() as store:
        load(store, history)
        expected = store.get_cohort_features(cohort, days, as_of=AS_OF)
        old = features.STREAM_CHUNK
        features.STREAM_CHUNK = chunk
        try:
            assert list(store.iter_features(iter(cohort), days=days, as_of=AS_OF)) == list(expected.items())
        finally:
            features.STREAM_CHUNK = old


def test_iter_features_reads_its_ids_lazily(monkeypatch):
    from store import features
    monkeypatch.setattr(features, "STREAM_CHUNK", 3)
    with CustomerActivityFeatures() as store:
        store.add_purchase("17850", 5.0, "2025-01-01T00:00:00Z")
        store.add_purchase("b", 7.0, "2025-01-02T00:00:00Z")
        store.flush()
        pulled = []

        def ids():
            for cid in ["a", 17850, "b", "a", "c", 17850.0, "17850", "", "d", "b", None, "e"]:
                pulled.append(cid)
                yield cid

        rows = store.iter_features(ids(), as_of=AS_OF)
        assert pulled == []  # nothing read before the first row is asked for
        first = next(rows)
        assert first == ("a", store.get_all_features("a", as_of=AS_OF)) and len(pulled) == 3
        rest = list(rows)
        assert [cid for cid, _ in [first] + rest] == ["a", 17850, "b", "c", "d", "e"]
        assert dict(rest)[17850] == store.get_all_features("17850", as_of=AS_OF)
        assert all(t.startswith("cohort_") for (t,) in store.conn.execute(
            "SELECT name FROM temp.sqlite_master WHERE type = 'table' AND name LIKE 'cohort%'"))
        # the seen table is emptied after the stream and reused by the next one
        tables = sorted(store.conn.execute("SELECT name FROM temp.sqlite_master WHERE name LIKE 'cohort%'"))
        assert list(store.iter_features(ids(), as_of=AS_OF))[0][0] == "a"
        assert sorted(store.conn.execute("SELECT name FROM temp.sqlite_master WHERE name LIKE 'cohort%'")) == tables
        for (name,) in tables:
            if name.endswith("_seen"):
                assert store.conn.execute(f"SELECT COUNT(*) FROM temp.{name}").fetchone()[0] == 0
        with pytest.raises(ValueError, match="customer_id"):
            list(store.iter_features(["a", "x\x00y"], as_of=AS_OF))


MEMORY_CHILD = r"""
import json, resource, sys, tracemalloc
from customer_activity_features import CustomerActivityFeatures
from store import features
features.STREAM_CHUNK = 1000
AS_OF = "2025-07-01T00:00:00Z"

def ids(n):  # a generator: one known id in ten (they repeat), the others unknown and distinct
    for i in range(n):
        yield f"k{i // 10 % 50}" if i % 10 == 0 else f"u{i}"

out = {}
with CustomerActivityFeatures() as store:
    store.add_purchases({"customer_id": f"k{i}", "order_value": 1.0 + i, "purchase_date": "2025-06-01T00:00:00Z",
                         "order_id": f"o{i}"} for i in range(50))
    store.flush()
    list(store.iter_features(ids(3000), as_of=AS_OF))  # warm up: statements, temp tables
    for n in (20_000, 200_000):  # peak RSS: Python and SQLite (the table of seen ids)
        rows = sum(1 for _ in store.iter_features(ids(n), as_of=AS_OF))
        out[f"rss_{n}"] = [rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]
    for n in (2_000, 20_000):  # peak of Python allocations
        tracemalloc.start()
        rows = sum(1 for _ in store.iter_features(ids(n), as_of=AS_OF))
        out[f"py_{n}"] = [rows, tracemalloc.get_traced_memory()[1]]
        tracemalloc.stop()
print(json.dumps(out))
"""


def test_iter_features_memory_does_not_grow_with_the_number_of_ids():
    """In a fresh process: peak RSS after 200,000 ids is within 8 MB of the peak after 20,000,
    and the Python peak for 20,000 ids within 256 KB of the one for 2,000. Before streaming
    the ids were all held (200,000 ids: about +30 MB RSS; 20,000: +4 MB of Python objects)."""
    import json
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", MEMORY_CHILD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [out[k][0] for k in ("rss_20000", "rss_200000", "py_2000", "py_20000")] == [18_050, 180_050, 1_850, 18_050]
    rss_growth_kb = out["rss_200000"][1] - out["rss_20000"][1]
    py_growth = out["py_20000"][1] - out["py_2000"][1]
    print(f"iter_features memory: RSS +{rss_growth_kb} KB from 20k to 200k ids; "
          f"Python peak {out['py_2000'][1]} B (2k ids), {out['py_20000'][1]} B (20k ids)")
    assert rss_growth_kb < 8 * 1024
    assert py_growth < 256 * 1024
