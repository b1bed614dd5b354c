"""Plain-Python oracle of the refund feature family (sql/refunds.sql: refund_features)."""


def refund_features(refunds, customer_id, as_of_us, window_us=None):
    """refunds: [(customer_id, event_time_us, refund_value)]. An event counts when
    event_time_us <= as_of_us and, with a window, event_time_us >= as_of_us - window_us."""
    values = [value for cid, t, value in refunds
              if cid == customer_id and t <= as_of_us and (window_us is None or t >= as_of_us - window_us)]
    return {"refund_count": len(values), "refund_value": float(sum(values))}
