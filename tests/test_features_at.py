"""Point-in-time rows: features_at(pairs), each pair with its own cutoff, every column of
customer_features (docs/feature_store.md "Point-in-time rows")."""

import math
import warnings
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import oracle_behavior as ob
import oracle_feature_store as ofs
from customer_activity_features import CustomerActivityFeatures
from store import features as store_features
from store import timeutil

DAY = timeutil.US_PER_DAY
KNOWN = ob.CUSTOMERS + ofs.CUSTOMERS
KEYS = ("shop_id", "customer_id", "as_of", "as_of_us")
# window edges of the families: the materialized windows, the 30/90-day rules, the 60/61-day
# recency rules, the 30-day 'new' segment, the 90/180-day loyalty halves, a year
EDGE_DAYS = (0, 1, 7, 30, 60, 61, 90, 180, 365)
WINDOWS = (None, (1, 30), (7,))
FAMILIES = (None, None, ("behavior_segments",), ("purchase_features", "behavior_family", "sequence_features"))


def _load(store, seed_history, behavior_history):
    ofs.load(store, seed_history)
    ob.load(store, behavior_history)
    store.flush()


def _event_times(seed_history, behavior_history):
    times = {timeutil.to_us(next(v for k, v in rec.items() if k.endswith("_date"))) for _, rec in seed_history}
    for kind, events in behavior_history.items():
        if isinstance(events, list):
            times.update(e["time"] for e in events)
        else:
            times.update(events.values())
    return sorted(times) or [ob.AS_OF]


@st.composite
def cases(draw, max_events=6, max_pairs=6):
    """(seed history, behaviour history, pairs, exclusive, windows, families, timezone, shop):
    cutoffs at an event's time (a tie), one microsecond either side of it, and at its window
    edges."""
    seed_history = draw(ofs.events(max_size=2 * max_events))
    behavior_history = draw(ob.histories(max_events=max_events))
    times = _event_times(seed_history, behavior_history) + [ob.AS_OF, ofs.AS_OF_US]
    cutoff = st.builds(lambda t, edge, d: t + edge * DAY + d, st.sampled_from(times), st.sampled_from(EDGE_DAYS),
                       st.sampled_from((0, 0, 1, -1)))
    cutoffs = draw(st.lists(cutoff, min_size=1, max_size=3, unique=True))  # few distinct: pairs share them
    customers = st.sampled_from(KNOWN + ("nobody", 17850.0))
    pairs = draw(st.lists(st.tuples(customers, st.sampled_from(cutoffs)), min_size=1, max_size=max_pairs))
    return (seed_history, behavior_history, pairs, draw(st.booleans()), draw(st.sampled_from(WINDOWS)),
            draw(st.sampled_from(FAMILIES)), draw(st.sampled_from(("UTC", "America/New_York"))),
            draw(st.sampled_from(("", "s1"))))


def _normalized(cid):
    return "17850" if cid == 17850.0 else cid  # ids are text: the float 17850.0 is "17850"


def _same(got, expected):
    if isinstance(expected, float) and isinstance(got, float):
        if math.isnan(expected):
            return math.isnan(got)
        return abs(got - expected) <= 1e-9 * max(1.0, abs(expected))
    return type(got) is type(expected) and got == expected


def _check_against_materialize(case):
    seed_history, behavior_history, pairs, exclusive, windows, families, tz, shop = case
    kwargs = {"families": families}
    if windows is not None:
        kwargs["windows"] = windows
    with CustomerActivityFeatures(timezone=tz, shop_id=shop) as store:
        _load(store, seed_history, behavior_history)
        pairs = [(cid, timeutil.from_us(us)) for cid, us in pairs]
        rows = list(store.features_at(pairs, exclusive=exclusive, **kwargs))
        assert len(rows) == len(pairs)
        # a customer the shop does not know: the row materialize writes for a customer known
        # only by a metadata record (no event, no created_at; it changes no other row)
        known = {r[0] for r in store.conn.execute("SELECT customer_id FROM all_customers")}
        for cid in {_normalized(cid) for cid, _ in pairs} - known:
            store.set_customer_metadata(cid, {})
        expected = {}
        offset = 1 if exclusive else 0
        for at in sorted({timeutil.to_us(c) - offset for _, c in pairs}):
            store.materialize(as_of=timeutil.from_us(at), **kwargs)
            cursor = store.conn.execute("SELECT * FROM customer_features")
            names = [d[0] for d in cursor.description]
            for values in cursor:
                row = dict(zip(names, values))
                expected[row["customer_id"], at] = row
        for (cid, cutoff), row in zip(pairs, rows):
            cutoff_us = timeutil.to_us(cutoff)
            normalized = _normalized(cid)
            want = expected[normalized, cutoff_us - offset]
            assert list(row) == list(want), "the columns of customer_features, in its order"
            assert row["shop_id"] == store.shop_id and row["customer_id"] == normalized
            # as_of is the pair's cutoff, also with exclusive (then the features are those of cutoff - 1 us)
            assert row["as_of_us"] == cutoff_us and row["as_of"] == timeutil.iso(cutoff_us)
            bad = {k: (row[k], want[k]) for k in want if k not in KEYS and not _same(row[k], want[k])}
            assert not bad, (cid, timeutil.iso(cutoff_us), exclusive, bad)


@settings(max_examples=30, deadline=None)
@given(case=cases())
def test_each_row_equals_the_row_materialize_writes_at_its_cutoff(case):
    """Every column, every window, behaviour, segments and sequence statistics; with
    exclusive=True every feature equals materialize(as_of=cutoff - 1 microsecond)."""
    _check_against_materialize(case)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(case=cases(max_events=12, max_pairs=10))
def test_each_row_equals_the_row_materialize_writes_at_its_cutoff_slow(case):
    _check_against_materialize(case)


def test_exclusive_leaves_out_events_at_the_cutoff():
    cutoff = datetime(2025, 3, 1, tzinfo=timezone.utc)
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 10.0, "2025-02-28T00:00:00Z")  # exactly one day before the cutoff
        store.add_purchase("a", 5.0, cutoff)                     # exactly at the cutoff
        inclusive, exclusive = (next(store.features_at([("a", cutoff)], exclusive=e)) for e in (False, True))
        assert inclusive["purchase_count"] == 2 and inclusive["total_purchase_value"] == 15.0
        assert inclusive["purchase_recency_days"] == 0
        assert exclusive["purchase_count"] == 1 and exclusive["total_purchase_value"] == 10.0
        # recency measured to cutoff - 1 us: 1 day - 1 us is 0 whole days
        assert exclusive["purchase_recency_days"] == 0
        assert exclusive["last_purchase_us"] == timeutil.to_us("2025-02-28T00:00:00Z")
        for row in (inclusive, exclusive):
            assert row["as_of"] == "2025-03-01T00:00:00Z" and row["as_of_us"] == timeutil.to_us(cutoff)


def test_pairs_keep_their_order_duplicates_and_falsy_ids():
    with CustomerActivityFeatures(shop_id="s1") as store:
        store.add_purchase("a", 10.0, "2025-01-01T00:00:00Z")
        store.add_purchase("a", 30.0, "2025-02-01T00:00:00Z")
        jan = datetime(2025, 1, 15, tzinfo=timezone.utc)
        feb = datetime(2025, 2, 15, tzinfo=timezone.utc)
        rows = list(store.features_at([("a", feb), ("a", jan), ("", jan), (None, feb), ("a", feb), (17850.0, jan)]))
        assert [r["customer_id"] for r in rows] == ["a", "a", None, None, "a", "17850"]
        assert [r["total_purchase_value"] for r in rows] == [40.0, 10.0, None, None, 40.0, 0.0]
        assert [r["as_of"][:10] for r in rows] == ["2025-02-15", "2025-01-15", "2025-01-15", "2025-02-15",
                                                   "2025-02-15", "2025-01-15"]
        assert rows[0] == rows[4]
        assert {r["shop_id"] for r in rows} == {"s1"}
        # a falsy id: every column present, the features None
        assert list(rows[2]) == list(rows[0])
        assert all(v is None for k, v in rows[2].items() if k not in ("shop_id", "as_of", "as_of_us"))
        # an unknown customer: the values of a customer without events
        assert rows[5]["purchase_count"] == 0 and rows[5]["customer_segment"] == "no_purchases"
        # ISO strings and dates are accepted as cutoffs, like as_of
        (row,) = store.features_at([("a", "2025-01-15T00:00:00Z")])
        assert row["total_purchase_value"] == 10.0 and row["as_of_us"] == timeutil.to_us(jan)


def test_features_at_reads_pairs_lazily_a_chunk_at_a_time(monkeypatch):
    from store import point_in_time
    monkeypatch.setattr(store_features, "STREAM_CHUNK", 3)
    monkeypatch.setattr(point_in_time, "READ_BATCH", 2)  # rows read back two at a time
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 10.0, "2025-01-01T00:00:00Z")
        store.add_purchase("b", 20.0, "2025-01-02T00:00:00Z")
        read = []

        def pairs():
            for i in range(10):
                read.append(i)
                yield ("" if i % 4 == 3 else "a" if i % 2 else "b", f"2025-01-0{1 + i % 3}T00:00:00Z")

        rows = store.features_at(pairs())
        first = next(rows)
        assert len(read) == 3  # one chunk read, not the whole input
        rest = list(rows)
        assert len(read) == 10 and len(rest) == 9
        assert [r["customer_id"] for r in [first] + rest] == ["b", "a", "b", None, "b", "a", "b", None, "b", "a"]
        monkeypatch.setattr(store_features, "STREAM_CHUNK", 10_000)
        monkeypatch.setattr(point_in_time, "READ_BATCH", 1_000)
        assert [first] + rest == list(store.features_at(pairs()))

        def bad():
            yield from [("a", "2025-01-02T00:00:00Z")] * 4
            yield ("a", "not a date")

        monkeypatch.setattr(store_features, "STREAM_CHUNK", 3)
        got = []
        with pytest.raises(ValueError, match="pair 4"):
            for row in store.features_at(bad()):
                got.append(row)
        assert len(got) == 3  # the rows of the chunks before the invalid pair
        assert list(store.features_at([])) == []


def test_materialize_while_iterating_features_at(monkeypatch):
    """Between two rows the connection holds no table materialize, refresh or export use."""
    monkeypatch.setattr(store_features, "STREAM_CHUNK", 2)
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 10.0, "2025-01-01T00:00:00Z")
        pairs = [("a", "2025-01-02T00:00:00Z"), ("b", "2025-01-03T00:00:00Z")] * 3
        expected = list(store.features_at(pairs))
        got = []
        for row in store.features_at(pairs):
            got.append(row)
            store.materialize(as_of="2025-01-05T00:00:00Z")
            store.refresh(as_of="2025-01-06T00:00:00Z")
        assert got == expected


def test_read_only_store(tmp_path):
    path = tmp_path / "s.db"
    with CustomerActivityFeatures(path) as store:
        store.add_purchase("a", 10.0, "2025-01-01T00:00:00Z")
        expected = list(store.features_at([("a", "2025-01-02T00:00:00Z")]))
    with CustomerActivityFeatures(path, read_only=True) as store:
        assert list(store.features_at([("a", "2025-01-02T00:00:00Z")])) == expected


def test_windows_and_families_choose_the_columns_as_in_materialize():
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 10.0, "2025-01-01T00:00:00Z")
        (row,) = store.features_at([("a", "2025-01-02T00:00:00Z")], windows=[14],
                                   families=["purchase_features"])
        store.materialize(as_of="2025-01-02T00:00:00Z", windows=[14], families=["purchase_features"])
        cursor = store.conn.execute("SELECT * FROM customer_features")
        assert list(row) == [d[0] for d in cursor.description]
        assert "purchase_count_14d" in row and "purchase_count_30d" not in row
        with pytest.raises(ValueError):
            store.features_at([], windows=[0])
        with pytest.raises(Exception, match="unknown feature family"):
            store.features_at([], families=["nope"])
        with pytest.raises(TypeError):
            store.features_at([], exclusive="yes")


def test_days_gives_the_former_shape_with_a_deprecation_warning():
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 10.0, "2025-01-01T00:00:00Z")
        jan = datetime(2025, 1, 15, tzinfo=timezone.utc)
        with pytest.warns(DeprecationWarning, match="features_at"):
            rows = list(store.features_at([("a", jan), ("", jan)], days=30))
        assert rows == [("a", jan, store.get_all_features("a", 30, as_of=jan)), (None, jan, {})]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert list(store.features_at([("a", jan)], days=None))[0][2] == store.get_all_features("a", as_of=jan)
            with pytest.raises(TypeError):
                store.features_at([("a", jan)], days=30, exclusive=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the current shape warns about nothing
            list(store.features_at([("a", jan)]))


@pytest.mark.parametrize("bad", [[("a",)], [("a", "not a date")], ["abc"], [5], [("a", 5)]])
def test_bad_pairs_raise_value_error(bad):
    with CustomerActivityFeatures() as store:
        with pytest.raises(ValueError, match="pair 0"):
            list(store.features_at(bad))


@settings(max_examples=10, deadline=None)
@given(history=ofs.events(), later=ofs.events(min_size=1),
       pairs=st.lists(st.tuples(st.sampled_from(ofs.CUSTOMERS + ("nobody",)),
                                ofs.offsets().map(lambda off: timeutil.from_us(ofs.AS_OF_US - off))), max_size=6),
       exclusive=st.booleans())
def test_no_event_after_a_cutoff_influences_a_row(history, later, pairs, exclusive):
    """Events strictly after every cutoff (shifted into the future) leave every row unchanged."""
    with CustomerActivityFeatures() as store:
        ofs.load(store, history)
        got = list(store.features_at(pairs, exclusive=exclusive))
        if not pairs:
            return
        latest = max(timeutil.to_us(c) for _, c in pairs)
        shift = latest + DAY - min(timeutil.to_us(next(v for k, v in r.items() if k.endswith("_date")))
                                   for _, r in later)
        future = []
        for kind, rec in later:
            rec = dict(rec)
            key = next(k for k in rec if k.endswith("_date"))
            rec[key] = timeutil.iso(timeutil.to_us(rec[key]) + shift)
            for id_key in ("order_id", "session_id", "cart_id", "ticket_id"):
                if id_key in rec:
                    rec[id_key] = "future-" + rec[id_key]
            future.append((kind, rec))
        ofs.load(store, future)
        assert list(store.features_at(pairs, exclusive=exclusive)) == got


def test_many_distinct_cutoffs_are_ranked_in_bounded_stages(monkeypatch):
    """With more distinct cutoffs than POPULATION_ROWS / purchasing customers, a chunk's
    population-relative families are computed in stages of fewer cutoffs: the same rows."""
    from store import point_in_time
    with CustomerActivityFeatures() as store:
        for i, cid in enumerate("abcdef"):
            for k in range(i + 1):
                store.add_purchase(cid, 10.0 * (k + 1), timeutil.from_us(ob.AS_OF - (i * 7 + k * 30) * DAY),
                                   order_id=f"{cid}{k}")
        pairs = [(cid, timeutil.from_us(ob.AS_OF - d * DAY)) for d in (0, 3, 10, 40, 100, 0) for cid in "fabx"]
        whole = list(store.features_at(pairs, exclusive=True))
        monkeypatch.setattr(point_in_time, "POPULATION_ROWS", 12)  # 6 purchasing customers: 2 cutoffs a stage
        monkeypatch.setattr(point_in_time, "READ_BATCH", 5)
        stages = []
        fill = point_in_time.fill_targets
        monkeypatch.setattr(point_in_time, "fill_targets", lambda *a: stages.append(1) or fill(*a))
        staged = list(store.features_at(pairs, exclusive=True))
        assert len(stages) == 3  # 5 distinct cutoffs, 2 a stage
        assert staged == whole
        assert len({r["recency_score"] for r in whole}) > 1


MEMORY_CHILD = r"""
import json, resource, tracemalloc
from customer_activity_features import CustomerActivityFeatures
from store import features
features.STREAM_CHUNK = 1000
CUTOFFS = ("2025-06-15T00:00:00Z", "2025-07-01T00:00:00Z")
FAMILIES = ("purchase_features", "behavior_segments")

def pairs(n):  # a generator: known and unknown customers, two cutoffs
    for i in range(n):
        yield (f"k{i % 50}" if i % 2 else f"u{i}"), CUTOFFS[i % 2]

out = {}
with CustomerActivityFeatures() as store:
    store.add_purchases({"customer_id": f"k{i}", "order_value": 1.0 + i, "purchase_date": "2025-06-01T00:00:00Z",
                         "order_id": f"o{i}"} for i in range(50))
    store.flush()
    sum(1 for _ in store.features_at(pairs(3000), families=FAMILIES))  # warm up
    for n in (10_000, 100_000):  # peak RSS: Python and SQLite
        rows = sum(1 for _ in store.features_at(pairs(n), families=FAMILIES))
        out[f"rss_{n}"] = [rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]
    for n in (2_000, 20_000):  # peak of Python allocations
        tracemalloc.start()
        rows = sum(1 for _ in store.features_at(pairs(n), families=FAMILIES))
        out[f"py_{n}"] = [rows, tracemalloc.get_traced_memory()[1]]
        tracemalloc.stop()
print(json.dumps(out))
"""


def test_features_at_memory_does_not_grow_with_the_number_of_pairs():
    """In a fresh process (chunks of 1,000 pairs): peak RSS after 100,000 pairs is within 8 MB
    of the peak after 10,000, and the Python peak for 20,000 pairs within 256 KB of the one
    for 2,000."""
    import json
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", MEMORY_CHILD], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [out[k][0] for k in ("rss_10000", "rss_100000", "py_2000", "py_20000")] == [10_000, 100_000, 2_000, 20_000]
    rss_growth_kb = out["rss_100000"][1] - out["rss_10000"][1]
    py_growth = out["py_20000"][1] - out["py_2000"][1]
    print(f"features_at memory: RSS +{rss_growth_kb} KB from 10k to 100k pairs; "
          f"Python peak {out['py_2000'][1]} B (2k pairs), {out['py_20000'][1]} B (20k pairs)")
    assert rss_growth_kb < 8 * 1024
    assert py_growth < 256 * 1024
