"""The documented constants of the behaviour features (docs/behavior.md), and the named SQL
parameters they travel as: below every module that composes statements, so that
``store.features.parameters`` binds them without importing ``store.behavior`` (which
imports ``store.features``). ``store.behavior`` re-exports them under the same names."""

from . import timeutil

MIN_ACTIVE_SPAN_DAYS = 1            # purchase_frequency, search_frequency: span floor, days
BOUNCE_MAX_PAGE_VIEWS = 1           # bounce: a session with at most this many page views
ENGAGEMENT_SESSIONS_CAP = 20        # engagement_score: sessions that saturate the sessions term
ENGAGEMENT_DURATION_CAP_SECONDS = 600.0  # ... mean session duration that saturates the duration term
ENGAGEMENT_PAGES_CAP = 10.0         # ... mean page views per session that saturates the pages term
ENGAGEMENT_WEIGHT_SESSIONS = 0.4    # weights of the three terms (sum 1)
ENGAGEMENT_WEIGHT_DURATION = 0.3
ENGAGEMENT_WEIGHT_PAGES = 0.3
DISCOVERY_GAP_MINUTES = 30          # product_discovery_method: search/category view at most this long before first touch
IMPULSE_WINDOW_MINUTES = 10         # impulse_purchase_tendency: purchase at most this long after first touch
COMPARISON_MIN_PRODUCTS = 2         # product_comparison_behavior: distinct products viewed in one session
LOYALTY_WINDOW_DAYS = 180           # loyalty_trend: window, split into two halves of 90 days
RFM_BINS = 5                        # customer_segment: RFM scores 1..5
NEW_CUSTOMER_DAYS = 30              # customer_segment 'new': first purchase at most this many days ago
RISK_POINTS = 25                    # risk_score: points per raised flag (4 flags: 0..100)
MOBILE_DEVICES = ("mobile", "tablet", "smartphone", "phone")
DESKTOP_DEVICES = ("desktop", "laptop", "pc")


def constant_parameters():
    """The documented constants above, as the named SQL parameters of sql/behavior_*.sql."""
    return {
        "min_active_span_days": MIN_ACTIVE_SPAN_DAYS,
        "bounce_max_page_views": BOUNCE_MAX_PAGE_VIEWS,
        "engagement_sessions_cap": ENGAGEMENT_SESSIONS_CAP,
        "engagement_duration_cap_seconds": ENGAGEMENT_DURATION_CAP_SECONDS,
        "engagement_pages_cap": ENGAGEMENT_PAGES_CAP,
        "engagement_weight_sessions": ENGAGEMENT_WEIGHT_SESSIONS,
        "engagement_weight_duration": ENGAGEMENT_WEIGHT_DURATION,
        "engagement_weight_pages": ENGAGEMENT_WEIGHT_PAGES,
        "discovery_gap_us": DISCOVERY_GAP_MINUTES * 60 * timeutil.US_PER_SECOND,
        "impulse_window_us": IMPULSE_WINDOW_MINUTES * 60 * timeutil.US_PER_SECOND,
        "comparison_min_products": COMPARISON_MIN_PRODUCTS,
        "loyalty_half_us": timeutil.days_to_us(LOYALTY_WINDOW_DAYS / 2),
        "loyalty_half_days": LOYALTY_WINDOW_DAYS / 2,
        "rfm_bins": RFM_BINS,
        "new_customer_us": timeutil.days_to_us(NEW_CUSTOMER_DAYS),
        "risk_points": RISK_POINTS,
    }
