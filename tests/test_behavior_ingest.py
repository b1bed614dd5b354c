"""Ingest of the behaviour event kinds: interactions, attributions, session extras, created_at."""

import pytest

from customer_activity_features import CustomerActivityFeatures, InvalidEventError


def reasons(store):
    return sorted(store.conn.execute("SELECT kind, reason FROM rejected_events").fetchall())


def test_bulk_counts_and_reasons():
    with CustomerActivityFeatures() as store:
        r = store.add_interactions([
            {"customer_id": "a", "event_type": "search", "event_date": "2025-01-01T00:00:00Z", "event_id": "i1",
             "search_query": "shoes", "session_id": "s1", "view_duration_seconds": 3},
            {"customer_id": "a", "event_type": "search", "event_id": "i1"},           # duplicate
            {"customer_id": "a", "event_type": "click"},                              # unknown type
            {"customer_id": "a", "event_type": "page_view", "view_duration_seconds": -1},
            {"customer_id": "", "event_type": "page_view"},
            {"customer_id": "a", "event_type": "page_view", "colour": "red"},
        ])
        assert (r.offered, r.accepted, r.rejected, r.duplicates) == (6, 1, 4, 1)
        r = store.add_attributions([
            {"customer_id": "a", "order_id": "o1", "source": "google", "medium": "cpc"},
            {"customer_id": "a", "order_id": "o1", "source": "google"},
            {"customer_id": "a", "order_id": "o2"},
            {"customer_id": "a", "source": "email"},
        ])
        assert (r.offered, r.accepted, r.rejected, r.duplicates) == (4, 1, 2, 1)
        r = store.add_sessions([
            {"customer_id": "a", "duration_seconds": None, "session_start": "2025-01-01T10:00:00Z",
             "session_end": "2025-01-01T10:30:00Z", "page_views": 4, "browser": "firefox", "channel": "email"},
            {"customer_id": "a", "duration_seconds": None, "session_start": "2025-01-01T10:00:00Z",
             "session_end": "2025-01-01T09:00:00Z"},
            {"customer_id": "a", "duration_seconds": 5, "page_views": 1.5},
            {"customer_id": "a", "duration_seconds": 5, "page_views": -2},
        ])
        assert (r.accepted, r.rejected) == (1, 3)
        row = store.conn.execute("SELECT duration_seconds, session_start, session_end, page_views, browser, channel, "
                                 "event_time FROM sessions_behavior_readable").fetchone()
        assert row == (1800.0, "2025-01-01T10:00:00.000Z", "2025-01-01T10:30:00.000Z", 4, "firefox", "email",
                       "2025-01-01T10:00:00.000Z")
        assert reasons(store) == [
            ("attribution", "order_id: is missing"),
            ("attribution", "source: is missing"),
            ("interaction", "customer_id: is empty"),
            ("interaction", "event_type: must be one of page_view, product_view, category_view, search, "
                            "add_to_cart, remove_from_cart, checkout, purchase, got 'click'"),
            ("interaction", "record: unknown field(s) 'colour'; expected customer_id, event_type, event_date, "
                            "session_id, page_type, product_id, category, search_query, view_duration_seconds, "
                            "device_type, event_id"),
            ("interaction", "view_duration_seconds: is negative"),
            ("session", "page_views: is negative"),
            ("session", "page_views: must be a whole number, got 1.5"),
            ("session", "session_end: is before session_start"),
        ]


def test_single_calls_created_at_and_strict():
    with CustomerActivityFeatures() as store:
        assert store.add_interaction("a", "product_view", "2025-01-01T00:00:00Z", product_id=42, event_id="e1")
        assert not store.add_interaction("a", "product_view", event_id="e1")  # duplicate
        assert store.add_attribution("a", "o1", "newsletter", "email", "2025-01-01T00:00:00Z")
        assert store.conn.execute("SELECT product_id FROM interactions").fetchone() == ("42",)
        store.set_customer_metadata("a", {"tier": 1}, created_at="2024-01-01T00:00:00Z")
        store.set_customer_metadata("a", {"tier": 2})  # created_at kept
        store.flush()
        assert store.conn.execute("SELECT metadata, created_at FROM customers_readable").fetchone() == (
            '{"tier": 2}', "2024-01-01T00:00:00.000Z")
        assert store.get_all_features("a", as_of="2025-06-01T00:00:00Z")["metadata"] == {"tier": 2}
        assert {c for (c,) in store.conn.execute("SELECT customer_id FROM all_customers")} == {"a"}
    with CustomerActivityFeatures(strict=True) as store:
        with pytest.raises(InvalidEventError):
            store.add_interaction("a", "teleport")
        with pytest.raises(InvalidEventError):
            store.add_session("a", None, session_start="2025-01-01T10:00:00Z", session_end="2025-01-01T09:00:00Z")
