"""scenario.py: scenario documents validated against the universe (one-line errors), fault schedules (phases,
ramps, flaps, start and length), the demo file, and live mode's seeded random schedule."""
from __future__ import annotations

from pathlib import Path

import pytest

from merchant_profiles import DEFAULT_UNIVERSE as U
from scenario import (
    RandomFaultSchedule,
    ScenarioError,
    ScenarioSchedule,
    load_scenario,
    make_simulator,
    parse_scenario,
)
from simulator import FaultKind

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("doc, message", [
    ({"phases": [{"name": "x", "ticks": 5, "faults": [{"kind": "meteor", "severity": 1}]}]}, "unknown fault kind 'meteor'; valid: issuer_degradation"),
    ({"phases": [{"name": "x", "ticks": 5, "faults": [{"kind": "issuer_outage", "issuer": "nobank", "severity": 1}]}]}, "unknown issuer 'nobank'; valid: chase"),
    ({"phases": [{"name": "x", "ticks": 5, "faults": [{"kind": "latency_spike", "severity": 1}]}]}, "needs 'processor'"),
    ({"phases": [{"name": "x", "ticks": -3}]}, "'ticks' must be at least 1"),
    ({"phases": []}, "non-empty 'phases'"),
    ([1, 2], "JSON object"),
    ({"phases": [{"name": "x", "ticks": 5, "faults": [{"kind": "retry_storm", "merchant": "globemart", "severity": 3}]}]}, "between 0 and 1"),
])
def test_bad_scenarios_name_the_problem(doc, message):
    with pytest.raises(ScenarioError, match=None) as e:
        parse_scenario(doc, U)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_ramp_and_flap_schedules():
    sc = parse_scenario({"phases": [{"name": "a", "ticks": 10}, {"name": "b", "ticks": 20, "faults": [
        {"kind": "issuer_outage", "issuer": "chase", "severity": 0.8, "ramp_ticks": 4},
        {"kind": "latency_spike", "processor": "atlas", "severity": 0.5, "flap_ticks": 5, "start": 2, "ticks": 15}]}]}, U)
    ramp, flap = sc.faults
    assert [round(ramp.severity_at(t), 2) for t in (9, 10, 11, 13, 29, 30)] == [0, 0.2, 0.4, 0.8, 0.8, 0]
    assert [flap.severity_at(t) for t in (11, 12, 16, 17, 22, 27)] == [0, 0.5, 0.5, 0, 0.5, 0]


def test_phases_follow_each_other_and_a_fault_keeps_inside_its_phase():
    doc = {"name": "n", "seed": 9, "payments_per_tick": 500, "start_hour": 1, "phases": [
        {"name": "calm", "ticks": 10},
        {"name": "bad", "ticks": 8, "faults": [{"kind": "retry_storm", "merchant": "glowbox", "severity": 0.5,
                                                 "start": 3, "ticks": 5}]}]}
    sc = parse_scenario(doc, U)
    assert [(p.name, p.start_tick, p.end_tick) for p in sc.phases] == [("calm", 0, 10), ("bad", 10, 18)]
    assert sc.total_ticks == 18 and sc.seed == 9 and sc.payments_per_tick == 500 and sc.start_hour == 1
    (f,) = sc.faults
    assert (f.start_tick, f.end_tick) == (13, 18)
    assert sc.faults_at(12) == () and sc.faults_at(18) == ()
    (at,) = sc.faults_at(13)
    assert at.kind is FaultKind.RETRY_STORM and at.merchant == "glowbox" and at.severity == 0.5
    doc["phases"][1]["faults"][0]["ticks"] = 6                          # one tick past its phase: refused, not cut
    with pytest.raises(ScenarioError, match="at most 5"):
        parse_scenario(doc, U)


@pytest.mark.parametrize("doc, message", [
    ({"phases": [{"name": "x", "ticks": 2.5}]}, "'ticks' must be at least 1 and at most 100,000 (a whole number)"),
    ({"phases": [{"name": "x", "ticks": True}]}, "(a whole number), got True"),              # a bool is not a number
    ({"phases": [{"name": "x"}]}, "needs 'ticks', a whole number from 1 to 100,000"),
    ({"start_hour": 25, "phases": [{"name": "x", "ticks": 3}]}, "'start_hour' must be at least 0 and below 24"),
    ({"phases": ["calm"]}, "must be an object with 'name' and 'ticks'"),
    ({"phases": [{"name": "x", "ticks": 5, "faults": {"kind": "retry_storm"}}]}, "'faults' must be a list"),
    ({"phases": [{"name": "x", "ticks": 5, "faults": [{"kind": "retry_storm", "merchant": "glowbox"}]}]},
     "needs 'severity'"),
    ({"tick_seconds": 0, "phases": [{"name": "x", "ticks": 5}]}, "'tick_seconds' must be at least 0.001"),
])
def test_more_bad_scenarios_name_the_problem_in_one_line(doc, message):
    with pytest.raises(ScenarioError) as e:
        parse_scenario(doc, U)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_load_scenario_reads_the_demo_and_names_a_missing_or_broken_file(tmp_path):
    demo = load_scenario(ROOT / "scenarios" / "demo.json", U)
    assert demo.total_ticks > 0 and {f.fault.kind for f in demo.faults} >= {FaultKind.ISSUER_DEGRADATION,
                                                                            FaultKind.RETRY_STORM}
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(tmp_path / "nope.json", U)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ScenarioError, match="not valid JSON"):
        load_scenario(tmp_path / "bad.json", U)


def test_make_simulator_takes_the_scenarios_volume_unless_overridden():
    sc = parse_scenario({"payments_per_tick": 700, "tick_seconds": 5, "start_hour": 3, "phases": [{"ticks": 1}]}, U)
    sim = make_simulator(sc, U, seed=4)
    assert (sim.seed, sim.payments_per_tick, sim.tick_seconds, sim.start_hour) == (4, 700, 5, 3)
    assert make_simulator(sc, U, 4, payments_per_tick=50, tick=9).payments_per_tick == 50


def test_scenario_schedule_describes_the_phase_and_the_active_fault():
    sc = parse_scenario({"phases": [{"name": "calm", "ticks": 3}, {"name": "storm", "ticks": 3, "faults": [
        {"kind": "retry_storm", "merchant": "glowbox", "severity": 0.8}]}]}, U)
    sched = ScenarioSchedule(sc)
    assert sched.faults_at(1) == () and sched.describe()["phase"] == "calm" and sched.describe()["active_fault"] is None
    assert len(sched.faults_at(4)) == 1
    d = sched.describe()
    assert d["phase"] == "storm" and d["active_fault"]["target"] == {"merchant": "glowbox"}
    assert len(d["active_faults"]) == 1
    sched.faults_at(6)
    assert sched.describe()["phase"] is None                             # quiet after the last phase


def test_random_schedule_is_seeded_with_quiet_gaps_and_one_fault_at_a_time():
    def trace(seed):
        s = RandomFaultSchedule(U, seed, quiet=(5, 10), length=(3, 6))
        return [s.faults_at(t) for t in range(200)]
    a, b = trace(1), trace(1)
    assert a == b and a != trace(2)
    assert all(len(f) <= 1 for f in a)
    assert a[:5] == [()] * 5                                            # the first quiet gap is at least 5 ticks
    active = [bool(f) for f in a]
    runs = "".join("x" if x else "." for x in active).split(".")
    assert any(runs) and all(len(r) <= 6 for r in runs)                  # each fault lasts under 6 ticks, ramps aside
