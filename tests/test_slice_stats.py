"""slice_stats.py: a slice's totals and rates (None when nothing was seen), and latency quantiles from histograms."""
from __future__ import annotations

import numpy as np
import pytest

from slice_stats import LAT_EDGES, N_BINS, SliceStats, histogram_quantiles


def stats(**kw) -> SliceStats:
    base = dict(attempts=0, approvals=0, payments=0, first_approvals=0, retries=0, retry_approvals=0, late_retries=0,
                late_retry_approvals=0, fees=0.0, approved_amount=0.0)
    return SliceStats(**{**base, **kw})


def test_rates():
    s = stats(attempts=150, approvals=90, payments=100, first_approvals=80, retries=50, retry_approvals=10, fees=30.0)
    assert (s.success_rate, s.first_attempt_rate, s.retry_rate) == (0.6, 0.8, 0.2)
    assert (s.attempts_per_payment, s.approvals_per_payment, s.cost_per_approved) == (1.5, 0.9, 30.0 / 90)


def test_nothing_seen_is_none_never_zero_or_an_error():
    s = stats()
    assert all(getattr(s, r) is None for r in ("success_rate", "first_attempt_rate", "retry_rate",
                                                "attempts_per_payment", "approvals_per_payment", "cost_per_approved"))


def test_sum_takes_slices_and_their_dicts_alike():
    a = stats(attempts=3, approvals=2, payments=2, fees=1.5)
    b = stats(attempts=5, approvals=1, payments=4, fees=0.25)
    total = SliceStats.sum([a, b.__dict__])               # guard windows keep dicts
    assert total == stats(attempts=8, approvals=3, payments=6, fees=1.75)
    assert SliceStats.sum([]) == stats()


def test_quantiles_of_an_empty_histogram_are_none():
    assert histogram_quantiles(np.zeros(N_BINS), (0.5, 0.95)) == (None, None)


def test_quantiles_stay_inside_the_bin_that_holds_them_and_are_ordered():
    rng = np.random.default_rng(1)
    lat = rng.lognormal(6, 0.5, 20000)
    hist, _ = np.histogram(np.clip(lat, LAT_EDGES[0], LAT_EDGES[-1] * 0.999), LAT_EDGES)
    p50, p95 = histogram_quantiles(hist, (0.5, 0.95))
    true50, true95 = np.quantile(lat, [0.5, 0.95])
    assert p50 < p95
    assert abs(p50 / true50 - 1) < 0.08 and abs(p95 / true95 - 1) < 0.08          # bins are ~7% wide


def test_one_full_bin_interpolates_geometrically():
    hist = np.zeros(N_BINS)
    hist[10] = 100
    lo, hi = LAT_EDGES[10], LAT_EDGES[11]
    (q,) = histogram_quantiles(hist, (0.5,))
    assert q == pytest.approx(lo * (hi / lo) ** 0.5)
