"""The REES46 preset also fills interactions (sql/behavior_loaders.sql, docs/behavior.md)."""

from customer_activity_features import CustomerActivityFeatures

HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
LINES = [
    "2019-10-01 00:00:00 UTC,view,p1,11,electronics.phone,acme,100.0,501,s-a",
    "2019-10-01 00:01:00 UTC,view,p2,11,,acme,50.0,501,s-a",
    "2019-10-01 00:02:00 UTC,cart,p1,11,electronics.phone,acme,100.0,501,s-a",
    "2019-10-01 00:05:00 UTC,purchase,p1,11,electronics.phone,acme,100.0,501,s-a",
    "2019-10-01 00:05:00 UTC,purchase,p1,11,electronics.phone,acme,100.0,501,s-a",  # exact duplicate line
    "2019-10-02 00:00:00 UTC,view,p3,12,,,5.0,502,s-b",
    "2019-10-02 00:00:10 UTC,remove_from_cart,p3,12,,,5.0,502,s-b",
    "2019-10-02 00:00:20 UTC,bogus,p3,12,,,5.0,502,s-b",  # rejected row: no interaction
]


def test_rees46_fills_interactions_once(tmp_path):
    path = tmp_path / "rees.csv"
    path.write_text(HEADER + "\n".join(LINES) + "\n", encoding="utf-8")
    with CustomerActivityFeatures() as store:
        store.load("rees46", str(path))
        rows = store.conn.execute(
            "SELECT customer_id, event_id, session_id, event_type, product_id, category, page_type "
            "FROM interactions ORDER BY event_id").fetchall()
        assert rows == [
            ("501", "s-a#1", "s-a", "product_view", "p1", "electronics.phone", "product"),
            ("501", "s-a#2", "s-a", "product_view", "p2", "11", "product"),
            ("501", "s-a#3", "s-a", "add_to_cart", "p1", "electronics.phone", "product"),
            ("501", "s-a#4", "s-a", "purchase", "p1", "electronics.phone", "product"),
            ("502", "s-b#1", "s-b", "product_view", "p3", "12", "product"),
            ("502", "s-b#2", "s-b", "remove_from_cart", "p3", "12", "product"),
        ]
        f = store.get_behavior_features("501", as_of="2019-11-01T00:00:00Z")
        assert f["page_views_per_session"] == 2.0 and f["bounce_rate"] == 0.0
        assert f["impulse_purchase_tendency"] == 1.0 and f["product_discovery_method"] == "direct"
        assert f["cart_abandonment_rate"] == 0.0 and f["product_comparison_behavior"] == 1.0
        store.load("rees46", str(path))  # the same file again: nothing new
        assert store.conn.execute("SELECT COUNT(*) FROM interactions").fetchone()[0] == 6
