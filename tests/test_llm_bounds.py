"""llm_bounds.py: the bounds on LLM calls: the per-minute budget, the circuit breaker, error classes, accounting."""
from __future__ import annotations

import pytest

from llm_bounds import Accounting, CallBudget, CircuitBreaker, LLMSettings, classify, describe_llm
from llm_contract import FallbackReason


@pytest.mark.parametrize("failures, cooldowns", [
    (3, [300]),                           # opens for the cooldown
    (4, [300, 600]),                      # a failed trial doubles it
    (8, [300, 600, 1200, 2400, 3600, 3600]),   # up to an hour
])
def test_the_breaker_backs_off_from_an_endpoint_that_keeps_failing(failures, cooldowns):
    b, seen, now = CircuitBreaker(3, 300, 3600), [], 0.0
    for _ in range(failures):
        b.record(False, now)
        if b.open_until is not None and b.open_until > now:
            seen.append(b.open_until - now)
            now = b.open_until
    assert seen == cooldowns


def test_the_breaker_closes_on_success_and_forgets_its_growth():
    b = CircuitBreaker(2, 300, 3600)
    b.record(False, 0.0)
    assert b.state(0.0) == "closed" and b.allow(0.0)                     # one failure: still closed
    b.record(False, 1.0)
    assert b.state(1.0) == "open" and not b.allow(200.0)
    assert b.state(301.0) == "half_open" and b.allow(301.0)             # one trial after the cooldown
    b.record(False, 301.0)
    assert b.open_until == 301.0 + 600                                   # a failed trial doubles the pause
    b.record(True, 902.0)
    assert b.state(902.0) == "closed" and (b.consecutive, b.trips) == (0, 0)
    b.record(False, 903.0)
    b.record(False, 904.0)
    assert b.open_until == 904.0 + 300                                   # back to the first cooldown


def test_a_breaker_without_a_maximum_never_grows_its_cooldown():
    b = CircuitBreaker(1, 60)
    for now in (0.0, 60.0, 120.0):
        b.record(False, now)
        assert b.open_until == now + 60


def test_call_budget_is_a_sliding_minute():
    budget = CallBudget(2)
    assert budget.take(0.0) and budget.take(10.0) and not budget.take(59.0)
    assert budget.left(59.0) == 0 and budget.left(60.0) == 1           # the call at 0 s left the window
    assert budget.take(60.5) and not budget.take(69.0) and budget.take(70.0)


@pytest.mark.parametrize("make, reason", [
    (lambda: _api(429), FallbackReason.RATE_LIMITED),                   # not retried
    (lambda: _api(503), FallbackReason.SERVER_ERROR),
    (lambda: _api(504), FallbackReason.TIMEOUT),
    (lambda: _api(408), FallbackReason.TIMEOUT),
    (lambda: _api(401), FallbackReason.REQUEST_REJECTED),
    (lambda: TimeoutError("read"), FallbackReason.TIMEOUT),
    (lambda: type("ConnectError", (Exception,), {})("refused"), FallbackReason.SERVER_ERROR),
    (lambda: ValueError("sdk bug"), FallbackReason.SDK_ERROR),
])
def test_classify(make, reason):
    assert classify(make()) is reason


def _api(code):
    from google.genai import errors
    return errors.APIError(code, {"error": {"code": code, "message": "m", "status": "S"}})


def test_accounting_to_dict_derives_shares_latency_and_cost():
    a = Accounting(consults=4, calls=5, tokens_in=1_000_000, tokens_out=100_000, started_at=0.0, now=1800.0)
    a.fallbacks.update({"timeout": 1})
    a.latencies_ms.extend([100.0, 200.0, 300.0, 400.0])
    a.note_prompt(700)
    a.note_prompt(900)
    d = a.to_dict(LLMSettings())
    assert d["fallback_share"] == 0.25 and d["tokens_in_per_call"] == 200000.0
    assert d["latency_ms"]["p50"] == 300.0 and d["latency_ms"]["max"] == 400.0
    assert d["prompt_tokens_est_max"] == 900 and d["prompt_tokens_est_mean"] == 800
    assert d["cost_usd"] == pytest.approx(0.30 + 0.25) and d["hours"] == 0.5 and d["calls_per_hour"] == 10.0
    empty = Accounting().to_dict(LLMSettings())
    assert empty["fallback_share"] == 0.0 and empty["latency_ms"]["p50"] is None and empty["calls_per_hour"] is None


def test_describe_llm_off_and_on():
    assert describe_llm({"enabled": False, "reason": "no_key"}) == ["  off (no_key): heuristics only"]
    acct = Accounting(consults=2, answered=1, calls=2).to_dict(LLMSettings())
    lines = describe_llm({"enabled": True, "model": "gemini-2.5-flash", "accounting": acct})
    assert lines[0].startswith("  gemini-2.5-flash: 2 ticks wanted it; 1 fresh answers") and "calls 2" in lines[1]
