"""agent.py: one step per tick, observe -> reason -> decide -> act -> learn, and the state it leaves."""
from __future__ import annotations

import json

import pytest

from actions import Status
from agent import Agent
from control_plane import ControlPlane
from merchant_profiles import DEFAULT_UNIVERSE as U
from simulator import Fault, FaultKind, Simulator
from state_writer import STATE_FILES

DEGRADED = (Fault(FaultKind.ISSUER_DEGRADATION, 0.8, issuer="chase", processor="atlas"),)


def drive(agent, ticks=52, fault_from=40, seed=3):
    sim = Simulator(U, seed=seed, payments_per_tick=2000)
    results = []
    for t in range(ticks):
        results.append(agent.step(sim.step(agent.control, DEGRADED if t >= fault_from else ())))
    return results


@pytest.fixture(scope="module")
def run():
    events = []
    agent = Agent(U, audit=events.append)
    return agent, drive(agent), events


def test_a_degraded_path_is_named_acted_on_automatically_and_audited(run):
    agent, results, events = run
    assert all(r.action is None for r in results[:40]) and not any(r.hypotheses for r in results[:40])
    key = ("issuer_degradation", (("issuer", "chase"), ("processor", "atlas")))
    assert key in agent.first_seen and agent.first_seen[key]["tick"] >= 40
    acted = [r.action for r in results if r.action is not None and r.action.status is Status.EXECUTED]
    assert acted and acted[0].action == "reroute" and acted[0].target == {"issuer": "chase", "processor": "atlas"}
    assert [o.issuer for o in agent.control.route_overrides] == ["chase"]
    assert any(e["event"] == "action_executed" and e["action_id"] == acted[0].id for e in events)


def test_each_tick_is_remembered_and_the_incident_carries_the_recommendation(run):
    agent, results, _ = run
    assert len(agent.trend) == len(results) and agent.trend[-1]["hypotheses"] == len(results[-1].hypotheses)
    docs = agent.incident_docs()
    assert len(docs) == 1 and docs[0]["target"] == {"issuer": "chase", "processor": "atlas"} and docs[0]["end"] is None
    assert docs[0]["recommendation"]["action"] == "reroute"


def test_state_documents_are_every_state_file_and_json(run):
    agent, results, _ = run
    docs = agent.state_documents({"state": "running"})
    assert set(docs) == set(STATE_FILES) | {"incidents.json"}           # incidents.json is optional for readers
    json.dumps(docs)                                                    # JSON-ready, no numpy left
    assert docs["status.json"] == {"tick": results[-1].tick, "policy": "agent", "state": "running"}
    assert docs["actions.json"]["actions"] and "awaits approval" not in docs["actions.json"]["actions"][0][
        "explanation_of_status"]


def test_policy_none_reasons_but_never_acts():
    agent = Agent(U, policy="none")
    results = drive(agent)
    assert any(r.hypotheses for r in results) and all(r.decision is None and r.action is None for r in results)
    assert agent.control == ControlPlane() and agent.executor.actions == {}


def test_paused_every_decision_waits_for_a_human_and_the_pause_is_audited():
    events = []
    agent = Agent(U, audit=events.append)
    agent.set_paused(True, "alice", "maintenance")
    results = drive(agent)
    assert agent.paused and events[0] == {"event": "pause", "who": "operator", "reason": "maintenance",
                                          "approver": "alice"}
    proposed = [r.action for r in results if r.action is not None]
    assert proposed and all(a.status is Status.PENDING_APPROVAL for a in proposed)
    assert agent.control == ControlPlane()


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="unknown policy 'yolo'"):
        Agent(U, policy="yolo")


def test_restore_from_the_state_documents_and_the_audit_gives_back_the_same_control(run):
    agent, _, events = run
    docs = json.loads(json.dumps(agent.state_documents({})))
    again = Agent(U)
    repairs = again.restore(docs["control_plane.json"], docs["learning.json"], events)
    assert again.control == agent.control and repairs == []
    assert again.executor.actions.keys() == agent.executor.actions.keys()
