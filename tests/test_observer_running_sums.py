"""observer.py keeps running window and baseline sums: they must equal summing the ticks they cover afresh, and never
mutate old snapshots."""
from __future__ import annotations

import numpy as np
import pytest

from control_plane import ControlPlane
from merchant_profiles import DEFAULT_UNIVERSE as U
from observer import Observer, ObserverSettings, sum_stats
from simulator import Simulator


@pytest.mark.parametrize("block_ticks", [1, 2])
def test_running_sums_equal_summing_the_ticks_afresh_and_old_snapshots_stay_put(block_ticks):
    settings = ObserverSettings(window_ticks=3, baseline_ticks=8, block_ticks=block_ticks)   # wraps many times
    sim, obs = Simulator(U, 4, 300), Observer(U, settings)
    ticks, kept = [], []
    for t in range(40):
        batch = sim.step(ControlPlane())
        ticks.append(obs.aggregate(batch))
        snap = obs.observe(batch)
        window = sum_stats(ticks[-3:])
        moved = len(ticks[:-3]) // block_ticks * block_ticks          # the baseline moves in whole blocks
        baseline = ticks[:moved][-8:] if moved else []
        for got, want in ((snap.window, window), (snap.baseline, sum_stats(baseline) if baseline else obs.empty())):
            assert np.array_equal(got.packed_counts, want.packed_counts) and got.ticks == want.ticks
            assert np.array_equal(got.latency_hist, want.latency_hist)
            assert np.array_equal(got.hard_retries, want.hard_retries)
            assert np.allclose(got.packed_fees, want.packed_fees)
            assert np.allclose(got.packed_amount, want.packed_amount)
        if t == 5:
            kept = [snap, snap.window.counts.copy(), snap.window.slice({"issuer": 0})]
    snap5, counts5, slice5 = kept
    assert np.array_equal(snap5.window.counts, counts5) and snap5.window.slice({"issuer": 0}) == slice5


def test_slices_from_marginals_match_direct_sums():
    sim, obs = Simulator(U, 6, 2000), Observer(U)
    for _ in range(8):
        snap = obs.observe(sim.step(ControlPlane()))
    w = snap.window
    view = w.views[0]
    for target in ({}, {"issuer": 2}, {"merchant": 4}, {"issuer": 1, "processor": 0},
                   {"issuer": 3, "processor": 1, "merchant": 2}):
        ix = tuple(target.get(d, slice(None)) for d in view.dims)
        c = view.counts[ix].reshape(-1, 3, view.counts.shape[-1]).sum(axis=0)
        s = w.slice(target)
        assert (s.attempts, s.payments, s.approvals, s.late_retries) == (c.sum(), c[0].sum(), c[:, 0].sum(), c[2].sum())
        assert np.isclose(s.fees, view.fees[ix].sum()) and np.isclose(s.approved_amount, view.approved_amount[ix].sum())
