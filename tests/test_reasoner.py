import pytest

from reasoner import Cause, heuristic_hypotheses
from run import run_scenario
from simulator import Fault, FaultKind
from tests.helpers import scenario, snapshot_after


@pytest.mark.parametrize("fault, cause, target", [
    (Fault(FaultKind.ISSUER_DEGRADATION, 0.6, issuer="bofa", processor="atlas"), Cause.ISSUER_DEGRADATION,
     {"issuer": "bofa", "processor": "atlas"}),
    (Fault(FaultKind.LATENCY_SPIKE, 0.6, processor="beacon"), Cause.LATENCY_SPIKE, {"processor": "beacon"}),
    (Fault(FaultKind.RETRY_STORM, 0.8, merchant="dashbite"), Cause.RETRY_STORM, {"merchant": "dashbite"}),
])
def test_each_fault_is_named_with_its_target(fault, cause, target):
    snap, _, _ = snapshot_after([fault], fault_ticks=6)
    top = heuristic_hypotheses(snap)
    assert top and top[0].cause is cause and top[0].target_dict == target
    assert 0 <= top[0].confidence <= 1 and top[0].evidence


def test_outage_is_told_from_a_path_problem_when_peers_are_measured():
    # capital_one splits 85/7.5/7.5 over the processors: at 6000 payments/tick every path is measured
    snap, _, _ = snapshot_after([Fault(FaultKind.ISSUER_OUTAGE, 0.8, issuer="capital_one")], payments_per_tick=6000)
    causes = {(h.cause, tuple(h.target)) for h in heuristic_hypotheses(snap)}
    assert (Cause.ISSUER_OUTAGE, (("issuer", "capital_one"),)) in causes
    assert not any(c is Cause.ISSUER_DEGRADATION for c, _ in causes)


def test_latency_spike_explains_away_issuer_drops_on_that_processor():
    snap, _, _ = snapshot_after([Fault(FaultKind.LATENCY_SPIKE, 0.9, processor="atlas")])
    hs = heuristic_hypotheses(snap)
    assert hs[0].cause is Cause.LATENCY_SPIKE
    assert not any(h.cause is Cause.ISSUER_DEGRADATION and h.target_dict.get("processor") == "atlas" for h in hs)


def test_thin_slices_trigger_nothing():
    # 150 payments per tick: every issuer x processor slice stays under the minimum sample count
    snap, _, _ = snapshot_after([Fault(FaultKind.ISSUER_DEGRADATION, 0.9, issuer="revolut", processor="beacon")],
                                payments_per_tick=150)
    assert heuristic_hypotheses(snap) == []


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ppt", [300, 2000, 8000])
def test_no_action_on_fault_free_traffic(seed, ppt):
    res = run_scenario(scenario(("calm", 150, []), seed=seed, payments_per_tick=ppt), seed)
    assert res.agent.executor.actions == {}
    assert res.agent.first_seen == {}
    assert res.agent.last.decision.is_no_op and "no anomaly" in res.agent.last.decision.reason
