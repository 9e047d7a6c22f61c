"""observer.py keeps running window and baseline sums: they must equal summing the ring, and never mutate old snapshots."""
from __future__ import annotations

import numpy as np

from control_plane import ControlPlane
from merchant_profiles import DEFAULT_UNIVERSE as U
from observer import Observer, ObserverSettings, sum_stats
from simulator import Simulator
from slice_stats import LAT_EDGES


def test_running_sums_equal_the_ring_and_old_snapshots_stay_put():
    settings = ObserverSettings(window_ticks=3, baseline_ticks=7)          # a small ring that wraps many times
    sim, obs = Simulator(U, 4, 300), Observer(U, settings)
    kept = []
    for t in range(40):
        snap = obs.observe(sim.step(ControlPlane()))
        ring = list(obs._ring)
        for got, want in ((snap.window, sum_stats(ring[-3:], obs.shape, len(LAT_EDGES) - 1)),
                          (snap.baseline, sum_stats(ring[:-3], obs.shape, len(LAT_EDGES) - 1))):
            assert np.array_equal(got.counts, want.counts) and got.ticks == want.ticks
            assert np.array_equal(got.latency_hist, want.latency_hist)
            assert np.allclose(got.fees, want.fees) and np.allclose(got.approved_amount, want.approved_amount)
        if t == 5:
            kept = [snap, snap.window.counts.copy(), snap.window.slice({"issuer": 0})]
    snap5, counts5, slice5 = kept
    assert np.array_equal(snap5.window.counts, counts5) and snap5.window.slice({"issuer": 0}) == slice5


def test_slices_from_marginals_match_direct_sums():
    sim, obs = Simulator(U, 6, 2000), Observer(U)
    for _ in range(8):
        snap = obs.observe(sim.step(ControlPlane()))
    w = snap.window
    for target in ({}, {"issuer": 2}, {"merchant": 4}, {"issuer": 1, "processor": 0}, {"issuer": 3, "processor": 1, "merchant": 2}):
        ix = tuple(target.get(d, slice(None)) for d in ("issuer", "processor", "merchant", "method"))
        c = w.counts[ix].reshape(-1, 3, w.counts.shape[-1]).sum(axis=0)
        s = w.slice(target)
        assert (s.attempts, s.payments, s.approvals, s.late_retries) == (c.sum(), c[0].sum(), c[:, 0].sum(), c[2].sum())
        assert np.isclose(s.fees, w.fees[ix].sum()) and np.isclose(s.approved_amount, w.approved_amount[ix].sum())
