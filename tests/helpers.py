"""Small builders shared by the tests: short scenarios and a seeded run."""
from merchant_profiles import DEFAULT_UNIVERSE
from scenario import parse_scenario


def scenario(*phases, seed=3, payments_per_tick=2000, name="test"):
    """phases: (name, ticks, [fault dicts])."""
    doc = {"name": name, "seed": seed, "payments_per_tick": payments_per_tick,
           "phases": [{"name": n, "ticks": t, "faults": f} for n, t, f in phases]}
    return parse_scenario(doc, DEFAULT_UNIVERSE)


def snapshot_after(fault_list=(), calm_ticks=40, fault_ticks=6, seed=4, payments_per_tick=2000, control=None):
    """A Snapshot after calm traffic then `fault_ticks` of the given faults; returns (snapshot, simulator, observer)."""
    from control_plane import ControlPlane
    from observer import Observer
    from simulator import Simulator
    sim = Simulator(DEFAULT_UNIVERSE, seed=seed, payments_per_tick=payments_per_tick)
    obs = Observer(DEFAULT_UNIVERSE)
    control = control or ControlPlane()
    snap = None
    for t in range(calm_ticks + fault_ticks):
        snap = obs.observe(sim.step(control, tuple(fault_list) if t >= calm_ticks else ()))
    return snap, sim, obs


def demo_until_pending():
    """The demo scenario run up to its first action held for a human: (agent, that action's id)."""
    from pathlib import Path

    import pytest

    from agent import Agent
    from scenario import load_scenario
    from simulator import Simulator
    scenario = load_scenario(Path(__file__).resolve().parent.parent / "scenarios" / "demo.json", DEFAULT_UNIVERSE)
    sim = Simulator(DEFAULT_UNIVERSE, scenario.seed, scenario.payments_per_tick, scenario.tick_seconds,
                    scenario.start_hour)
    agent = Agent(DEFAULT_UNIVERSE)
    for tick in range(scenario.total_ticks):
        agent.step(sim.step(agent.control, scenario.faults_at(tick)))
        pending = agent.executor.pending()
        if pending:
            return agent, pending[0].id
    pytest.fail("the demo scenario no longer holds any action for approval")
