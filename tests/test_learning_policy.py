"""learning_policy.py, the pure part of learning: past harm raises the confidence an action needs, fades with time,
and never lowers the policy's own bar."""
from __future__ import annotations

import pytest

from actions import Outcome
from learning_policy import (
    LearnerSettings,
    LearningSignal,
    cost_harm,
    derive_signal,
    focus,
    is_harm,
    retry_harm,
)

S = LearnerSettings()


@pytest.mark.parametrize("target, entity", [
    ((("issuer", "chase"), ("processor", "atlas")), ("issuer", "chase")),      # the issuer first
    ({"merchant": "globemart", "processor": "atlas"}, ("merchant", "globemart")),  # then the merchant
    ({"processor": "cobalt"}, ("processor", "cobalt")),
    ({"method": "card"}, None),
])
def test_focus(target, entity):
    assert focus(target) == entity


@pytest.mark.parametrize("outcome, rolled_back, harm", [
    (Outcome.HURT, False, True),
    (Outcome.NEUTRAL, True, True),          # rolled back without helping counts as harm
    (Outcome.INCONCLUSIVE, True, True),
    (Outcome.HELPED, True, False),          # restored after helping is not harm
    (Outcome.NEUTRAL, False, False),
])
def test_is_harm(outcome, rolled_back, harm):
    assert is_harm(outcome, rolled_back) is harm


def test_harm_fades_linearly_and_is_forgotten_after_memory_ticks():
    mem = [{"tick": 100, "action": "reroute", "target": {"issuer": "chase", "processor": "atlas"}, "harm": True}]
    fresh, half, gone = (derive_signal(mem, t) for t in (100, 100 + S.memory_ticks // 2, 101 + S.memory_ticks))
    assert dict(fresh.extra_confidence)["reroute"] == S.caution_per_harm
    assert dict(half.extra_confidence)["reroute"] == pytest.approx(S.caution_per_harm / 2)
    assert dict(fresh.target_caution)[("reroute", ("issuer", "chase"))] == S.target_caution
    assert gone == LearningSignal()


def test_only_harm_counts_and_needed_adds_type_and_entity_caution():
    mem = [{"tick": 0, "action": "reroute", "target": {"issuer": "chase"}, "harm": True},
           {"tick": 0, "action": "retry_policy", "target": {"merchant": "globemart"}, "harm": False}]
    sig = derive_signal(mem, 0)
    assert sig.needed(0.6, "reroute", (("issuer", "chase"), ("processor", "beacon"))) == pytest.approx(0.6 + 0.1 + 0.3)
    assert sig.needed(0.6, "reroute", (("issuer", "bofa"),)) == pytest.approx(0.7)          # the type's caution only
    assert sig.needed(0.6, "retry_policy", (("merchant", "globemart"),)) == 0.6             # no harm, no caution


def test_caution_is_capped():
    mem = [{"tick": 0, "action": "reroute", "target": {"issuer": f"i{k}"}, "harm": True} for k in range(10)]
    sig = derive_signal(mem, 0)
    assert dict(sig.extra_confidence)["reroute"] == LearnerSettings().max_caution


@pytest.mark.parametrize("ratio, cost, retry", [
    (None, False, False),   # not measured: no harm claimed
    (1.1, False, False),
    (1.2, False, True),     # attempts up 20%: retry harm
    (1.3, True, True),      # cost per approval up 30%: cost harm
])
def test_cost_and_retry_harm(ratio, cost, retry):
    assert (cost_harm(ratio), retry_harm(ratio)) == (cost, retry)
