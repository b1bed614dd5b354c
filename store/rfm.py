"""RFM/T summaries in the conventions of the lifetimes library, streamed from SQL.

``summary(...)`` mirrors ``lifetimes.utils.summary_data_from_transaction_data``
and ``calibration_and_holdout(...)`` mirrors ``calibration_and_holdout_data``
(lifetimes 0.11.x, with ``freq_multiplier`` and ``include_first_transaction``),
over the store's purchases. Definitions, choices and deviations: docs/rfm.md.
Times without an offset (naive datetimes, dates, ISO text without offset) are
wall-clock times in the store's timezone. Each call validates its arguments eagerly, then returns an iterator of named
tuples streamed from one SQL statement (memory does not grow with the number
of purchases or customers).
"""

import math
import numbers
from typing import NamedTuple

from . import localtime, timeutil
from .features import with_requires
from .resources import query

US_PER_HOUR = localtime.US_PER_HOUR
US_PER_DAY = localtime.US_PER_DAY
US_PER_WEEK = 7 * US_PER_DAY

# freq -> (period length in microseconds, shift in microseconds). Weeks run
# Monday..Sunday (pandas 'W' = 'W-SUN', weeks ending on Sunday): 1970-01-01 was
# a Thursday, so shifting by 3 days puts Monday 1969-12-29 at the start of week 0.
FREQS = {
    "D": (US_PER_DAY, 0),
    "W": (US_PER_WEEK, 3 * US_PER_DAY),
    "h": (US_PER_HOUR, 0),
}
FREQ_ALIASES = {"H": "h", "d": "D", "w": "W"}
# A multiple of every period length, larger than any stored time's distance
# from 1970 (datetime years 1..9999): adding it makes SQLite's truncating
# integer division floor.
BIAS_US = 1_000_000 * US_PER_WEEK

class RFMRow(NamedTuple):
    """One customer's RFM/T summary (lifetimes' summary_data_from_transaction_data columns)."""

    customer_id: str
    frequency: float
    recency: float
    T: float
    monetary_value: float


class CalibrationHoldoutRow(NamedTuple):
    """One customer's calibration/holdout summary (lifetimes' calibration_and_holdout_data columns)."""

    customer_id: str
    frequency_cal: float
    recency_cal: float
    T_cal: float
    monetary_value_cal: float
    frequency_holdout: float
    monetary_value_holdout: float
    duration_holdout: float


def check_freq(freq):
    """The canonical freq ('D', 'W' or 'h'); ValueError otherwise."""
    canonical = FREQ_ALIASES.get(freq, freq) if isinstance(freq, str) else None
    if canonical not in FREQS:
        raise ValueError(f"freq must be 'D' (days), 'W' (weeks, Monday to Sunday) or 'h' (hours), got {freq!r}")
    return canonical


def check_multiplier(freq_multiplier):
    if (isinstance(freq_multiplier, bool) or not isinstance(freq_multiplier, numbers.Real)
            or not math.isfinite(freq_multiplier) or freq_multiplier <= 0):
        raise ValueError(f"freq_multiplier must be a finite number > 0, got {freq_multiplier!r}")
    return float(freq_multiplier)


def parameters(shop_id, freq="D", freq_multiplier=1, include_first=False, include_zero=True):
    """The bound parameters shared by the queries of sql/rfm.sql. ``include_zero``: count
    zero-value purchases (lifetimes counts every transaction); False leaves them out."""
    freq = check_freq(freq)
    period_us, shift_us = FREQS[freq]
    return {
        "shop_id": shop_id,
        "period_us": period_us,
        "bias_us": BIAS_US + shift_us,
        "bias_periods": BIAS_US // period_us,
        "freq_multiplier": check_multiplier(freq_multiplier),
        "include_first": 1 if include_first else 0,
        "include_zero": 1 if include_zero else 0,
    }


def period_of(conn, params, time_us):
    """The period number of an instant, computed by the same SQL as the purchases'
    (rfm_counted_purchases over the one row of rfm_instant, as its rfm_local_times)."""
    sql = (f"WITH rfm_local_times AS (\n{query('rfm_instant')}\n)\n"
           f"SELECT period FROM (\n{query('rfm_counted_purchases')}\n)")
    return conn.execute(sql, {**params, "time_us": time_us}).fetchone()[0]


def _zone(conn):
    """The timezone installed on the connection (naive times are wall-clock times in it)."""
    return localtime.installed(conn) or "UTC"


def _stream(cursor, row_type):
    try:
        for row in cursor:
            yield row_type(*row)
    finally:
        cursor.close()


def summary(conn, shop_id, observation_end=None, *, freq="D", freq_multiplier=1,
            include_first=False, include_zero=True):
    """Iterator of RFMRow(customer_id, frequency, recency, T, monetary_value), by customer_id."""
    params = parameters(shop_id, freq, freq_multiplier, include_first, include_zero)
    if observation_end is None:
        end_period = conn.execute(with_requires("rfm_last_period"), params).fetchone()[0]
        if end_period is None:  # no counted purchase at all
            return iter(())
    else:
        end_period = period_of(conn, params, localtime.to_us(observation_end, _zone(conn)))
    params["end_period"] = end_period
    return _stream(conn.execute(with_requires("rfm_summary"), params), RFMRow)


def calibration_and_holdout(conn, shop_id, calibration_end, observation_end=None, *, freq="D",
                            freq_multiplier=1, include_first=False, include_zero=True):
    """Iterator of CalibrationHoldoutRow, by customer_id.

    ``observation_end`` None means the last counted purchase. Raises ValueError
    when the holdout period is empty (calibration_end >= observation_end) or
    holds no counted purchase (lifetimes raises then too).
    """
    params = parameters(shop_id, freq, freq_multiplier, include_first, include_zero)
    if calibration_end is None:
        raise ValueError("calibration_end is required (the last instant of the calibration period)")
    zone = _zone(conn)
    cal_us = localtime.to_us(calibration_end, zone)
    if observation_end is None:
        obs_us = conn.execute(with_requires("rfm_last_period"), params).fetchone()[1]
        if obs_us is None:
            raise ValueError("no purchases to summarise: the store has no counted purchase")
    else:
        obs_us = localtime.to_us(observation_end, zone)
    if cal_us >= obs_us:
        raise ValueError(
            f"empty holdout period: calibration_end ({timeutil.iso(cal_us)}) must be before "
            f"observation_end ({timeutil.iso(obs_us)})")
    params.update(calibration_end_us=cal_us, observation_end_us=obs_us)
    if not conn.execute(with_requires("rfm_holdout_count"), params).fetchone()[0]:
        raise ValueError(
            f"empty holdout: no counted purchase after calibration_end ({timeutil.iso(cal_us)}) "
            f"and at or before observation_end ({timeutil.iso(obs_us)})")
    params["calibration_period"] = period_of(conn, params, cal_us)
    params["observation_period"] = period_of(conn, params, obs_us)
    return _stream(conn.execute(with_requires("rfm_calibration_holdout"), params), CalibrationHoldoutRow)
