"""explainability.py: plain-language text for what the agent saw, believed, chose and undid."""
from __future__ import annotations

import pytest

from control_plane import ActionType
from decision import Decision
from explainability import (
    explain_decision,
    explain_hypothesis,
    explain_observation,
    explain_outcome,
    explain_tradeoffs,
)
from reasoner import Cause, Hypothesis, Source, make_target

H = Hypothesis(Cause.RETRY_STORM, make_target(merchant="globemart"), 0.874, ("attempts per payment 2.1 vs 1.3",
                                                                             "first-attempt flat"), Source.GEMINI)


def test_observation():
    text = explain_observation({"success_rate": 0.812, "baseline_success_rate": 0.85, "first_attempt_success_rate": 0.8,
                                "attempts_per_payment": 1.234, "p95_latency_ms": 812.4})
    assert text == ("Success rate 81.2% (baseline 85.0%), first attempt 80.0%, 1.23 attempts per payment, "
                    "p95 812 ms.")
    assert "n/a" in explain_observation({}) and "0.00 attempts" in explain_observation({})     # nothing seen yet


def test_hypothesis_names_cause_target_confidence_source_and_evidence():
    assert explain_hypothesis(H) == ("retry storm at merchant globemart (confidence 0.87, gemini): "
                                     "attempts per payment 2.1 vs 1.3; first-attempt flat")


def decision(**over):
    d = dict(action=ActionType.RETRY_POLICY, reason="storm", target=(("merchant", "globemart"),),
             params=(("max_attempts", 2),), cause="retry_storm", confidence=0.87, risk=0.31, needed_confidence=0.6,
             expected=(("attempts_saved_per_tick", 412.4), ("approvals_lost_per_tick", 1.26)))
    return Decision(**{**d, **over})


def test_an_automatic_decision_says_what_why_and_what_it_expects():
    text = explain_decision(decision())
    assert text.startswith("Retry policy merchant globemart with {'max_attempts': 2} because of retry_storm "
                           "(confidence 0.87, needed 0.60, risk 0.31).")
    assert "Expected to save 412 attempts/tick for 1.3 approvals/tick." in text
    assert text.endswith("Executed automatically: within risk, traffic and rate limits.")


def test_a_decision_waiting_for_a_human_says_which_guardrails():
    d = decision(action=ActionType.REROUTE, target=(("issuer", "chase"), ("processor", "atlas")),
                 params=(("to_processor", "beacon"),), requires_human_approval=True,
                 guardrails=("risk 0.62 above 0.50", "moves 40% of traffic"),
                 expected=(("success_rate_gain", 0.052), ("attempts_moved_per_tick", 480.0),
                           ("fee_delta_per_attempt", -0.0123)))
    text = explain_decision(d)
    assert "Expected success-rate gain +5.2 pp on 480 attempts/tick, fee change $-0.012 per attempt." in text
    assert text.endswith("Waiting for a human: risk 0.62 above 0.50; moves 40% of traffic.")


def test_no_op():
    assert explain_decision(Decision(ActionType.NO_OP, "no anomaly")) == "No action: no anomaly."


def test_tradeoffs_one_line_per_alternative_with_why_it_lost():
    from candidates import Candidate
    alts = (Candidate(ActionType.REROUTE, (("issuer", "chase"),), (("to_processor", "cobalt"),), H, 3.5, 0.3, 0.1,
                      reject_reason="cobalt over capacity"),
            Candidate(ActionType.SUPPRESS, (("merchant", "globemart"),), (), H, 1.234, 0.7, 0.1))
    assert explain_tradeoffs(decision(alternatives=alts)) == [
        "reroute issuer chase -> cobalt: cobalt over capacity", "suppress merchant globemart: lower value ($1.23/tick)"]


@pytest.mark.parametrize("action, text", [
    ({"id": "A0002", "status": "rolled_back", "action": "reroute", "target": {"issuer": "barclays"},
      "end_reason": "did not help"}, "Rolled back A0002 (reroute issuer barclays): did not help."),
    ({"id": "A0003", "status": "restored", "action": "reroute", "target": {"issuer": "chase"},
      "end_reason": "old path healthy"}, "Restored the default route for A0003: old path healthy."),
    ({"id": "A0004", "status": "pending_approval", "action": "retry_policy", "target": {"merchant": "globemart"}},
     "A0004 (retry_policy merchant globemart) awaits approval."),
    ({"id": "A0005", "status": "executed", "action": "retry_policy", "target": {}, "outcome": "helped"},
     "A0005 executed, outcome helped."),
])
def test_outcome(action, text):
    assert explain_outcome(action) == text
