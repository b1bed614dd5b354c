"""The `caf` command line: global options, init/migrate, features, stats,
rejected, demo, and the error contract (one line on stderr, exit 1 for a
failure, 2 for a usage error, never a traceback).

Loading is in test_cli_load.py; materialise/refresh/export/catalog in
test_cli_snapshot.py; docs/cli.md and the README's sqlite3 section in
test_cli_docs.py.
"""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from customer_activity_features import CustomerActivityFeatures
from store import db as storedb
from store import synthetic
from store.cli import cli

REPO = Path(__file__).resolve().parents[1]
AS_OF = "2026-01-01T00:00:00Z"


def run(args, db=None, input=None, env=None):
    runner = CliRunner()
    full = (["--db", str(db)] if db is not None else []) + list(args)
    return runner.invoke(cli, full, input=input, env=env, prog_name="caf", catch_exceptions=True)


def ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def assert_error(result, code, *fragments):
    """A clean failure: the exit code, one 'Error: ...' line on stderr, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    ok(run(["demo", "--customers", "60"], db=path))
    return path


@pytest.fixture
def store_with_rejections(tmp_path):
    path = tmp_path / "rej.db"
    with CustomerActivityFeatures(path) as store:
        store.add_purchase("c1", 10.0, "2025-01-01T00:00:00Z", order_id="o1")
        store.add_purchase("c1", -5.0, "2025-01-02T00:00:00Z", order_id="o2")
        store.add_purchase("", 5.0, "2025-01-02T00:00:00Z", order_id="o3")
        store.add_session("c2", "long", "mobile", "2025-01-03T00:00:00Z")
        store.add_cart_event("c2", "lost", 5.0, "2025-01-03T00:00:00Z")
    return path


# -- global ------------------------------------------------------------------------
def test_help_lists_every_command():
    result = ok(run(["--help"]))
    for name in ("init", "migrate", "load", "features", "materialize", "refresh", "export",
                 "catalog", "stats", "rejected", "demo"):
        assert f"  {name} " in result.output


@pytest.mark.parametrize("name", ["init", "migrate", "load", "features", "materialize", "refresh",
                                  "export", "export features", "export rfm", "catalog", "stats",
                                  "rejected", "demo"])
def test_every_command_has_help_with_examples(name):
    result = ok(run(name.split() + ["--help"]))
    assert result.output.startswith(f"Usage: caf {name}")
    assert "Example" in result.output


def test_version():
    assert "caf, version" in ok(run(["--version"])).output


def test_python_dash_m_store_help():
    proc = subprocess.run([sys.executable, "-m", "store", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: caf [OPTIONS] COMMAND")
    assert "demo" in proc.stdout


def test_python_dash_m_store_error_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "store", "--db", str(tmp_path / "none.db"), "stats"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("Error: no database at")


def test_unknown_command_and_option_are_usage_errors():
    assert_error(run(["nosuch"]), 2, "No such command 'nosuch'")
    assert_error(run(["stats", "--bogus"]), 2, "No such option '--bogus'", "caf stats --help")


def test_db_from_environment_variable(tmp_path):
    path = tmp_path / "env.db"
    ok(run(["init"], env={"CAF_DB": str(path)}))
    assert path.exists()


def test_default_db_is_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CAF_DB", raising=False)
    ok(CliRunner().invoke(cli, ["init"], prog_name="caf"))
    assert (tmp_path / "customer_activity.db").exists()


def test_commands_that_read_refuse_a_missing_database(tmp_path):
    missing = tmp_path / "missing.db"
    for args in (["stats"], ["features", "c1"], ["rejected"], ["catalog"], ["materialize"],
                 ["refresh"], ["export", str(tmp_path / "x.csv")]):
        assert_error(run(args, db=missing), 1, "no database at", "caf init")
    assert not missing.exists()


def test_a_file_that_is_not_a_database(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_text("this is not sqlite\n" * 100)
    assert_error(run(["stats"], db=bad), 1, "cannot open", "not a database")
    assert_error(run(["init"], db=bad), 1, "cannot open", "not a database")
    assert_error(run(["migrate", "--list"], db=bad), 1, "not a database")


def test_unopenable_path(tmp_path):
    assert_error(run(["init"], db=tmp_path / "no" / "such" / "dir.db"), 1, "cannot open")


# -- init / migrate --------------------------------------------------------------------
def test_init_creates_then_is_up_to_date(tmp_path):
    path = tmp_path / "s.db"
    result = ok(run(["init"], db=path))
    assert "Created" in result.output and "0001_initial" in result.output
    assert "up to date" in ok(run(["init"], db=path)).output
    conn = sqlite3.connect(path)
    assert storedb.pending_steps(conn) == []
    conn.close()


def test_migrate_list_on_missing_database_shows_every_step_pending(tmp_path):
    path = tmp_path / "s.db"
    result = ok(run(["migrate", "--list"], db=path))
    assert "does not exist yet" in result.output
    for step in storedb.known_steps():
        assert step in result.output
    assert "applied" not in result.output
    assert not path.exists()
    assert_error(run(["migrate"], db=path), 1, "no database")


def test_migrate_list_applied_and_pending(tmp_path):
    path = tmp_path / "s.db"
    first = storedb.known_steps()[0]
    ok(run(["init"], db=path))
    listing = json.loads(ok(run(["migrate", "--list", "--json"], db=path)).output)
    assert [s["name"] for s in listing["steps"]] == storedb.known_steps()
    assert {s["status"] for s in listing["steps"]} == {"applied"}
    # Forget the later steps' records: they show as pending, and migrate re-applies nothing harmful.
    if len(storedb.known_steps()) > 1:
        conn = sqlite3.connect(path)
        conn.execute("DELETE FROM _sqlite_migrations WHERE name != ?", [first])
        conn.commit()
        conn.close()
        listing = json.loads(ok(run(["migrate", "--list", "--json"], db=path)).output)
        statuses = {s["name"]: s["status"] for s in listing["steps"]}
        assert statuses[first] == "applied"
        assert set(statuses.values()) == {"applied", "pending"}
    text = ok(run(["migrate", "--list"], db=path)).output
    assert "step" in text and "status" in text


def test_migrate_applies_pending_steps_of_an_old_database(tmp_path):
    if len(storedb.known_steps()) < 2:
        pytest.skip("only one migration step")
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    import sqlite_utils
    storedb.migrations().apply(sqlite_utils.Database(conn), stop_before=storedb.known_steps()[1])
    conn.close()
    result = ok(run(["migrate"], db=path))
    assert "Applied" in result.output
    assert storedb.known_steps()[1] in result.output
    assert "up to date" in ok(run(["migrate"], db=path)).output


def test_newer_schema_is_refused_untouched(tmp_path):
    path = tmp_path / "new.db"
    ok(run(["init"], db=path))
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES (?, ?, ?)",
                 [storedb.MIGRATION_SET, "9999_from_the_future", "2030-01-01"])
    conn.commit()
    conn.close()
    before = path.read_bytes()
    for args in (["migrate"], ["init"], ["stats"], ["features", "c1"]):
        assert_error(run(args, db=path), 1, "newer version", "9999_from_the_future")
    listing = ok(run(["migrate", "--list"], db=path)).output
    assert "9999_from_the_future" in listing and "newer version" in listing
    assert path.read_bytes() == before


# -- features ------------------------------------------------------------------------------
def test_features_table_and_json(demo_db):
    cid = synthetic.customer_id(0)
    text = ok(run(["features", cid, "--as-of", AS_OF], db=demo_db)).output
    assert f"Customer {cid}, as of 2026-01-01T00:00:00Z" in text
    for key in ("purchase_frequency", "total_purchase_value", "primary_device", "activity_trend"):
        assert key in text
    data = json.loads(ok(run(["features", cid, "--as-of", AS_OF, "--json"], db=demo_db)).output)
    with CustomerActivityFeatures(demo_db) as store:
        expected = store.get_all_features(cid, as_of=AS_OF)
    assert data["customer_id"] == cid
    assert data["as_of"] == "2026-01-01T00:00:00Z"
    assert data["features"] == json.loads(json.dumps(expected))


def test_features_days_window(demo_db):
    cid = synthetic.customer_id(0)
    data = json.loads(ok(run(["features", cid, "--as-of", AS_OF, "--days", "90", "--json"], db=demo_db)).output)
    with CustomerActivityFeatures(demo_db) as store:
        expected = store.get_all_features(cid, days=90, as_of=AS_OF)
    assert data["days"] == 90
    assert data["features"]["total_purchase_value"] == expected["total_purchase_value"]
    assert "window 90 days" in ok(run(["features", cid, "--as-of", AS_OF, "--days", "90"], db=demo_db)).output


def test_features_numeric_customer_id(tmp_path):
    path = tmp_path / "s.db"
    with CustomerActivityFeatures(path) as store:
        store.add_purchase(17850.0, 10.0, "2011-12-01T00:00:00Z", order_id="i1")
    data = json.loads(ok(run(["features", "17850", "--as-of", "2011-12-10", "--json"], db=path)).output)
    assert data["customer_id"] == "17850"
    assert data["features"]["total_purchase_value"] == 10.0
    assert data["features"]["purchase_recency_days"] == 9


def test_features_bad_input(demo_db):
    assert_error(run(["features", "nobody", "--as-of", AS_OF], db=demo_db), 1, "unknown customer 'nobody'")
    assert_error(run(["features", "", "--as-of", AS_OF], db=demo_db), 1, "invalid customer id")
    assert_error(run(["features", "C0000000", "--as-of", "yesterday-ish"], db=demo_db), 2,
                 "'--as-of'", "ISO-8601")
    assert_error(run(["features", "C0000000", "--as-of", "2025-13-45"], db=demo_db), 2, "ISO-8601")
    assert_error(run(["features", "C0000000", "--days", "0"], db=demo_db), 2, "'--days'")
    assert_error(run(["features", "C0000000", "--days", "many"], db=demo_db), 2, "'--days'")
    assert_error(run(["features"], db=demo_db), 2, "Missing argument 'CUSTOMER_ID'")


def test_features_respect_the_shop(tmp_path):
    path = tmp_path / "shops.db"
    with CustomerActivityFeatures(path, shop_id="north") as store:
        store.add_purchase("c1", 10.0, "2025-01-01T00:00:00Z", order_id="o1")
    ok(run(["--shop", "north", "features", "c1"], db=path))
    assert_error(run(["--shop", "south", "features", "c1"], db=path), 1, "unknown customer", "south")
    assert_error(run(["features", "c1"], db=path), 1, "unknown customer")


# -- stats -------------------------------------------------------------------------------
def test_stats_counts_match_the_tables(demo_db):
    data = json.loads(ok(run(["stats", "--json"], db=demo_db)).output)
    conn = sqlite3.connect(demo_db)
    for table in ("purchases", "sessions", "cart_events", "support_interactions", "customers",
                  "rejected_events"):
        assert data["tables"][table] == conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    assert data["customers"] == conn.execute("SELECT count(*) FROM all_customers").fetchone()[0] == 60
    first = conn.execute("SELECT min(event_time) FROM purchases_readable").fetchone()[0]
    conn.close()
    assert data["first_event_time"] <= first[:19] + "Z"
    assert data["last_event_time"] <= "2026-01-01T00:00:00Z"
    assert data["rejections_by_reason"] == []
    text = ok(run(["stats"], db=demo_db)).output
    assert "60 customers" in text and "purchases" in text and "Last load" in text
    assert "Last materialisation" in text


def test_stats_on_an_empty_database(tmp_path):
    path = tmp_path / "e.db"
    ok(run(["init"], db=path))
    data = json.loads(ok(run(["stats", "--json"], db=path)).output)
    assert data["customers"] == 0
    assert data["first_event_time"] is None and data["last_event_time"] is None
    assert data["last_load"] is None
    assert "No rejected records" in ok(run(["stats"], db=path)).output


def test_stats_rejections_by_reason(store_with_rejections):
    data = json.loads(ok(run(["stats", "--json"], db=store_with_rejections)).output)
    reasons = {(r["kind"], r["reason"]): r["rejected_count"] for r in data["rejections_by_reason"]}
    assert sum(reasons.values()) == 4 == data["tables"]["rejected_events"]
    assert any(kind == "purchase" and reason.startswith("order_value") for kind, reason in reasons)
    text = ok(run(["stats"], db=store_with_rejections)).output
    assert "order_value" in text and "customer_id" in text


# -- rejected ------------------------------------------------------------------------------
def test_rejected_lists_filters_and_limits(store_with_rejections):
    rows = json.loads(ok(run(["rejected", "--json"], db=store_with_rejections)).output)
    assert len(rows) == 4
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert all(r["reason"] and r["kind"] and r["received_at"] for r in rows)
    assert any(isinstance(r["payload"], dict) and r["payload"].get("order_value") == -5.0 for r in rows)
    only = json.loads(ok(run(["rejected", "--reason", "order_value", "--json"], db=store_with_rejections)).output)
    assert len(only) == 1 and only[0]["reason"].startswith("order_value")
    exact = only[0]["reason"]
    assert len(json.loads(ok(run(["rejected", "--reason", exact, "--json"], db=store_with_rejections)).output)) == 1
    kind = json.loads(ok(run(["rejected", "--kind", "cart_event", "--json"], db=store_with_rejections)).output)
    assert [r["kind"] for r in kind] == ["cart_event"]
    assert len(json.loads(ok(run(["rejected", "--limit", "2", "--json"], db=store_with_rejections)).output)) == 2
    text = ok(run(["rejected"], db=store_with_rejections)).output
    assert "reason" in text and "order_value" in text
    assert "No rejected records match" in ok(run(["rejected", "--reason", "zzz"], db=store_with_rejections)).output


def test_rejected_reason_is_a_value_not_sql(store_with_rejections):
    evil = "x' OR '1'='1"
    assert json.loads(ok(run(["rejected", "--reason", evil, "--json"], db=store_with_rejections)).output) == []
    assert json.loads(ok(run(["rejected", "--reason", "%", "--json"], db=store_with_rejections)).output) == []


def test_rejected_bad_input(store_with_rejections):
    assert_error(run(["rejected", "--limit", "0"], db=store_with_rejections), 2, "'--limit'")
    assert_error(run(["rejected", "--limit", "ten"], db=store_with_rejections), 2, "'--limit'")


# -- demo --------------------------------------------------------------------------------
def test_demo_on_a_fresh_database_shows_personas_and_stats(tmp_path):
    path = tmp_path / "fresh.db"
    result = ok(run(["demo", "--customers", "40", "--seed", "3"], db=path))
    out = result.output
    assert "Generated 40 customers" in out
    for persona in ("loyal", "churner", "cart_abandoner", "support_heavy"):
        assert f"({persona})" in out
    assert "40 customers" in out and "purchases" in out and "Last load" in out
    assert "features C" in out  # the next-step hint
    with CustomerActivityFeatures(path) as store:
        assert store.conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 40
        values = store.get_all_features("C0000000", as_of=AS_OF)
    # its rows: every key of get_all_features that is not a dict, the retention flags in place of the
    # tradeoff dict (read from the dicts, no list of names in store/cli.py)
    want = [k for k, v in values.items() if not isinstance(v, dict) or k == "activity_retention_tradeoff"]
    at = want.index("activity_retention_tradeoff")
    want[at:at + 1] = list(values["activity_retention_tradeoff"])
    table = out.split("one customer per persona:\n", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    assert [line.split()[0] for line in table] == want
    assert want[-2:] == ["retention_concern", "activity_trend"] and "primary_device" in want


def test_demo_twice_adds_nothing(tmp_path):
    path = tmp_path / "twice.db"
    ok(run(["demo", "--customers", "30"], db=path))

    def counts():
        conn = sqlite3.connect(path)
        try:
            return [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                    for t in ("purchases", "sessions", "cart_events", "support_interactions", "customers")]
        finally:
            conn.close()

    first = counts()
    ok(run(["demo", "--customers", "30"], db=path))
    assert counts() == first


def test_demo_picks_customers_of_the_named_personas():
    from store.cli import _demo_customers
    picks = _demo_customers(500, seed=0)
    assert [p for _, p in picks] == ["loyal", "churner", "cart_abandoner", "support_heavy"]
    for cid, persona in picks:
        assert synthetic.persona(0, int(cid[1:])) == persona


def test_demo_bad_input(tmp_path):
    assert_error(run(["demo", "--customers", "0"], db=tmp_path / "d.db"), 2, "'--customers'")
    assert_error(run(["demo", "--customers", "lots"], db=tmp_path / "d.db"), 2, "'--customers'")


def test_stats_and_rejected_stay_within_the_shop(tmp_path):
    path = tmp_path / "shops.db"
    with CustomerActivityFeatures(path, shop_id="north") as north:
        north.add_purchase("n1", 10.0, "2025-01-01T00:00:00Z", order_id="o1")
        north.add_purchase("n2", -1.0, "2025-01-01T00:00:00Z", order_id="o2")
    with CustomerActivityFeatures(path, shop_id="south") as south:
        south.add_purchase("s1", 10.0, "2025-02-01T00:00:00Z", order_id="o1")
        south.add_purchase("s2", 12.0, "2025-03-01T00:00:00Z", order_id="o3")
    north = json.loads(ok(run(["--shop", "north", "stats", "--json"], db=path)).output)
    south = json.loads(ok(run(["stats", "--json"], db=path, env={"CAF_SHOP": "south"})).output)
    assert (north["customers"], north["tables"]["purchases"], north["tables"]["rejected_events"]) == (1, 1, 1)
    assert (south["customers"], south["tables"]["purchases"], south["tables"]["rejected_events"]) == (2, 2, 0)
    assert south["first_event_time"] == "2025-02-01T00:00:00Z"
    assert json.loads(ok(run(["--shop", "south", "rejected", "--json"], db=path)).output) == []
    assert len(json.loads(ok(run(["--shop", "north", "rejected", "--json"], db=path)).output)) == 1
    assert "shop 'north'" in ok(run(["--shop", "north", "stats"], db=path)).output


# -- hostile arguments: never a traceback ------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(customer=_TEXT, as_of=_TEXT, reason=_TEXT)
def test_arbitrary_arguments_never_give_a_traceback(demo_db, customer, as_of, reason):
    for args in (["features", customer], ["features", "C0000000", "--as-of", as_of],
                 ["rejected", "--reason", reason, "--json"], ["load", customer, "x.csv"]):
        result = run(args, db=demo_db)
        assert result.exit_code in (0, 1, 2), (args, result.output)
        assert isinstance(result.exception, (SystemExit, type(None))), (args, result.exception)
        assert "Traceback" not in result.output
        if result.exit_code:
            assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
