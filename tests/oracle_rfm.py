"""Plain-Python oracles for the RFM/T summaries and the purchase-sequence statistics.

Written from the definitions in docs/rfm.md (the lifetimes library's
conventions), independently of the SQL: local times come straight from
``zoneinfo`` as naive wall-clock datetimes (what a pandas user holding local
timestamps has), periods are truncated with datetime arithmetic, and period
differences are naive-datetime differences divided by the period length.

Purchases are tuples ``(customer_id, time_us, value)``; ``time_us`` is UTC
microseconds since the epoch.
"""

import math
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
UNITS = {"D": timedelta(days=1), "W": timedelta(weeks=1), "h": timedelta(hours=1)}


def local(time_us, tz):
    """Naive local wall-clock datetime of a UTC instant."""
    return (EPOCH + timedelta(microseconds=time_us)).astimezone(ZoneInfo(tz)).replace(tzinfo=None)


def period_start(dt, freq):
    """Start of the period holding a naive datetime (pandas to_period(freq).to_timestamp())."""
    if freq == "D":
        return datetime(dt.year, dt.month, dt.day)
    if freq == "W":  # W-SUN: weeks ending on Sunday, starting on Monday
        day = datetime(dt.year, dt.month, dt.day)
        return day - timedelta(days=dt.weekday())
    if freq == "h":
        return dt.replace(minute=0, second=0, microsecond=0)
    raise ValueError(freq)


def periods_between(later, earlier, freq):
    return (later - earlier) / UNITS[freq]


def _counted(purchases, include_zero):
    return [p for p in purchases if (p[2] >= 0 if include_zero else p[2] > 0)]


def rfm_summary(purchases, observation_end_us=None, *, freq="D", freq_multiplier=1, include_first=False,
                include_zero=True, tz="UTC"):
    """{customer_id: (frequency, recency, T, monetary_value)} as lifetimes computes them."""
    counted = _counted(purchases, include_zero)
    if not counted:
        return {}
    if observation_end_us is None:
        end = period_start(max(local(t, tz) for _, t, _ in counted), freq)
    else:
        end = period_start(local(observation_end_us, tz), freq)
    per_customer = {}
    for cid, t, value in counted:
        start = period_start(local(t, tz), freq)
        if start > end:
            continue  # a purchase in a period after the observation end's period
        sums = per_customer.setdefault(cid, {})
        sums[start] = sums.get(start, 0.0) + value
    result = {}
    for cid, sums in per_customer.items():
        starts = sorted(sums)
        first, last = starts[0], starts[-1]
        frequency = len(starts) - 1 + (1 if include_first else 0)
        recency = periods_between(last, first, freq) / freq_multiplier
        T = periods_between(end, first, freq) / freq_multiplier
        values = [sums[s] for s in starts] if include_first else [sums[s] for s in starts[1:]]
        monetary = sum(values) / len(values) if values else 0.0
        result[cid] = (float(frequency), float(recency), float(T), float(monetary))
    return result


def calibration_and_holdout(purchases, calibration_end_us, observation_end_us=None, *, freq="D",
                            freq_multiplier=1, include_first=False, include_zero=True, tz="UTC"):
    """{customer_id: (frequency_cal, recency_cal, T_cal, monetary_value_cal, frequency_holdout,
    monetary_value_holdout, duration_holdout)}; ValueError for an empty holdout."""
    counted = _counted(purchases, include_zero)
    if observation_end_us is None:
        if not counted:
            raise ValueError("no purchases")
        observation_end_us = max(t for _, t, _ in counted)
    if calibration_end_us >= observation_end_us:
        raise ValueError("empty holdout period")
    holdout = [p for p in counted if calibration_end_us < p[1] <= observation_end_us]
    if not holdout:
        raise ValueError("no holdout purchases")
    calibration = [p for p in counted if p[1] <= calibration_end_us]
    cal = rfm_summary(calibration, calibration_end_us, freq=freq, freq_multiplier=freq_multiplier,
                      include_first=include_first, include_zero=include_zero, tz=tz)
    periods, values = {}, {}
    for cid, t, value in holdout:
        periods.setdefault(cid, set()).add(period_start(local(t, tz), freq))
        values.setdefault(cid, []).append(value)
    duration = periods_between(period_start(local(observation_end_us, tz), freq),
                               period_start(local(calibration_end_us, tz), freq), freq) / freq_multiplier
    result = {}
    for cid, row in cal.items():
        held = values.get(cid, [])
        result[cid] = row + (float(len(periods.get(cid, ()))),
                             sum(held) / len(held) if held else 0.0,
                             float(duration))
    return result


# -- purchase-sequence statistics -------------------------------------------------------
US_PER_DAY = 86_400_000_000
SEQUENCE_KEYS = ("sequence_purchase_count", "gap_mean_days", "gap_std_days", "gap_cv", "order_value_trend",
                 "gap_median_days", "periodicity")


def median(values):
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2


def sequence_features(purchases, as_of_us):
    """One customer's sequence statistics; purchases are (time_us, event_id, value), ordered by
    (time, value, event_id): purchases at the same instant go in value order, so a generated
    (random) event id never changes a value."""
    seq = sorted((t, v, eid) for t, eid, v in purchases if t <= as_of_us)
    n = len(seq)
    out = dict.fromkeys(SEQUENCE_KEYS)
    out["sequence_purchase_count"] = n
    if n < 2:
        return out
    gaps = [seq[i][0] - seq[i - 1][0] for i in range(1, n)]
    mean = sum(gaps) / len(gaps)
    std = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))  # population
    med = median(gaps)
    values = [v for _, v, _ in seq]
    xbar = (n - 1) / 2
    slope = sum((i - xbar) * (v - sum(values) / n) for i, v in enumerate(values)) / sum(
        (i - xbar) ** 2 for i in range(n))
    out.update(
        gap_mean_days=mean / US_PER_DAY,
        gap_std_days=std / US_PER_DAY,
        gap_cv=std / mean if mean > 0 else None,
        order_value_trend=slope,
        gap_median_days=med / US_PER_DAY,
        periodicity=sum(1 for g in gaps if 5 * abs(g - med) <= med) / len(gaps),
    )
    return out
