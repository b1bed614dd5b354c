"""A user's code, type-checked by tests/test_typing.py and by .ci/run against the installed wheel:
the lines marked ``# error: CODE`` must be reported with that code, every other line must pass,
and each ``reveal_type`` must show the type in its ``# revealed:`` note."""

from datetime import datetime, timezone

from customer_activity_features import CustomerActivityFeatures, IngestResult, RFMRow

with CustomerActivityFeatures(None, shop_id="s1") as store:
    stored: bool = store.add_purchase("c1", 25.0, datetime(2024, 5, 1, tzinfo=timezone.utc))
    result: IngestResult = store.add_purchases([{"customer_id": "c1", "order_value": 5.0}])
    reveal_type(store.get_purchase_recency("c1"))  # revealed: int | None
    days_ago = store.get_purchase_recency("c1") + 1  # error: operator
    total: float = store.get_total_purchase_value("c1", 30, as_of="2024-06-01")
    device: str = store.get_primary_device("c1")  # error: assignment
    for row in store.features_at([("c1", "2024-06-01")]):
        reveal_type(row)  # revealed: dict[str, Any]
    for old in store.features_at([("c1", "2024-06-01")], days=30):
        reveal_type(old)  # revealed: tuple[str | None, datetime.datetime, dict[str, Any]]
    for rfm in store.rfm_summary():
        reveal_type(rfm.frequency)  # revealed: float
    first: RFMRow = next(store.rfm_summary())
    reveal_type(store.materialize_families())  # revealed: list[str]
    reveal_type(CustomerActivityFeatures.materialize_families())  # revealed: list[str]
    store.materialize(as_of=20240601)  # error: arg-type
    store.export("out.csv", fromat="csv")  # error: call-arg
