"""reroute_candidates.py: reroute candidates scored in dollars and gated. One row per gate, with what it pins."""
from __future__ import annotations

import pytest

from guardrails import ControlView, PolicyConfig
from reasoner import Cause, Hypothesis, make_target
from reroute_candidates import latency_candidates, reroute_candidates
from simulator import Fault, FaultKind
from tests.helpers import snapshot_after

CFG = PolicyConfig()
MIN = 200
CHASE_ATLAS = Hypothesis(Cause.ISSUER_DEGRADATION, make_target(issuer="chase", processor="atlas"), 0.9)
DEGRADED = (Fault(FaultKind.ISSUER_DEGRADATION, 0.6, issuer="chase", processor="atlas"),)


@pytest.fixture(scope="module")
def degraded():
    return snapshot_after(DEGRADED)[0]


def by_dest(cands):
    return {dict(c.params)["to_processor"]: c for c in cands}


def test_a_degraded_path_moves_to_a_healthy_processor_with_a_holdout_and_a_positive_value(degraded):
    cands = by_dest(reroute_candidates(CHASE_ATLAS, degraded, CFG, MIN, ControlView()))
    assert set(cands) == {"beacon", "cobalt"}
    for c in cands.values():
        p = dict(c.params)
        assert c.target == CHASE_ATLAS.target and p["from_processor"] == "atlas"
        assert CFG.holdout <= p["holdout"] <= CFG.max_holdout
    best = max(cands.values(), key=lambda c: c.utility)
    assert best.reject_reason is None and best.utility > 0 and dict(best.expected)["success_rate_gain"] > 0.2


@pytest.mark.parametrize("view, min_holdout, reasons", [
    # _route_conflict: an active reroute already moves chase off atlas; what is left there is its holdout
    (ControlView(rerouted=frozenset({("chase", "atlas", "beacon")})), 0.0,
     {"beacon": "already moves this traffic off atlas", "cobalt": "already moves this traffic off atlas"}),
    # _route_conflict: cobalt's traffic was moved onto atlas: atlas carries it, and cobalt's guard window decides
    (ControlView(rerouted=frozenset({(None, "cobalt", "atlas")})), 0.0,
     {"beacon": "atlas carries traffic of an active reroute", "cobalt": "traffic was moved off cobalt"}),
    # _settling: atlas's routing changed within the last window; its numbers do not show it yet
    (ControlView(settling=frozenset({("chase", "atlas")})), 0.0,
     {"beacon": "routing of atlas changed", "cobalt": "routing of atlas changed"}),
    # _too_thin: a holdout that would see fewer payments per window than a verdict needs
    (ControlView(), 10_000.0, {"beacon": "too thin to judge", "cobalt": "too thin to judge"}),
])
def test_gates_reject_each_destination_with_their_reason(degraded, view, min_holdout, reasons):
    cands = by_dest(reroute_candidates(CHASE_ATLAS, degraded, CFG, MIN, view, min_holdout=min_holdout))
    assert set(cands) == set(reasons)
    assert all(words in (cands[q].reject_reason or "") for q, words in reasons.items())


def test_a_destination_not_measured_healthier_is_not_worth_it():
    # _not_worth_it: no fault; cobalt approves chase less than atlas does now, so moving there has no value
    snap = snapshot_after()[0]
    cobalt = by_dest(reroute_candidates(CHASE_ATLAS, snap, CFG, MIN, ControlView()))["cobalt"]
    assert dict(cobalt.expected)["success_rate_gain"] < 0 and cobalt.utility < 0
    assert "cobalt is not measured healthier" in cobalt.reject_reason


def test_a_whole_processor_move_never_leaves_an_issuer_without_a_healthy_route():
    # _unhealthy_for: cobalt is slow, and itau fails on beacon: moving all of cobalt to beacon is refused
    snap = snapshot_after([Fault(FaultKind.LATENCY_SPIKE, 0.8, processor="cobalt"),
                           Fault(FaultKind.ISSUER_DEGRADATION, 0.9, issuer="itau", processor="beacon")],
                          payments_per_tick=6000)[0]
    h = Hypothesis(Cause.LATENCY_SPIKE, make_target(processor="cobalt"), 0.95)
    cands = by_dest(reroute_candidates(h, snap, CFG, MIN, ControlView()))
    assert "without a healthy route" in (cands["beacon"].reject_reason or "")
    assert "without a healthy route" not in (cands["atlas"].reject_reason or "")


def test_latency_candidates_split_a_processor_over_the_cap_issuer_by_issuer():
    snap = snapshot_after([Fault(FaultKind.LATENCY_SPIKE, 0.8, processor="atlas")])[0]
    h = Hypothesis(Cause.LATENCY_SPIKE, make_target(processor="atlas"), 0.95)
    cands = latency_candidates(h, snap, CFG, MIN, ControlView(), 0.0)
    whole = [c for c in cands if dict(c.target) == {"processor": "atlas"}]
    split = [c for c in cands if "issuer" in dict(c.target)]
    assert whole and all(c.traffic_share > CFG.max_auto_traffic_share and c.reject_reason for c in whole)
    assert split and all(c.traffic_share <= CFG.max_auto_traffic_share for c in split)
    assert {dict(c.target)["issuer"] for c in split} >= {"chase", "bofa"}        # atlas's two large issuers
