"""guardrails.py: the one gate that says whether an action may run on its own, and the limits it checks.

One row per reason a human must approve, each with the rule it pins."""
from __future__ import annotations

import pytest

from guardrails import PolicyConfig, approval_reasons, automation_reasons, capacity_reason, traffic_share
from merchant_profiles import DEFAULT_UNIVERSE as U
from tests.helpers import snapshot_after

CFG = PolicyConfig()


@pytest.mark.parametrize("action, params, risk, share, llm_only, words", [
    # a low-risk reroute of a small share, supported by the heuristics: runs on its own
    ("reroute", {"to_processor": "beacon"}, 0.2, 0.1, False, []),
    # risk over the threshold (0.5)
    ("reroute", {}, 0.51, 0.1, False, ["risk 0.510 above 0.50"]),
    # a suppression always needs a human, however safe it looks
    ("suppress", {}, 0.0, 0.01, False, ["suppress always needs a human"]),
    # over the automatic traffic cap (35%)
    ("reroute", {}, 0.2, 0.36, False, ["moves 36% of traffic, over the automatic cap 35%"]),
    # a retry policy allowing more than 3 attempts; 3 is allowed
    ("retry_policy", {"max_attempts": 4}, 0.2, 0.05, False, ["retry policy allows more than 3 attempts"]),
    ("retry_policy", {"max_attempts": 3}, 0.2, 0.05, False, []),
    # a retry policy with no max_attempts at all is not trusted to be small
    ("retry_policy", {}, 0.2, 0.05, False, ["retry policy allows more than 3 attempts"]),
    # only the LLM believes the hypothesis
    ("reroute", {}, 0.2, 0.1, True, ["only the LLM supports this hypothesis"]),
    # every reason at once is listed, none hides another
    ("suppress", {}, 0.9, 0.5, True, ["risk", "always needs", "automatic cap", "only the LLM"]),
])
def test_approval_reasons(action, params, risk, share, llm_only, words):
    why = approval_reasons(action, params, risk, share, CFG, llm_only)
    assert len(why) == len(words) and all(w in r for w, r in zip(words, why))


@pytest.mark.parametrize("recent, paused, words", [
    (0, False, None),
    (2, False, None),                           # under the budget of 3
    (3, False, "automatic action budget spent"),
    (0, True, "paused by the operator"),
])
def test_automation_reasons(recent, paused, words):
    why = automation_reasons(recent, paused, CFG)
    assert why == [] if words is None else (len(why) == 1 and words in why[0])


@pytest.fixture(scope="module")
def snap():
    return snapshot_after()[0]


def test_traffic_share_is_the_slices_share_of_attempts(snap):
    shares = [traffic_share(snap, {"processor": p}) for p in range(len(U.processors))]
    assert sum(shares) == pytest.approx(1.0) and all(0 < s < 1 for s in shares)
    chase = traffic_share(snap, {"issuer": U.index("issuer", "chase")})
    assert chase == pytest.approx(snap.window.slice({"issuer": U.index("issuer", "chase")}).attempts
                                  / snap.window.total.attempts)
    assert traffic_share(snap, {}) == 1.0


def test_capacity_reason_refuses_overloading_a_processor_but_not_a_small_move(snap):
    atlas, cobalt = U.index("processor", "atlas"), U.index("processor", "cobalt")
    whole = capacity_reason(snap, {"processor": atlas}, cobalt, holdout=0.0)
    assert whole and "cobalt would run at" in whole and "over its capacity" in whole
    revolut = {"issuer": U.index("issuer", "revolut"), "processor": cobalt}
    assert capacity_reason(snap, revolut, atlas, holdout=0.1) is None
