"""candidates.py: what a candidate action is worth in dollars, and how risky it is (pure arithmetic on a snapshot)."""
from __future__ import annotations

import numpy as np
import pytest

from candidates import Candidate, fee_per_attempt, risk_of, sensitivity, value_per_approval
from control_plane import ActionType
from guardrails import PolicyConfig
from merchant_profiles import DEFAULT_UNIVERSE as U
from reasoner import Cause, Hypothesis, make_target
from tests.helpers import snapshot_after

CFG = PolicyConfig()


@pytest.fixture(scope="module")
def snap():
    return snapshot_after()[0]


def test_value_per_approval_of_an_issuer_blends_its_merchants_margins_by_their_payments(snap):
    i = U.index("issuer", "chase")
    pays = np.array([snap.window.slice({"issuer": i, "merchant": k}).payments for k in range(len(U.merchants))], float)
    blended = U.merchant_arrays["margin"] @ (pays / pays.sum())
    s = snap.window.slice({"issuer": i})
    assert value_per_approval(snap, {"issuer": i}) == pytest.approx(s.approved_amount / s.approvals * blended)


@pytest.mark.xfail(strict=True, reason="bug in candidates.value_per_approval: for a merchant target, "
                   "{**target, 'merchant': m} replaces the merchant, so the margin is blended over every merchant's "
                   "payments instead of being the merchant's own (decision.py values retry-storm fixes with it); "
                   "the fix changes the demo's golden files, so it is left to a deliberate change")
def test_value_per_approval_of_one_merchant_uses_its_own_margin(snap):
    m = U.index("merchant", "globemart")
    s = snap.window.slice({"merchant": m})
    assert value_per_approval(snap, {"merchant": m}) == pytest.approx(
        s.approved_amount / s.approvals * U.merchant_arrays["margin"][m])


def test_sensitivity_of_one_merchant_or_the_traffic_weighted_mix(snap):
    m = U.index("merchant", "skyways")
    assert sensitivity(snap, {"merchant": m}, "latency_sensitivity") == U.merchant_arrays["latency_sensitivity"][m]
    mix = sensitivity(snap, {"issuer": 0}, "decline_sensitivity")
    arr = U.merchant_arrays["decline_sensitivity"]
    assert mix == pytest.approx(arr @ U.merchant_share) and arr.min() <= mix <= arr.max()


def test_fee_per_attempt_charges_the_percentage_only_on_approvals(snap):
    pct, fixed, per_attempt = U.fees
    p = U.index("processor", "beacon")
    assert fee_per_attempt(snap, p, 0.0, 100.0) == pytest.approx(per_attempt[p])
    assert fee_per_attempt(snap, p, 0.8, 100.0) == pytest.approx(per_attempt[p] + 0.8 * (pct[p] * 100 + fixed[p]))


@pytest.mark.parametrize("action, traffic, revenue, sens, risk", [
    ("reroute", 0.1, 0.05, 0.0, 0.25),                   # base 0.15 + the larger of traffic and revenue shares
    (ActionType.REROUTE, 0.05, 0.2, 0.5, 0.40),          # revenue share counts when larger; sensitivity adds 0.1 x
    ("suppress", 0.3, 0.3, 1.0, 1.0),                    # capped at 1
    ("retry_to_usual", 0.02, 0.01, 0.0, 0.07),
])
def test_risk_of(action, traffic, revenue, sens, risk):
    assert risk_of(CFG, action, traffic, revenue, sens) == pytest.approx(risk)


def test_candidate_to_dict_rounds_and_says_why_it_was_rejected():
    h = Hypothesis(Cause.ISSUER_DEGRADATION, make_target(issuer="chase", processor="atlas"), 0.9)
    c = Candidate(ActionType.REROUTE, h.target, (("to_processor", "beacon"),), h, 12.3456, 0.33333, 0.123456,
                  (("success_rate_gain", 0.052345),))
    d = c.to_dict()
    assert d == {"action": "reroute", "target": {"issuer": "chase", "processor": "atlas"},
                 "params": {"to_processor": "beacon"}, "cause": "issuer_degradation", "utility_per_tick": 12.35,
                 "risk": 0.333, "traffic_share": 0.1235, "expected": {"success_rate_gain": 0.0523}}
    from dataclasses import replace
    assert replace(c, reject_reason="over capacity").to_dict()["reason"] == "over capacity"
