"""Mitigate now, escalate the rest, on the demo: every retry storm gets a retry-policy change that runs on its
own while the storm lasts, and an action still waits for a human. Seeds named in issue 14 (1, 2, 3 and 9:
pixelforge's storm once waited for approval; 8 and 10: globemart's)."""
from pathlib import Path

import pytest

from actions import Status
from agent import Agent
from merchant_profiles import DEFAULT_UNIVERSE
from scenario import load_scenario, make_simulator
from simulator import FaultKind

DEMO = Path(__file__).resolve().parent.parent / "scenarios" / "demo.json"
RAN = (Status.EXECUTED, Status.ROLLED_BACK, Status.RESTORED, Status.REPLACED)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 8, 9, 10])
def test_every_storm_gets_an_automatic_retry_policy_and_an_approval_still_waits(seed):
    scenario = load_scenario(DEMO, DEFAULT_UNIVERSE)
    sim, agent = make_simulator(scenario, DEFAULT_UNIVERSE, seed), Agent(DEFAULT_UNIVERSE)
    for tick in range(scenario.total_ticks):
        agent.step(sim.step(agent.control, scenario.faults_at(tick)))
    records = list(agent.executor.actions.values())
    storms = [f for f in scenario.faults if f.fault.kind is FaultKind.RETRY_STORM]
    assert storms
    for f in storms:
        fixes = [a for a in records if a.action == "retry_policy" and a.target == {"merchant": f.fault.merchant}
                 and a.status in RAN and not a.requires_human_approval and f.start_tick <= a.tick < f.end_tick]
        assert fixes, f"{f.fault.merchant}'s storm ran unmitigated on seed {seed}"
    assert any(a.status is Status.PENDING_APPROVAL for a in records)
