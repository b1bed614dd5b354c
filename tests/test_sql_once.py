"""Each rule of sql/ is written in one named query; the others read that query as a CTE
(their ``-- requires:`` line) instead of repeating its text (issue 12, item 2).

A rule is recognised by a fragment of its text (comments removed, whitespace collapsed):
the test fails when a fragment appears in any other query than the ones listed, so a
second copy of a rule (in a new query, or pasted back into an old one) is caught.
"""

import re

import pytest

from store import catalog, registry
from store.resources import queries

# fragment -> the queries allowed to hold it (exactly these, so a renamed rule updates this list)
RULES = {
    # the customer_segment CASE: behavior_segments only (refresh_segments runs the family itself)
    "THEN 'no_purchases'": {"behavior_segments"},
    "THEN 'champions'": {"behavior_segments"},
    "THEN 'at_risk'": {"behavior_segments"},
    # account age and purchase recency: the derived lines of behavior_segments and
    # purchase_features only (test_a_derived_column_is_written_on_its_derived_line_only);
    # no query's SQL computes them
    "- cu.created_at_us) / 86400000000": set(),
    "- MAX(p.event_time_us)) / 86400000000": set(),
    # the seed retention rules: all_features only (the behaviour families read its flags)
    "< :declining_ratio": {"all_features"},
    "> :support_escalation_ratio": {"all_features"},
    "> :support_max_tickets": {"all_features"},
    "< :cart_min_conversion_ratio": {"all_features"},
    "> :cart_max_abandoned": {"all_features"},
    # the recency threshold: all_features only (refresh recomputes the family when a last
    # purchase crosses it, its edges days line, instead of re-evaluating retention_concern)
    "> :recency_concern_days": {"all_features"},
    "support_risk OR": {"all_features"},  # the retention_concern rule over the flags
    # the risk score over the flags: behavior_retention only
    ":risk_points *": {"behavior_retention"},
    # loyalty_trend: behavior_loyalty_counts only (behavior_temporal and the edge query read it)
    "/ (:loyalty_half_days / 30.0)": {"behavior_loyalty_counts"},
    # the RFM score rule: behavior_rfm_scores only (the ranks are counted or ranked elsewhere; a
    # refresh ranks the stored measures with it, store.behavior.refresh_segments)
    "1 + (:rfm_bins *": {"behavior_rfm_scores"},
    # RFM/T: the counted purchases and their period
    "(p.order_value > 0 OR :include_zero)": {"rfm_local_times"},
    "+ :bias_us) / :period_us - :bias_periods": {"rfm_counted_purchases"},
    # the device tie rule (most sessions, then first seen, then name): session_devices' device_rank
    # (its ORDER BY sorts by the same keys, so that SQLite sorts once); primary_device reads the
    # rank. Known second evaluation: behavior_device's preferred_device (all time, 'unknown' left
    # out) ranks its own groups: read from session_devices, SQLite scanned the ranked rows once per
    # target (no automatic index on that join), a correlated LIMIT 1 does not run on Spark, and two
    # indexed joins cost its statement ~60% (benchmarks/README.md, issues 12 and 15, 2026-12-03)
    "COUNT(*) DESC, MIN(s.event_time_us), s.device_type": {"session_devices", "behavior_device"},
    "session_count DESC, first_seen_us, device_type": {"session_devices"},
    # the local-time lookup (store/localtime.py): purchase_local_time only, which the RFM
    # purchases and the behaviour features' purchases read (installed as a temp view)
    "FROM temp.caf_tz_offsets": {"purchase_local_time"},
    "SELECT fixed_offset_us FROM temp.caf_tz": {"purchase_local_time"},
}

_COMMENT = re.compile(r"--[^\n]*")
_SPACE = re.compile(r"\s+")


def _normal(text):
    return _SPACE.sub(" ", _COMMENT.sub(" ", text)).strip()


def _holders(fragment):
    needle = _normal(fragment)
    return {name for name, sql in queries().items() if needle in _normal(sql)}


@pytest.mark.parametrize("fragment", sorted(RULES))
def test_each_rule_is_written_in_one_query(fragment):
    assert _holders(fragment) == RULES[fragment]


@pytest.mark.parametrize("name", sorted(queries()))
def test_no_query_is_a_text_template(name):
    # what runs is what is written: no {placeholder} for Python to fill in (a table is read
    # through a CTE the store composes, e.g. refresh_events of refresh_hits)
    assert not re.search(r"\{[A-Za-z_][A-Za-z0-9_]*\}", _normal(queries()[name]))


def test_comments_do_not_count():
    # a query that only mentions a rule in a comment does not hold it
    assert _normal("SELECT 1 -- THEN 'champions'\n") == "SELECT 1"


@pytest.mark.parametrize("column", sorted(catalog.derived_columns(registry.builtin())))
def test_a_derived_column_is_written_on_its_derived_line_only(column):
    # its expression is in no query's SQL (store.features.runnable and store.plan.view_sql
    # compose it from the family's -- derived: line), and the family query does not compute it
    derived = catalog.derived_columns(registry.builtin())[column]
    assert _holders(derived.expr) == set()
    assert column not in _normal(queries()[derived.family])
