"""evaluate.py: the baselines, the measures, and one `--quick` benchmark end to end (no test asserts a time)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.baselines import POLICIES, SuccessRateRouter, make_policy
from bench.measures import MEASURES
from bench.trace import addresses, run_policy
from control_plane import (
    ControlPlane,
    RetryPolicy,
    RouteOverride,
    RouteSplit,
    Suppression,
)
from merchant_profiles import DEFAULT_UNIVERSE as U
from scenario import parse_scenario
from simulator import Batch, Fault, FaultKind, Simulator

ROOT = Path(__file__).resolve().parents[1]


def scenario(*faults, ticks=(20, 12, 8), ppt=600):
    phases = [{"name": "baseline", "ticks": ticks[0]}, {"name": "fault", "ticks": ticks[1], "faults": list(faults)},
              {"name": "after", "ticks": ticks[2]}]
    return parse_scenario({"name": "t", "seed": 3, "payments_per_tick": ppt, "phases": phases}, U)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    proc = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, proc


@pytest.mark.slow
def test_quick_runs_every_policy_and_every_measure_is_finite_or_marked(quick):
    out, proc = quick
    doc = json.loads((out / "summary.json").read_text())
    assert doc["policies"] == list(POLICIES)
    assert doc["scenarios"], "no scenario ran"
    for name, sc in doc["scenarios"].items():
        assert set(sc["policies"]) == set(POLICIES), name
        for policy, measures in sc["policies"].items():
            assert set(measures) == set(MEASURES), (name, policy)
            for m, v in measures.items():
                if "na" in v:                                   # n/a is explicit, with a reason
                    assert isinstance(v["na"], str) and v["na"], (name, policy, m)
                else:
                    assert all(math.isfinite(v[k]) for k in ("mean", "lo", "hi")), (name, policy, m, v)
                    assert v["n"] >= 1
    for policy in POLICIES:
        assert set(doc["headline"][policy]) >= {"recovered_share", "time_to_detect", "approval_violations"}
    assert all(isinstance(t["met"], bool) for t in doc["targets"])
    speed = doc["speed"]
    for row in speed["batches"]:
        assert all(math.isfinite(row[k]) and row[k] > 0 for k in ("simulator", "observer", "agent", "loop"))
    assert all(r["peak_rss_mb"] > 0 for r in speed["scaling"])


@pytest.mark.slow
def test_quick_writes_the_report_and_a_chart(quick):
    out, proc = quick
    text = (out / "summary.md").read_text()
    for heading in ("## Targets", "## Headline", "### Recovered share", "## Speed", "## Definitions"):
        assert heading in text
    assert "## Targets" in proc.stdout                       # the tables are printed too
    assert (out / "recovered_share.png").stat().st_size > 1000
    assert "runs" in proc.stderr                              # progress


@pytest.mark.slow
def test_the_agent_never_runs_an_action_that_needed_approval(quick):
    doc = json.loads((quick[0] / "summary.json").read_text())
    for sc in doc["scenarios"].values():
        assert sc["policies"]["agent"]["approval_violations"]["mean"] == 0


@pytest.mark.parametrize("fault, control, expected", [
    # degradation: the path's traffic moved off (90% with a 10% holdout) addresses it; another issuer's move does not
    (Fault(FaultKind.ISSUER_DEGRADATION, 0.6, issuer="chase", processor="atlas"),
     ControlPlane((RouteOverride("beacon", "atlas", "chase", holdout=0.1),)), True),
    (Fault(FaultKind.ISSUER_DEGRADATION, 0.6, issuer="chase", processor="atlas"),
     ControlPlane((RouteOverride("beacon", "atlas", "bofa"),)), False),
    # latency: the whole processor moved; one issuer's share of it is not enough
    (Fault(FaultKind.LATENCY_SPIKE, 0.7, processor="cobalt"), ControlPlane((RouteOverride("beacon", "cobalt"),)), True),
    (Fault(FaultKind.LATENCY_SPIKE, 0.7, processor="cobalt"),
     ControlPlane((RouteOverride("beacon", "cobalt", "revolut"),)), False),
    # retry storm: a cap at or under the merchant's normal attempts, or its retries stopped
    (Fault(FaultKind.RETRY_STORM, 0.8, merchant="glowbox"), ControlPlane(retry_policies=(("glowbox", RetryPolicy(2)),)), True),
    (Fault(FaultKind.RETRY_STORM, 0.8, merchant="glowbox"), ControlPlane(retry_policies=(("glowbox", RetryPolicy(5)),)), False),
    (Fault(FaultKind.RETRY_STORM, 0.8, merchant="glowbox"), ControlPlane(suppressions=(Suppression(merchant="glowbox"),)), True),
    # outage: only stopping the issuer's retries addresses it
    (Fault(FaultKind.ISSUER_OUTAGE, 0.9, issuer="barclays"), ControlPlane((RouteOverride("atlas", "beacon", "barclays"),)), False),
    (Fault(FaultKind.ISSUER_OUTAGE, 0.9, issuer="barclays"), ControlPlane(suppressions=(Suppression(issuer="barclays"),)), True),
])
def test_addresses(fault, control, expected):
    assert addresses(fault, control, U) is expected


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


def test_every_policy_runs_through_run_py(tmp_path):
    import run
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"name": "t", "seed": 3, "payments_per_tick": 400, "phases": [
        {"name": "a", "ticks": 12, "faults": [{"kind": "latency_spike", "processor": "cobalt", "severity": 0.7, "start": 6}]}]}))
    for policy in POLICIES:
        assert run.main(["--quiet", "--policy", policy, "--scenario", str(path), "--state-dir", str(tmp_path / policy)]) == 0


def test_the_most_specific_route_override_wins_whatever_the_order():
    # a processor-wide move onto atlas must not undo chase's own move off atlas, even if it came later
    chase_off_atlas = RouteOverride("beacon", "atlas", "chase")
    cobalt_to_atlas = RouteOverride("atlas", "cobalt")
    for overrides in ((chase_off_atlas, cobalt_to_atlas), (cobalt_to_atlas, chase_off_atlas)):
        b = Simulator(U, 8, 3000).step(ControlPlane(overrides))
        chase = b.issuer == U.index("issuer", "chase")
        assert not np.any(b.processor[chase] == U.index("processor", "atlas"))
        assert not np.any(b.processor == U.index("processor", "cobalt"))
