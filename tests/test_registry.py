"""The feature registry read from the family files of sql/ gives the records the store had
before it was read from them (tests/fixtures/catalog_records.json, frozen from the hand-written
Python lists of store/catalog.py and store/behavior.py before they were removed)."""

import json
from pathlib import Path

from customer_activity_features import CustomerActivityFeatures
from store import catalog

FROZEN = json.loads((Path(__file__).parent / "fixtures" / "catalog_records.json").read_text(encoding="utf-8"))


def _family_record(fam):
    record = {k: (list(v) if isinstance(v, tuple) else v) for k, v in fam.__dict__.items()}
    record["refresh_all"] = fam.refresh_all  # the hook's name (store.plan.REFRESH_HOOKS)
    del record["derived"]  # added after the freeze (issue 15 item 1): checked below
    del record["reads_windows"]  # added after the freeze (issue 15, refresh): checked below
    return record


def test_feature_records_equal_the_frozen_records():
    assert [f.as_record() for f in catalog.features()] == FROZEN["features"]


def test_family_records_equal_the_frozen_records():
    by_name = lambda records: sorted(records, key=lambda r: r["query"])  # noqa: E731
    frozen = by_name(json.loads(json.dumps(FROZEN["families"])))
    # deliberate difference: behavior_temporal computes both season features from one query of the
    # season counts (the purchases' local times are computed once)
    (behavior,) = [r for r in frozen if r["query"] == "behavior_family"]
    behavior["requires"].insert(behavior["requires"].index("behavior_purchase"), "behavior_purchase_season_stats")
    # ... and behavior_engagement reads each session's page views from a derived table of its own
    # query, not from a CTE behavior_session_pages (which SQLite materialised and indexed)
    behavior["requires"].remove("behavior_session_pages")
    assert by_name(_family_record(f) for f in catalog.FAMILIES) == frozen
    assert [f.query for f in catalog.FAMILIES if not f.reads_windows] == ["all_features", "behavior_family"]
    assert {f.query: f.derived for f in catalog.FAMILIES if f.derived} == {
        "purchase_features": (("purchase_recency_days", "(as_of_us - last_purchase_us) / 86400000000"),),
        "behavior_segments": (("account_age_days", "CASE WHEN account_created_us <= as_of_us "
                               "THEN (as_of_us - account_created_us) / 86400000000 END"),)}
    # deliberate differences: the families come in catalog order (the order of their records and
    # columns), so primary_device follows session_features; last_purchase_us, the input of the
    # derived purchase_recency_days, is a column of purchase_features (it was the one column of a
    # family purchase_last: a derived column reads its own family's columns)
    assert [f.query for f in catalog.FAMILIES] == [
        "purchase_features", "session_features", "primary_device", "cart_features",
        "support_features", "all_features", "sequence_features", "behavior_family", "behavior_segments"]


def test_catalog_api_and_table_give_the_frozen_records():
    with CustomerActivityFeatures() as store:
        assert store.catalog() == FROZEN["features"]
        rows = store.conn.execute("SELECT name, type, unit, window_rule, null_rule, meaning, query, materialized, "
                                  "added_by, position FROM feature_catalog ORDER BY position").fetchall()
    assert [tuple(r) for r in rows] == [
        (f["name"], f["type"], f["unit"], f["window_rule"], f["null_rule"], f["meaning"], f["query"],
         f["materialize"] or "", f["added_by"], i) for i, f in enumerate(FROZEN["features"])]


# -- the family file format (store/registry.py) -------------------------------------------------
import pytest  # noqa: E402

from store import features as feature_queries, registry  # noqa: E402
from store.errors import FamilyDefinitionError, StoreError  # noqa: E402
from store.resources import resource_dir  # noqa: E402

FAMILY = """-- A family file.

-- family: spend_features
-- order: 500
-- tables: purchases
-- edges days: 30
SELECT
    t.target_id AS target_id,
    -- big_order_count: Purchases above 100 in the window.; integer, count; 0 when none
    COUNT(p.event_time_us) FILTER (WHERE p.order_value > 100
        AND (:window_us IS NULL OR p.event_time_us >= t.as_of_us - :window_us)) AS big_order_count,
    -- last_big_order_us: Time of the last purchase above 100.; integer, microseconds; NULL when none; window: all time
    MAX(p.event_time_us) FILTER (WHERE p.order_value > 100) AS last_big_order_us
FROM target AS t
LEFT JOIN purchases AS p
    ON p.shop_id = :shop_id AND p.customer_id = t.customer_id AND p.event_time_us <= t.as_of_us
GROUP BY t.target_id
"""


def test_a_family_file_gives_its_records():
    (block,) = registry.read(FAMILY, "spend.sql")
    assert block.family == registry.Family("spend_features", ("purchases",), edges_days=(30,))
    big, last = block.features
    assert big == registry.Feature("big_order_count", "integer", "count", registry.WINDOW_RULE, "0 when none",
                                   "Purchases above 100 in the window.", "spend_features", registry.WINDOWED)
    assert (last.materialize, last.window_rule, last.unit) == (registry.FIXED, registry.ALL_TIME_RULE,
                                                                 "microseconds")


def test_adding_a_column_to_a_built_in_family_file_adds_its_record():
    text = (resource_dir("sql") / "purchases.sql").read_text(encoding="utf-8")
    column = ("    -- max_order_value: The largest order value in the window.; real, currency units; NULL when none\n"
              "    MAX(p.order_value) FILTER (WHERE :window_us IS NULL\n"
              "        OR p.event_time_us >= t.as_of_us - :window_us) AS max_order_value,\n")
    text = text.replace("    -- purchase_count_short:", column + "    -- purchase_count_short:", 1)
    (block,) = [b for b in registry.read(text, "purchases.sql") if b.family]
    names = [f.name for f in block.features]
    assert names[names.index("total_purchase_value") + 1] == "max_order_value"
    record = block.features[names.index("max_order_value")]
    assert record.materialize == registry.WINDOWED and record.null_rule == "NULL when none"


@pytest.mark.parametrize("old, new, line, reason", [
    ("-- order: 500\n", "", 3, "no '-- order: N' line"),
    ("-- order: 500\n", "-- order: 500\n-- order: 501\n", 5, "header line 'order' given twice"),
    ("-- order: 500\n", "-- order: soon\n", 4, "order must be a whole number"),
    ("-- tables: purchases\n", "", 3, "no '-- tables:' line"),
    ("-- edges days: 30\n", "-- edges days: a month\n", 6, "edges days must be whole days"),
    ("; integer, count; 0 when none", "; count; 0 when none", 9, "big_order_count: no '; <type>[, <unit>]; ' part"),
    ("; integer, count;", "; integer;", 9, "big_order_count: no unit after the type"),
    ("count; 0 when none\n", "count;\n", 9, "big_order_count: no null rule"),
    ("-- big_order_count: Purchases above 100 in the window.", "-- big_order_count: ", 9,
     "big_order_count: no meaning"),
    ("; integer, count; 0 when none", "; object, count; 0 when none", 9, "big_order_count: an object: line"),
    ("window: all time", "window: frequency", 12, None),
    ("-- tables: purchases\n", "-- tables: purchases\n-- helpers: nothing\n", 6,
     "helper column nothing has no comment"),
    ("-- tables: purchases\n", "-- tables: purchases\n-- sets: big_order_count\n", 6,
     "'sets' is a header line of a -- name: query, not of a family"),
    ("-- tables: purchases\n", "-- tables: purchases\n-- reads windows: never\n", 6,
     "reads windows must be yes or no"),
])
def test_a_malformed_family_file_names_the_file_line_and_reason(old, new, line, reason):
    text = FAMILY.replace(old, new, 1)
    if reason is None:  # 'frequency' in a family without :window_us
        text = text.replace(":window_us IS NULL OR p.event_time_us >= t.as_of_us - :window_us", "1")
        reason = "last_big_order_us: window 'frequency' in a family that does not use :window_us"
    with pytest.raises(FamilyDefinitionError) as caught:
        registry.read(text, "spend.sql")
    assert isinstance(caught.value, StoreError)
    assert str(caught.value).startswith(f"spend.sql, line {line}: "), str(caught.value)
    assert reason in caught.value.reason
    assert (caught.value.source, caught.value.line) == ("spend.sql", line)


def test_every_family_column_comment_names_an_output_column_and_every_output_column_has_one():
    """Each family's commented columns are its output columns (besides target_id and, for a family
    reading other families, their columns passed through)."""
    from customer_activity_features import CustomerActivityFeatures

    commented = {b.name: {f.name for f in b.features if f.type != "object"} | set(b.helpers)
                 for b in registry.blocks() if b.family}
    with CustomerActivityFeatures() as store:
        params = feature_queries.parameters(store.shop_id)
        params.update(customer_id="a", as_of_us=0)
        for fam in catalog.FAMILIES:
            sql = feature_queries.compose(fam.query, fam.requires)
            columns = {d[0] for d in store.conn.execute(sql, params).description} - {"target_id"}
            passed = set().union(*(commented.get(r, set()) for r in fam.requires), {"customer_id"})
            assert commented[fam.query] <= columns, fam.query
            assert columns - commented[fam.query] <= passed, (fam.query, columns - commented[fam.query])


def test_the_generated_features_page_is_up_to_date():
    page = Path(__file__).resolve().parent.parent / registry.DOCS_PAGE
    assert page.read_text(encoding="utf-8") == registry.markdown(), (
        f"{registry.DOCS_PAGE} is out of date: python -m store.registry > {registry.DOCS_PAGE}")


def test_family_sql_is_what_materialize_runs(monkeypatch, tmp_path):
    """`family_sql(NAME)` / `caf catalog NAME --sql` print the statements materialize runs for the
    family, character for character: each printed SELECT is the text materialize inserts from,
    and its `-- parameters:` line the values it is run with where they differ from the shared
    ones (a windowed family: once over all time, then once per window, each into its table)."""
    from click.testing import CliRunner

    from store import plan
    from store.cli import cli

    executed = []
    stage_keyed = plan.stage_keyed

    def recording(conn, table, body, params, name):
        executed.append((table, body, dict(params)))
        return stage_keyed(conn, table, body, params, name)

    monkeypatch.setattr(plan, "stage_keyed", recording)
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 10.0, "2025-05-01T00:00:00Z")
        store.add_session("a", 60.0, "mobile", "2025-05-21T00:00:00Z")
        store.materialize(as_of=AS_OF_TEXT, windows=(7, 30))
        ran = {table: (body, params) for table, body, params in executed}
        shared = next(params for table, _, params in executed if table == 'temp."primary_device"')
        for family in store.materialize_families():
            text = store.family_sql(family)
            parts = text.split("-- materialize: INSERT INTO temp.")[1:]
            assert parts, family
            for part in parts:
                table, select = part.split(" (...)\n", 1)
                body, params = ran[f'temp."{table}"']
                own = {k: v for k, v in params.items() if shared.get(k, ...) != v}
                if select.startswith("-- parameters: "):
                    line, select = select.split("\n", 1)
                    shown = dict(item.split(" = ") for item in line[len("-- parameters: "):].split(", "))
                    assert {k: ("NULL" if v is None else str(v)) for k, v in own.items()}.items() <= {
                        k.lstrip(":"): v for k, v in shown.items()}.items(), (family, table, line)
                    assert shown[":window_us"] == str(params["window_us"] if params["window_us"] else "NULL")
                else:
                    assert not own, (family, table, own)
                assert body + ";" == select.rstrip("\n"), (family, table)
        windowed = [part.split(" (...)")[0] for part in store.family_sql("purchase_features").split(
            "-- materialize: INSERT INTO temp.")[1:]]
        assert windowed == ["purchase_features", "purchase_features_7d", "purchase_features_30d"]
        assert ":window_us = 604800000000, :frequency_days = 7" in store.family_sql("purchase_features")
    runner = CliRunner()
    db = str(tmp_path / "s.db")
    assert runner.invoke(cli, ["--db", db, "init"]).exit_code == 0
    shown = runner.invoke(cli, ["--db", db, "catalog", "average_order_value", "--sql"])
    assert shown.exit_code == 0, shown.output
    with CustomerActivityFeatures(db) as store:
        assert shown.output == store.family_sql("purchase_features") + "\n"
    wrong = runner.invoke(cli, ["--db", db, "catalog", "nope", "--sql"])
    assert wrong.exit_code == 1 and "no feature family 'nope'" in wrong.output

AS_OF_TEXT = "2025-06-01T12:00:00Z"


def test_every_query_a_header_names_exists():
    from store.resources import queries

    known = queries()
    for b in registry.blocks():
        names = list(b.requires)
        if b.family:
            names += list(b.family.keyed) + list(b.family.edge_requires) + [b.family.edge_query or b.name]
            assert set(b.family.keyed) <= set(b.requires), b.name
        for name in names:
            assert name in known, f"{b.source}: {b.name} names {name!r}, which is no query of sql/"
    assert "behavior_segments" in registry.requires("behavior_features")


def test_a_feature_name_taken_by_another_family_is_refused_with_file_and_line():
    taken = FAMILY.replace("last_big_order_us", "purchase_recency_days")
    blocks = [b for b in registry.blocks()] + registry.read(taken, "spend.sql")
    with pytest.raises(FamilyDefinitionError, match=r"^spend\.sql, line 3: spend_features: column "
                                                     r"purchase_recency_days is already a feature of "
                                                     r"purchase_features \(purchases\.sql\)"):
        registry.check(blocks)


def test_the_getters_lists_read_from_the_registry_equal_the_former_hand_written_ones():
    """store.features.FAMILIES and TRADEOFF_KEYS were hand-written tuples; now read from
    sql/all_features.sql (its requires line and its column comments). Frozen copies:"""
    assert feature_queries.FAMILIES == ("purchase_features", "session_features", "cart_features",
                                        "support_features")
    assert feature_queries.TRADEOFF_KEYS == ("high_short_term_activity", "declining_engagement", "support_risk",
                                             "cart_abandonment_risk", "retention_concern", "activity_trend")
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 10.0, "2025-05-01T00:00:00Z")
        assert list(store.get_activity_retention_tradeoff("a", as_of=AS_OF_TEXT)) == list(
            feature_queries.TRADEOFF_KEYS)


def test_the_getter_keys_read_from_the_registry_equal_the_former_hand_written_ones():
    """get_all_features' keys and get_cohort_summary's were hand-written in store/features.py and
    customer_activity_features.py; now read from the registry (`table only:` leaves purchase_count,
    last_purchase_us, session_count and cart_event_count out). Frozen copies:"""
    from customer_activity_features import SUMMARY_FEATURES

    numeric = ("purchase_frequency", "average_order_value", "purchase_recency_days", "total_purchase_value",
               "session_frequency", "average_session_duration", "abandoned_cart_count", "cart_conversion_ratio",
               "abandoned_cart_value", "support_ticket_count", "average_response_time_hours", "escalation_count",
               "escalation_ratio")
    assert feature_queries.ALL_FEATURE_KEYS == numeric[:6] + ("device_usage_pattern", "primary_device") + numeric[
        6:] + ("activity_retention_tradeoff", "metadata")
    assert feature_queries.SUMMARY_KEYS == SUMMARY_FEATURES == numeric
    assert {b.name: b.table_only for b in registry.blocks() if b.table_only} == {
        "purchase_features": ("purchase_count", "last_purchase_us"), "session_features": ("session_count",),
        "cart_features": ("cart_event_count",),
        "behavior_segments": ("account_created_us", "rfm_last_us", "rfm_frequency", "rfm_monetary", "rfm_first_us")}


def test_a_table_only_line_must_name_a_feature_column_of_the_family():
    with pytest.raises(FamilyDefinitionError, match="table-only column nothing is not a feature column"):
        registry.read(FAMILY.replace("-- tables: purchases\n", "-- tables: purchases\n-- table only: nothing\n"),
                      "spend.sql")
    (block,) = registry.read(FAMILY.replace("-- tables: purchases\n",
                                            "-- tables: purchases\n-- table only: big_order_count\n"), "spend.sql")
    assert block.table_only == ("big_order_count",)


def test_a_plain_query_may_declare_the_columns_its_update_sets_and_reads():
    text = ("-- name: bump\n-- sets: a, b\n-- reads: c\n-- Moves a and b.\n"
            "UPDATE customer_features SET a = c, b = c WHERE shop_id = :shop_id\n")
    [block] = registry.read(text, "bump.sql")
    assert (block.family, block.sets, block.reads) == (None, ("a", "b"), ("c",))


@pytest.mark.parametrize("one_as_of", [True, False])
def test_every_staged_statement_holds_its_query_as_written(tmp_path, one_as_of):
    """What runs is what is written (issue 12 item 2): each statement materialize, refresh, export
    and features_at stage (store.plan.Plan.stage_statements) holds the text of its query, and of
    every query it reads as a CTE, exactly as the file has it (built-in families and the
    documented user family): composition only adds a target relation, CTE names and a select
    around them, never edits the text."""
    from store import plan as plan_module
    from store import user_families

    example = Path(__file__).resolve().parent.parent / "docs" / "examples" / "user_features.sql"
    reg = user_families.load([example])
    with CustomerActivityFeatures(feature_paths=[example]) as store:
        plan = plan_module.Plan(store.conn, (7, 30), None, reg)
        statements = plan.stage_statements(one_as_of)
    staged = {st.table for st in statements}
    assert {fam.query for fam in plan.families} <= staged
    for st in statements:
        query_name = st.table if st.table in {b.name for b in reg.blocks} or reg.known(st.table) else \
            st.table.rsplit("_", 1)[0]  # <family>_<N>d: a window's run of the family
        for name in (query_name,) + tuple(reg.requires(query_name)):
            if name in staged and name != query_name:
                continue  # read as a staged table, not as text
            assert reg.query(name) in st.sql, f"{st.table}: the text of {name} is not in its statement"
