"""llm_bounds.py: the bounds on LLM calls: the per-minute budget, the circuit breaker, error classes, accounting."""
from __future__ import annotations

import pytest

from llm_bounds import CircuitBreaker


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
