"""bench/baselines.py: the policies the agent is compared with (success-rate router, oracles, static rule)."""
from __future__ import annotations

import numpy as np

from bench.baselines import SuccessRateRouter, make_policy
from bench.trace import run_policy
from control_plane import ControlPlane, RetryPolicy
from merchant_profiles import DEFAULT_UNIVERSE as U
from scenario import parse_scenario
from simulator import Batch, Simulator


def scenario(*faults, ticks=(20, 12, 8), ppt=600):
    phases = [{"name": "baseline", "ticks": ticks[0]}, {"name": "fault", "ticks": ticks[1], "faults": list(faults)},
              {"name": "after", "ticks": ticks[2]}]
    return parse_scenario({"name": "t", "seed": 3, "payments_per_tick": ppt, "phases": phases}, U)


def test_sr_router_windows_keep_the_last_n_first_attempts_per_path():
    r = SuccessRateRouter(U)
    n = r.router.window
    k = n + 50                                                    # more outcomes on one path than the window holds
    outcome = np.r_[np.zeros(50, bool), np.ones(n, bool)]         # the oldest 50 fail, the last N succeed
    z = np.zeros(k, dtype=np.int16)
    batch = Batch(0, np.arange(k), np.ones(k, np.int16), z, z, z, z, np.ones(k), np.ones(k, np.float32), outcome,
                  np.where(outcome, 0, 1).astype(np.int8), np.zeros(k), new_payments=k)
    r._update(batch)
    assert r.win[0, 0].sum() == n                                 # only the last N kept: all successes


def test_sr_router_moves_a_degraded_issuer_and_hedges():
    s = scenario({"kind": "issuer_degradation", "issuer": "chase", "processor": "atlas", "severity": 0.8})
    sim, r = Simulator(U, 3, 2000), make_policy("sr_router", U, scenario=s)
    for t in range(s.total_ticks):
        batch = sim.step(r.control, s.faults_at(t))
        r.step(batch)
        if t == 25:                                               # five ticks into the fault
            split = np.diff(r.control.route_split.cdf, axis=1, prepend=0.0)[U.index("issuer", "chase")]
            assert split[U.index("processor", "atlas")] <= r.controller.router.hedge / 2 + 1e-9
            assert split.min() > 0                                # exploration keeps every path measured


def test_path_oracle_acts_exactly_inside_the_fault():
    s = scenario({"kind": "issuer_degradation", "issuer": "chase", "processor": "atlas", "severity": 0.6},
                 {"kind": "retry_storm", "merchant": "glowbox", "severity": 0.8})
    o = make_policy("oracle_path", U, scenario=s)
    assert o.controller.control_at(19) == ControlPlane()
    during = o.controller.control_at(20)
    assert [(x.issuer, x.from_processor) for x in during.route_overrides] == [("chase", "atlas")]
    assert during.retry_policy("glowbox") == RetryPolicy(2, 1, False)
    assert o.controller.control_at(32) == ControlPlane()


def test_payment_oracle_routes_every_payment_of_the_hurt_issuer_off_the_failing_path_only_inside_the_fault():
    s = scenario({"kind": "issuer_degradation", "issuer": "chase", "processor": "atlas", "severity": 0.9},
                 {"kind": "retry_storm", "merchant": "glowbox", "severity": 0.8})
    o = make_policy("oracle", U, scenario=s)
    assert o.controller.control_at(19) == ControlPlane() == o.controller.control_at(32)
    during = o.controller.control_at(20)
    split, chase, atlas = during.route_split, U.index("issuer", "chase"), U.index("processor", "atlas")
    assert split is not None and during.retry_policy("glowbox") == RetryPolicy(2, 1, False)
    first = np.diff(split.cdf, prepend=0.0, axis=1)                      # one processor per issuer, probability 1
    assert np.allclose(first.sum(axis=1), 1.0) and np.allclose(first.max(axis=1), 1.0)
    assert first[chase, atlas] == 0.0                                     # 90% of chase's attempts fail on atlas
    assert split.retry_order[chase, 1] != atlas


def test_static_rule_fires_once_and_never_undoes():
    s = scenario({"kind": "issuer_degradation", "issuer": "chase", "processor": "atlas", "severity": 0.9})
    tr = run_policy(s, 3, "static")
    assert tr.actions == 1 and tr.mitigated[0, 20:32].any()
