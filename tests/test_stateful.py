"""Issue 7 §11: random sequences of traffic, faults, approvals, rejections, pauses and restarts.

After every step: nothing that needed approval ran without an approval recorded before it; every
applied action is active, rolled back or restored; one active action per target; the automatic
rate limit holds; the control plane equals the replay of the audit log; every state file parses.
"""
import json

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from actions import Status
from agent import Agent
from guardrails import PolicyConfig
from merchant_profiles import DEFAULT_UNIVERSE as U
from recovery import replay_audit
from simulator import Fault, FaultKind, Simulator
from state_writer import STATE_FILES, AuditLog, StateWriter, read_audit, read_json

FAULTS = [
    None,
    Fault(FaultKind.ISSUER_DEGRADATION, 0.7, issuer="chase", processor="atlas"),
    Fault(FaultKind.ISSUER_OUTAGE, 0.9, issuer="bofa"),
    Fault(FaultKind.RETRY_STORM, 0.9, merchant="globemart"),
    Fault(FaultKind.RETRY_STORM, 0.9, merchant="pixelforge"),
    Fault(FaultKind.LATENCY_SPIKE, 0.8, processor="cobalt"),
]


class AgentMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="apo-sm-")
        self.tick, self.now = 0, 0.0
        self.audit = AuditLog(self.dir, lambda: f"t{self.tick}", "test")
        self.writer = StateWriter(self.dir, lambda: f"t{self.tick}")
        self.sim = Simulator(U, seed=13, payments_per_tick=3000)
        self.agent = self._new_agent()

    def _new_agent(self):
        return Agent(U, clock=lambda: self.now, audit=self.audit.append)

    @initialize()
    def warm_up(self):
        self._run(None, 20)

    def _run(self, fault, ticks):
        for _ in range(ticks):
            self.agent.step(self.sim.step(self.agent.control, (fault,) if fault else ()))
            self.tick += 1
            self.now += 10.0
        for name, doc in self.agent.state_documents({"state": "running"}).items():
            self.writer.write(name, doc)

    @rule(fault=st.sampled_from(FAULTS), ticks=st.integers(1, 8))
    def traffic(self, fault, ticks):
        self._run(fault, ticks)

    @rule(data=st.data())
    def approve(self, data):
        pending = self.agent.executor.pending()
        if pending:
            rec = data.draw(st.sampled_from(pending))
            self.agent.executor.approve(rec.id, "ops", self.tick, f"t{self.tick}", rec.params_hash, now=self.now)

    @rule(data=st.data())
    def reject(self, data):
        pending = self.agent.executor.pending()
        if pending:
            self.agent.executor.reject(data.draw(st.sampled_from(pending)).id, "ops", self.tick, f"t{self.tick}")

    @rule(paused=st.booleans())
    def pause(self, paused):
        self.agent.executor.paused = paused

    @rule(replay=st.booleans())
    def approve_garbage(self, replay):
        # replayed or forged approvals: a decided id, an unknown id
        done = [a for a in self.agent.executor.actions.values() if a.status is not Status.PENDING_APPROVAL]
        target = done[0].id if (replay and done) else "A9999"
        assert self.agent.executor.approve(target, "ops", self.tick, "t").startswith("refused")

    @rule()
    def restart(self):
        docs = {name: read_json(f"{self.dir}/{name}") for name in STATE_FILES}
        paused = self.agent.executor.paused
        self.audit = AuditLog(self.dir, lambda: f"t{self.tick}", "test")
        self.agent = self._new_agent()
        self.agent.restore(docs["control_plane.json"], docs["learning.json"], read_audit(f"{self.dir}/audit.jsonl"))
        self.agent.executor.paused = paused

    @rule()
    def wait_past_approval_ttl(self):
        self.now += PolicyConfig().approval_ttl_seconds + 1

    # -- invariants ------------------------------------------------------------------------
    @invariant()
    def approvals_recorded_before_execution(self):
        events = read_audit(f"{self.dir}/audit.jsonl")
        approved = set()
        executed = []
        for e in events:
            if e["event"] == "action_approved":
                approved.add(e["action_id"])
            if e["event"] == "action_executed":
                executed.append(e["action_id"])
                if e["who"] == "operator":          # a human-run action: its approval came first
                    assert e["action_id"] in approved
        assert len(executed) == len(set(executed)), "an action was applied twice"
        for rec in self.agent.executor.actions.values():
            if rec.requires_human_approval and rec.id in self.agent.executor.applied:
                assert rec.id in approved, f"{rec.id} ran without an approval"

    @invariant()
    def applied_actions_are_active_or_ended(self):
        for action_id in self.agent.executor.applied:
            rec = self.agent.executor.actions[action_id]
            assert rec.status in (Status.EXECUTED, Status.ROLLED_BACK, Status.RESTORED, Status.REPLACED)

    @invariant()
    def one_active_action_per_target(self):
        targets = [a.target_key for a in self.agent.executor.active()]
        assert len(targets) == len(set(targets))

    @invariant()
    def automatic_rate_limit_holds(self):
        cfg = PolicyConfig()
        ticks = sorted(a.executed_tick for a in self.agent.executor.actions.values()
                       if a.executed_tick is not None and a.approval is None)
        for k in range(len(ticks)):
            in_window = [t for t in ticks if ticks[k] - cfg.auto_action_window_ticks < t <= ticks[k]]
            assert len(in_window) <= cfg.max_auto_actions

    @invariant()
    def control_plane_equals_audit_replay(self):
        control, _ = replay_audit(read_audit(f"{self.dir}/audit.jsonl"))
        assert control == self.agent.executor.control

    @invariant()
    def state_files_parse(self):
        for name in STATE_FILES:
            doc = read_json(f"{self.dir}/{name}")
            assert doc is not None and json.dumps(doc)


TestAgentMachine = pytest.mark.slow(AgentMachine.TestCase)
TestAgentMachine.settings = settings(max_examples=25, stateful_step_count=15, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])
