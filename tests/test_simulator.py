"""simulator.py: seeded payments, faults, routing (overrides, route splits), retries and hard declines."""
import numpy as np

from control_plane import ControlPlane, RetryPolicy, RouteOverride, RouteSplit
from decline_codes import Code
from merchant_profiles import DEFAULT_UNIVERSE as U
from simulator import Fault, FaultKind, Simulator


def run(control, faults, ticks=20, seed=5, ppt=3000):
    sim = Simulator(U, seed=seed, payments_per_tick=ppt)
    return [sim.step(control, faults) for _ in range(ticks)]


def first_rate(batches, **where):
    num = den = 0
    for b in batches:
        m = b.attempt == 1
        for k, v in where.items():
            m &= getattr(b, k) == U.index(k, v)
        num += int(b.approved[m].sum())
        den += int(m.sum())
    return num / den


def test_same_seed_same_payments_under_any_routing():
    a = run(ControlPlane(), (), ticks=3)
    b = run(ControlPlane((RouteOverride("cobalt", issuer="chase"),)), (), ticks=3)
    fa, fb = a[0].attempt == 1, b[0].attempt == 1
    for col in ("payment_id", "merchant", "issuer", "method", "amount"):
        assert np.array_equal(getattr(a[0], col)[fa], getattr(b[0], col)[fb])
    assert not np.array_equal(a[0].processor, b[0].processor)


def test_seed_reproducible_and_seeds_differ():
    a, b, c = run(ControlPlane(), (), 3), run(ControlPlane(), (), 3), run(ControlPlane(), (), 3, seed=6)
    assert all(np.array_equal(x.approved, y.approved) and np.array_equal(x.latency_ms, y.latency_ms) for x, y in zip(a, b))
    assert len(a[0]) != len(c[0]) or not np.array_equal(a[0].amount, c[0].amount)


def test_reroute_really_helps_a_one_path_degradation():
    fault = (Fault(FaultKind.ISSUER_DEGRADATION, 0.6, issuer="chase", processor="atlas"),)
    healthy = first_rate(run(ControlPlane(), ()), issuer="chase")
    degraded = first_rate(run(ControlPlane(), fault), issuer="chase")
    rerouted = first_rate(run(ControlPlane((RouteOverride("beacon", "atlas", "chase"),)), fault), issuer="chase")
    assert degraded < healthy - 0.3
    assert rerouted > degraded + 0.3 and abs(rerouted - healthy) < 0.03


def test_reroute_does_not_help_an_outage():
    fault = (Fault(FaultKind.ISSUER_OUTAGE, 0.9, issuer="barclays"),)
    stay = first_rate(run(ControlPlane(), fault), issuer="barclays")
    moved = first_rate(run(ControlPlane((RouteOverride("atlas", "beacon", "barclays"),)), fault), issuer="barclays")
    assert stay < 0.2 and abs(moved - stay) < 0.03


def test_retry_storm_multiplies_attempts_and_a_cap_stops_it():
    storm = (Fault(FaultKind.RETRY_STORM, 1.0, merchant="pixelforge"),)
    m = U.index("merchant", "pixelforge")

    def per_payment(batches):
        att = sum(int((b.merchant == m).sum()) for b in batches[5:])
        pay = sum(int(((b.merchant == m) & (b.attempt == 1)).sum()) for b in batches[5:])
        return att / pay

    calm, stormy = per_payment(run(ControlPlane(), ())), per_payment(run(ControlPlane(), storm))
    capped = per_payment(run(ControlPlane(retry_policies=(("pixelforge", RetryPolicy(2)),)), storm))
    assert stormy > calm * 1.4
    assert capped < calm * 1.05


def test_latency_spike_slows_and_times_out_one_processor():
    b = run(ControlPlane(), (Fault(FaultKind.LATENCY_SPIKE, 0.8, processor="cobalt"),), ticks=5)[-1]
    c, a = b.processor == U.index("processor", "cobalt"), b.processor == U.index("processor", "atlas")
    assert np.percentile(b.latency_ms[c], 50) > 2.5 * np.percentile(b.latency_ms[a], 50)
    assert (b.code[c] == Code.TIMEOUT).mean() > 0.2 and (b.code[a] == Code.TIMEOUT).sum() == 0


def test_hard_declines_are_not_retried_by_default():
    batches = run(ControlPlane(), (), ticks=15)
    hard_ids = set()
    for b in batches:
        assert not np.isin(b.payment_id[b.attempt > 1], list(hard_ids)).any()
        hard_ids |= set(b.payment_id[np.isin(b.code, [6, 7, 8])].tolist())


def test_route_split_routes_first_attempts_by_its_cdf_and_retries_to_the_next_best():
    nI = len(U.issuers)
    cdf = np.tile([0.0, 1.0, 1.0], (nI, 1))                      # everything to beacon
    order = np.tile([1, 2, 0], (nI, 1)).astype(np.int16)           # beacon, then cobalt
    sim = Simulator(U, 5, 2000)
    control = ControlPlane(route_split=RouteSplit(cdf, order))
    batches = [sim.step(control) for _ in range(4)]
    first = np.concatenate([b.processor[b.attempt == 1] for b in batches])
    second = np.concatenate([b.processor[b.attempt == 2] for b in batches])
    third = np.concatenate([b.processor[b.attempt == 3] for b in batches])
    assert set(first.tolist()) == {1} and len(second) and set(second.tolist()) == {2}
    assert set(third.tolist()) <= {1}                             # failed on cobalt: back to the best other one
    assert ControlPlane.from_dict(control.to_dict()).route_split.cdf.tolist() == cdf.tolist()


def test_route_split_leaves_default_routing_unchanged_when_absent():
    a = [Simulator(U, 9, 500).step(ControlPlane()) for _ in range(1)][0]
    b = Simulator(U, 9, 500).step(ControlPlane(route_split=None))
    assert np.array_equal(a.processor, b.processor) and "route_split" not in ControlPlane().to_dict()


def test_the_most_specific_route_override_wins_whatever_the_order():
    # a processor-wide move onto atlas must not undo chase's own move off atlas, even if it came later
    chase_off_atlas = RouteOverride("beacon", "atlas", "chase")
    cobalt_to_atlas = RouteOverride("atlas", "cobalt")
    for overrides in ((chase_off_atlas, cobalt_to_atlas), (cobalt_to_atlas, chase_off_atlas)):
        b = Simulator(U, 8, 3000).step(ControlPlane(overrides))
        chase = b.issuer == U.index("issuer", "chase")
        assert not np.any(b.processor[chase] == U.index("processor", "atlas"))
        assert not np.any(b.processor == U.index("processor", "cobalt"))
