"""merchant_profiles.py: the simulated world's tables and the arrays the hot path indexes (shares, routing split,
latency parameters, the daily traffic shape)."""
from __future__ import annotations

import numpy as np
import pytest

from merchant_profiles import DEFAULT_UNIVERSE as U
from merchant_profiles import Universe


def test_index_and_names_agree_for_every_dimension():
    for dim in U.dims:
        names = U.names(dim)
        assert U.size(dim) == len(names) == len(set(names))
        assert [U.index(dim, n) for n in names] == list(range(len(names)))
    with pytest.raises(ValueError):
        U.index("issuer", "nobank")


def test_shares_are_distributions():
    for share in (U.issuer_share, U.merchant_share):
        assert share.min() > 0 and share.sum() == pytest.approx(1.0)


def test_default_routing_sends_each_issuers_primary_share_to_its_primary_and_splits_the_rest():
    assert np.allclose(U.route_cdf[:, -1], 1.0) and (np.diff(U.route_cdf, axis=1) >= 0).all()
    for row, issuer in enumerate(U.issuers):
        p = U.index("processor", issuer.primary)
        assert U.route_share[row, p] == pytest.approx(issuer.primary_share)
        others = np.delete(U.route_share[row], p)
        assert np.allclose(others, (1 - issuer.primary_share) / (len(U.processors) - 1))


def test_latency_parameters_give_back_each_processors_p50_and_p95():
    mu, sigma = U.latency_mu_sigma
    for k, p in enumerate(U.processors):
        assert np.exp(mu[k]) == pytest.approx(p.p50_ms)
        assert np.exp(mu[k] + 1.6449 * sigma[k]) == pytest.approx(p.p95_ms)


def test_the_daily_traffic_shape_averages_one_and_peaks_at_each_merchants_peak_hour():
    hours = np.arange(0, 24, 0.25)
    shape = np.array([U.traffic_multiplier(h) for h in hours])
    assert np.allclose(shape.mean(axis=0), 1.0)
    for k, m in enumerate(U.merchants):
        assert U.traffic_multiplier(m.peak_hour)[k] == pytest.approx(1 + m.daily_amplitude)


def test_a_smaller_universe_keeps_its_own_tables():
    small = Universe(issuers=U.issuers[:2], merchants=U.merchants[:3])
    assert small.issuer_names == U.issuer_names[:2] and small.size("merchant") == 3
    assert small.issuer_share.sum() == pytest.approx(1.0) and small.route_cdf.shape == (2, len(U.processors))
    assert small.describe()["merchants"] == list(U.merchant_names[:3])
