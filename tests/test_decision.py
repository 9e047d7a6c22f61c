import pytest

from control_plane import ActionType
from decision import decide
from guardrails import ControlView, PolicyConfig
from learning_policy import LearningSignal
from reasoner import Cause, Hypothesis, heuristic_hypotheses, make_target
from simulator import Fault, FaultKind
from tests.helpers import snapshot_after

DEGRADED = Fault(FaultKind.ISSUER_DEGRADATION, 0.6, issuer="chase", processor="atlas")


@pytest.fixture(scope="module")
def degraded():
    snap, _, _ = snapshot_after([DEGRADED])
    return snap, tuple(heuristic_hypotheses(snap))


def test_same_inputs_same_decision(degraded):
    snap, hyps = degraded
    a = decide(hyps, snap, LearningSignal(), ControlView())
    b = decide(hyps, snap, LearningSignal(), ControlView())
    assert a == b and a.to_dict() == b.to_dict()
    assert a.action is ActionType.REROUTE and dict(a.target) == {"issuer": "chase", "processor": "atlas"}
    assert dict(a.params)["to_processor"] != "atlas" and not a.requires_human_approval


def test_no_hypotheses_is_no_op_with_reason(degraded):
    d = decide((), degraded[0], LearningSignal(), ControlView())
    assert d.is_no_op and "no anomaly" in d.reason


def test_thin_evidence_is_no_op(degraded):
    snap, hyps = degraded
    weak = tuple(Hypothesis(h.cause, h.target, 0.3, h.evidence) for h in hyps)
    d = decide(weak, snap, LearningSignal(), ControlView())
    assert d.is_no_op and "below the 0.600 needed" in d.reason


def test_learning_signal_raises_the_bar(degraded):
    snap, hyps = degraded
    cautious = LearningSignal(extra_confidence=(("reroute", 0.41),))   # needed 1.01: no confidence clears it
    d = decide(hyps, snap, cautious, ControlView())
    assert d.is_no_op and "needed for reroute" in d.reason
    target_caution = LearningSignal(target_caution=((("reroute", ("issuer", "chase")), 0.41),))
    assert decide(hyps, snap, target_caution, ControlView()).is_no_op
    other = LearningSignal(target_caution=((("reroute", ("issuer", "bofa")), 0.41),))
    assert not decide(hyps, snap, other, ControlView()).is_no_op


def test_busy_target_is_not_acted_on_twice(degraded):
    snap, hyps = degraded
    busy = ControlView(busy_targets=frozenset({make_target(issuer="chase", processor="atlas")}))
    d = decide(hyps, snap, LearningSignal(), busy)
    assert d.is_no_op and "already active" in d.reason


@pytest.mark.parametrize("config, flag", [
    (PolicyConfig(risk_threshold=0.1), "risk"),                    # every reroute is now high risk
    (PolicyConfig(max_auto_traffic_share=0.05), "automatic cap"),  # moving ~20% of traffic exceeds the cap
    (PolicyConfig(always_approve=("reroute",)), "always needs a human"),
])
def test_high_risk_requires_human_approval(degraded, config, flag):
    snap, hyps = degraded
    d = decide(hyps, snap, LearningSignal(), ControlView(), config)
    assert d.action is ActionType.REROUTE and d.requires_human_approval
    assert any(flag in g for g in d.guardrails)


def test_rate_limit_and_pause_escalate_to_a_human(degraded):
    snap, hyps = degraded
    assert decide(hyps, snap, LearningSignal(), ControlView(recent_auto_actions=3)).requires_human_approval
    assert decide(hyps, snap, LearningSignal(), ControlView(paused=True)).requires_human_approval


def test_llm_only_hypothesis_needs_a_human(degraded):
    snap, hyps = degraded
    llm_only = tuple(Hypothesis(h.cause, h.target, h.confidence, h.evidence, supported_by_heuristic=False) for h in hyps)
    d = decide(llm_only, snap, LearningSignal(), ControlView())
    assert d.requires_human_approval and any("LLM" in g for g in d.guardrails)


def test_outage_does_not_reroute_on_baseline_hopes():
    snap, _, _ = snapshot_after([Fault(FaultKind.ISSUER_OUTAGE, 0.95, issuer="chase")])
    h = Hypothesis(Cause.ISSUER_OUTAGE, make_target(issuer="chase"), 0.95, ("test",))
    d = decide((h,), snap, LearningSignal(), ControlView())
    assert d.action is not ActionType.REROUTE


def test_retry_storm_back_to_the_usual_retries_runs_on_its_own_for_a_large_merchant_and_a_small_one():
    snap, _, _ = snapshot_after([Fault(FaultKind.RETRY_STORM, 0.8, merchant="globemart"),
                                 Fault(FaultKind.RETRY_STORM, 0.8, merchant="pixelforge")], fault_ticks=8)
    hyps = tuple(h for h in heuristic_hypotheses(snap) if h.cause is Cause.RETRY_STORM)
    assert {dict(h.target)["merchant"] for h in hyps} == {"globemart", "pixelforge"}
    big = decide(tuple(h for h in hyps if dict(h.target)["merchant"] == "globemart"), snap, LearningSignal(), ControlView())
    small = decide(tuple(h for h in hyps if dict(h.target)["merchant"] == "pixelforge"), snap, LearningSignal(), ControlView())
    # mitigate now: back to the merchant's usual attempts, no hard-decline retries, within the agent's authority
    assert big.action is ActionType.RETRY_POLICY and not big.requires_human_approval
    assert dict(big.params)["max_attempts"] == 2 and dict(big.params)["retry_hard_declines"] is False
    assert small.action is ActionType.RETRY_POLICY and not small.requires_human_approval
    assert dict(small.params)["max_attempts"] <= 3
