import numpy as np
import pandas as pd
import pytest

from control_plane import ControlPlane
from merchant_profiles import DEFAULT_UNIVERSE as U
from observer import Observer, ObserverSettings, sum_stats
from simulator import Batch, Fault, FaultKind, Simulator
from slice_stats import LAT_EDGES


def random_batch(rng, n, tick=0):
    return Batch(tick=tick, payment_id=np.arange(n), attempt=rng.integers(1, 6, n).astype(np.int16),
                 merchant=rng.integers(0, len(U.merchants), n).astype(np.int16),
                 issuer=rng.integers(0, len(U.issuers), n).astype(np.int16),
                 method=rng.integers(0, 3, n).astype(np.int16),
                 processor=rng.integers(0, len(U.processors), n).astype(np.int16),
                 amount=rng.lognormal(4, 1, n), latency_ms=rng.lognormal(7, 0.6, n).astype(np.float32),
                 approved=np.zeros(n, bool), code=rng.integers(0, 9, n).astype(np.int8), fee=rng.random(n))


def frame(b):
    df = pd.DataFrame({k: getattr(b, k) for k in ("attempt", "merchant", "issuer", "method", "processor",
                                                     "amount", "latency_ms", "code", "fee")})
    df["approved"] = df.code == 0
    df["first"] = df.attempt == 1
    return df


@pytest.mark.parametrize("seed", range(5))
def test_slices_match_pandas_groupby(seed):
    rng = np.random.default_rng(seed)
    batches = [random_batch(rng, int(rng.integers(500, 3000)), t) for t in range(9)]
    batches = [Batch(**{**b.__dict__, "approved": b.code == 0}) for b in batches]
    obs = Observer(U, ObserverSettings(window_ticks=4, baseline_ticks=10))
    for b in batches:
        snap = obs.observe(b)
    df = pd.concat([frame(b) for b in batches[-4:]])
    for dims in (["issuer"], ["processor"], ["issuer", "processor"], ["merchant"], ["method"]):
        ref = df.groupby(dims).agg(attempts=("approved", "size"), approvals=("approved", "sum"),
                                   fees=("fee", "sum"))
        first = df[df["first"]].groupby(dims).agg(payments=("approved", "size"), first_approvals=("approved", "sum"))
        for key, row in ref.iterrows():
            key = key if isinstance(key, tuple) else (key,)
            s = snap.window.slice(dict(zip(dims, map(int, key))))
            assert s.attempts == row.attempts and s.approvals == row.approvals
            assert s.fees == pytest.approx(row.fees)
            if key in first.index or (len(key) == 1 and key[0] in first.index):
                frow = first.loc[key if len(key) > 1 else key[0]]
                assert s.payments == frow.payments and s.first_approvals == frow.first_approvals
    # baseline covers the 5 ticks before the window
    base = pd.concat([frame(b) for b in batches[:-4]])
    assert snap.baseline.total.attempts == len(base)
    assert snap.window.code_mix(U.code_axis.labels)["05"] == int((df.code == 1).sum())


@pytest.mark.parametrize("proc", range(3))
def test_latency_quantiles_within_one_bin(proc):
    rng = np.random.default_rng(11)
    b = random_batch(rng, 20000)
    b = Batch(**{**b.__dict__, "approved": b.code == 0})
    obs = Observer(U)
    snap = obs.observe(b)
    lat = b.latency_ms[b.processor == proc]
    bin_ratio = LAT_EDGES[1] / LAT_EDGES[0]
    for q, got in zip((0.5, 0.95, 0.99), snap.window.latency_quantiles(proc)):
        exact = np.quantile(lat, q)
        assert exact / bin_ratio <= got <= exact * bin_ratio


def test_retry_and_first_attempt_rates_are_separate():
    sim = Simulator(U, seed=2)
    obs = Observer(U)
    for _ in range(8):
        snap = obs.observe(sim.step(ControlPlane(), (Fault(FaultKind.RETRY_STORM, 1.0, merchant="globemart"),)))
    s = snap.window.slice({"merchant": U.index("merchant", "globemart")})
    assert s.attempts == s.payments + s.retries
    assert s.retry_rate < s.first_attempt_rate     # storm retries mostly fail
    assert s.attempts_per_payment > 1.3
    m = U.index("merchant", "globemart")
    assert snap.window.hard_retries[m] > 0                    # the storm retries hard declines ...
    assert snap.window.hard_retries.sum() == snap.window.hard_retries[m]   # ... no sane merchant does


def test_hard_retries_count_retries_whose_previous_attempt_was_a_hard_decline():
    sim, obs = Simulator(U, seed=4), Observer(U)
    storm = (Fault(FaultKind.RETRY_STORM, 1.0, merchant="tixnow"),)
    batches = [sim.step(ControlPlane(), storm) for _ in range(5)]
    for b in batches:
        last = obs.aggregate(b)
        expect = np.bincount(b.merchant[np.isin(b.prev_code, [6, 7, 8])], minlength=len(U.merchants))
        assert np.array_equal(last.hard_retries, expect)
    assert expect[U.index("merchant", "tixnow")] > 0 and (b.prev_code[b.attempt == 1] == -1).all()


def test_tables_by_dimension_agree_with_slices():
    sim, obs = Simulator(U, seed=8), Observer(U)
    for _ in range(7):
        snap = obs.observe(sim.step(ControlPlane(), ()))
    t = snap.window.table("issuer", "processor")
    for i in range(len(U.issuers)):
        for p in range(len(U.processors)):
            s = snap.window.slice({"issuer": i, "processor": p})
            assert (t["attempts"][i, p], t["payments"][i, p], t["first_approvals"][i, p]) == (s.attempts, s.payments, s.first_approvals)
    assert snap.window.table("method")["approvals"].sum() == snap.window.total.approvals


# running sums (from test_observer_running_sums.py): the window and baseline sums must equal summing the ticks
# they cover afresh, and never mutate old snapshots
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
