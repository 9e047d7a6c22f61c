"""The loop: one step per tick, observe -> reason -> decide -> act -> learn, and the state it leaves.

Agent wires the stages and keeps bounded histories for the dashboard and the
report. It sees only the batches the simulator made; it never reads the fault
schedule. With policy "none" it observes and reasons but never acts.

Each tick's hypotheses are also held as incidents (incidents.py): where, since when,
how large, and the action the agent took or proposed for each (its recommendation);
each incident carries a short note for people (incident_notes.py), from a template, or
from the optional note writer (Gemini). Incidents and notes are for people: nothing
the agent decides reads them.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from actions import ActionRecord, Outcome, Status
from control_plane import ControlPlane
from decision import Decision, decide
from executor import Executor
from explainability import (
    explain_decision,
    explain_hypothesis,
    explain_observation,
    explain_outcome,
    explain_tradeoffs,
)
from guardrails import PolicyConfig
from incident_notes import NoteKeeper
from incidents import Incident, IncidentTracker
from judge import JudgeSettings
from learner import Learner
from learning_policy import LearnerSettings, LearningSignal
from merchant_profiles import Universe
from observer import Observer, ObserverSettings, Snapshot
from reasoner import Cause, Reasoner, ReasonerSettings
from recovery import reconcile
from sequential import SequentialSettings
from simulator import Batch

HISTORY = 720          # ticks of trend kept in memory and in metrics.json (2 h at 10 s ticks)
EVENT_HISTORY = 200    # hypotheses, decisions and closed incidents kept for the dashboard


@dataclass(frozen=True)
class AgentSettings:
    # a CUSUM per issuer x processor path, so a thin path that fails hard is found within a few windows
    observer: ObserverSettings = ObserverSettings(sequential=SequentialSettings(views=(("issuer", "processor"),)))
    reasoner: ReasonerSettings = ReasonerSettings()
    policy: PolicyConfig = PolicyConfig()
    judge: JudgeSettings = JudgeSettings()
    learner: LearnerSettings = LearnerSettings()
    incident_close_ticks: int = 6    # a window's worth: a slice the window still remembers is the same incident
    note_after_ticks: int = 3        # an incident named this many ticks has a size worth a note from the LLM


@dataclass(frozen=True)
class StepResult:
    tick: int
    snapshot: Snapshot
    hypotheses: tuple
    decision: Decision | None
    action: ActionRecord | None
    changed: tuple[ActionRecord, ...] = ()
    llm_status: dict = field(default_factory=dict)


class Controller(Protocol):
    """A baseline's own routing (bench/baselines.py). It replaces decide and act; the agent still observes and
    reasons, so reports and the dashboard work the same."""
    name: str
    control: ControlPlane
    changes: list[dict]          # every routing change it made: {"tick", "action", "target", "params"}

    def update(self, batch: Batch, snap: Snapshot) -> None: ...


class Agent:
    POLICIES = ("agent", "none")

    def __init__(self, universe: Universe, settings: AgentSettings = AgentSettings(), policy: str = "agent",
                 llm=None, summarizer=None, clock=None, audit=None, kill_switch=None,
                 controller: Controller | None = None, note_writer=None, stamp=None):
        """clock() returns seconds (simulated in run.py, wall time in worker.py); audit(event) records changes;
        stamp() is the time as ISO 8601 (incident times). With a controller, the agent observes and reasons only,
        and the controller routes (policy: its name). note_writer (the LLM, optional) writes incident notes."""
        if policy not in self.POLICIES:
            raise ValueError(f"unknown policy {policy!r}; valid: {', '.join(self.POLICIES)}")
        self.universe = universe
        self.settings = settings
        self.controller = controller
        self.policy = controller.name if controller else policy
        self.observer = Observer(universe, settings.observer)
        self.reasoner = Reasoner(settings.reasoner, llm)
        self.executor = Executor(universe, settings.policy, settings.judge, audit=audit, kill_switch=kill_switch)
        self.clock = clock or (lambda: 0.0)
        self.learner = Learner(settings.learner, summarizer)
        self.trend: deque[dict] = deque(maxlen=HISTORY)
        self.hypothesis_log: deque[dict] = deque(maxlen=EVENT_HISTORY)
        self.decision_log: deque[dict] = deque(maxlen=EVENT_HISTORY)
        self.first_seen: dict[tuple, dict] = {}
        self.last: StepResult | None = None
        self.llm_status: dict = {"enabled": llm is not None}
        self.incidents = IncidentTracker(close_after=settings.incident_close_ticks)
        self.notes = NoteKeeper(note_writer, after_ticks=settings.note_after_ticks)
        self.stamp = stamp or (lambda: None)
        self._stamps: dict[int, str] = {}
        self._no_action: dict[str, str] = {}     # incident id -> why the agent proposed nothing (last NO_OP naming it)

    @property
    def control(self) -> ControlPlane:
        return self.controller.control if self.controller else self.executor.control

    def step(self, batch: Batch) -> StepResult:
        tick = batch.tick
        snap = self.observer.observe(batch)                          # observe
        reasoning = self.reasoner.reason(snap)                       # reason
        self.llm_status = reasoning.llm_status or self.llm_status
        now = self.clock()
        changed = tuple(self.executor.review(tick, snap.last, self._urgent(reasoning.hypotheses)))  # judge what is applied
        changed += tuple(self.executor.expire(tick, now))
        for rec in changed:                                          # learn
            if rec.outcome is not Outcome.PENDING:
                self.learner.record(rec, tick)
        decision, action = None, None
        if self.policy == "agent":
            signal: LearningSignal = self.learner.signal(tick)
            decision = decide(reasoning.hypotheses, snap, signal, self.executor.view(tick),
                              self.settings.policy, self.settings.reasoner.min_payments,
                              self.settings.judge.min_holdout / self.settings.judge.max_windows_thin)   # decide
            action = self.executor.submit(decision, tick, snap, explain_decision(decision), now)  # act
            if decision.escalation is not None and action is not None and action.status is Status.EXECUTED:
                self.executor.submit(decision.escalation, tick, snap, explain_decision(decision.escalation), now,
                                     replaces=action.id)              # mitigate now, escalate the rest
        result = StepResult(tick, snap, reasoning.hypotheses, decision, action, changed, self.llm_status)
        self._track_incidents(result)
        self._remember(result)
        self.last = result
        if self.controller:
            self.controller.update(batch, snap)
        return result

    # -- incidents ---------------------------------------------------------------------
    def _time_of(self, tick: int) -> str:
        return self._stamps.get(tick) or f"tick {tick}"

    def _track_incidents(self, r: StepResult) -> None:
        """Fold this tick's hypotheses into incidents, note the action taken for one, refresh the notes."""
        stamp = self.stamp()
        if stamp is not None:
            self._stamps[r.tick] = stamp
            self._stamps.pop(r.tick - 4 * self.incidents.close_after - 8, None)
        u, snap = self.universe, r.snapshot

        def impact(target: dict) -> tuple[int, float]:
            codes = {k: u.index(k, v) for k, v in target.items()}
            now, base = snap.last.slice(codes), snap.baseline.slice(codes)
            rate = base.first_attempt_rate
            return now.payments, (max(0.0, now.payments * rate - now.first_approvals) if rate is not None else 0.0)

        self.incidents.update(r.tick, r.hypotheses, impact, self._time_of)
        live = self.incidents.open_incidents()
        if r.action is not None:
            inc = self._incident_for(r.action.cause, r.action.target, live)
            if inc is not None:
                inc.recommendation = {"action_id": r.action.id, "action": r.action.action, "target": r.action.target,
                                      "params": r.action.params, "risk": round(r.action.risk, 3),
                                      "requires_human_approval": r.action.requires_human_approval,
                                      "status": r.action.status.value,
                                      "expected": {k: round(v, 4) for k, v in r.decision.expected},
                                      "confidence": round(r.decision.confidence, 3),
                                      "reasons": [r.decision.reason, *r.decision.guardrails]}
        elif r.decision is not None and r.decision.is_no_op:
            for inc in live:
                if inc.recommendation is None and inc.cause in r.decision.reason and all(
                        str(v) in r.decision.reason for v in inc.target.values()):
                    self._no_action[inc.id] = r.decision.reason
        for inc in live:
            if inc.recommendation is None:
                inc.no_recommendation_reason = self._no_action.get(inc.id) or (
                    "the agent only observes (policy none)" if self.policy == "none" else
                    f"a baseline ({self.policy}) routes here; the agent only observes" if self.controller else
                    "no action proposed for it yet")
        self.notes.update(live, self._time_of(r.tick))
        self.incidents.prune(EVENT_HISTORY)

    @staticmethod
    def _incident_for(cause: str | None, target: dict, live: list[Incident]) -> Incident | None:
        """The open incident an action is about: one named with its cause that shares a value with its target."""
        values = set(target.items())
        return next((i for i in live if any(c == cause for c, _ in i.named) and values & i.values()), None)

    def incident_docs(self) -> list[dict]:
        """Every incident kept, with its recommendation's status as the executor has it now."""
        out = []
        for inc in self.incidents.incidents:
            d = inc.to_dict()
            rec = d.get("recommendation")
            if rec and rec.get("action_id") in self.executor.actions:
                d["recommendation"] = {**rec, "status": self.executor.actions[rec["action_id"]].status.value}
            out.append(d)
        return out

    def _urgent(self, hypotheses) -> frozenset:
        """Active reroutes whose new path is now flagged failing: judged at once, not at the next guard window."""
        failing = {(h.target_dict.get("issuer"), h.target_dict["processor"]) for h in hypotheses
                   if h.cause in (Cause.ISSUER_DEGRADATION, Cause.LATENCY_SPIKE) and "processor" in h.target_dict}
        return frozenset(a.id for a in self.executor.active() if a.is_reroute and (
            (a.target.get("issuer"), a.params["to_processor"]) in failing or (None, a.params["to_processor"]) in failing))

    # -- the operator's hand (commands.py) --------------------------------------------
    @property
    def paused(self) -> bool:
        return self.executor.paused

    def set_paused(self, paused: bool, by: str, reason: str | None = None) -> None:
        """Pause or resume automation: while paused every decision waits for approval; guard windows still judge."""
        self.executor.paused = paused
        event = "pause" if paused else "resume"
        self.executor.audit({"event": event, "who": "operator" if by != "worker" else "agent",
                             "reason": reason or f"{event} by {by}", "approver": by})

    def approve(self, action_id: str, by: str, tick: int, at: str, params_hash: str, ref: str | None = None) -> str:
        return self.executor.approve(action_id, by, tick, at, params_hash, now=self.clock(), ref=ref)

    def reject(self, action_id: str, by: str, tick: int, at: str) -> str:
        return self.executor.reject(action_id, by, tick, at)

    def prune(self) -> None:
        """Bound memory in endless runs (finished action records)."""
        self.executor.prune()

    # -- persistence -------------------------------------------------------------------
    def restore(self, control_doc: dict | None, learning_doc: dict | None,
                audit_events: list[dict] | None) -> list[str]:
        """Resume after a restart: executor records, guard windows, ledger and learner memory, then
        reconcile with the audit log (written before every change, so it wins). Returns the repairs made.
        audit_events None: the log is not trusted (a broken chain), so nothing in it is replayed."""
        if control_doc:
            self.executor.load(control_doc)
        if learning_doc:
            self.learner.load(learning_doc)
        return [] if audit_events is None else reconcile(self.executor, audit_events, self.clock())

    # -- bounded histories ------------------------------------------------------------
    def _remember(self, r: StepResult) -> None:
        s = r.snapshot.summary()
        s["p95_by_processor"] = {p: r.snapshot.window.latency_quantiles(i)[1]
                                 for i, p in enumerate(self.universe.processor_names)}
        s["p50_by_processor"] = {p: r.snapshot.window.latency_quantiles(i)[0]
                                 for i, p in enumerate(self.universe.processor_names)}
        s["hypotheses"] = len(r.hypotheses)
        s["action"] = r.action.id if r.action else None
        before = {h.key for h in self.last.hypotheses} if self.last else set()   # self.last is the previous tick
        s["detected"] = [{"cause": h.cause.value, "target": h.target_dict} for h in r.hypotheses if h.key not in before]
        self.trend.append(s)
        for h in r.hypotheses:
            if h.key not in self.first_seen:
                self.first_seen[h.key] = {"tick": r.tick, **h.to_dict()}
            self.hypothesis_log.append({"tick": r.tick, **h.to_dict()})
        if r.decision is not None and (not r.decision.is_no_op or not self.decision_log
                                       or self.decision_log[-1]["reason"] != r.decision.reason):
            self.decision_log.append({"tick": r.tick, **r.decision.to_dict(),
                                      "action_id": r.action.id if r.action else None})

    def issuer_table(self) -> list[dict]:
        snap = self.last.snapshot
        min_n = self.settings.reasoner.min_payments
        rows = []
        for i, name in enumerate(self.universe.issuer_names):
            w, b = snap.window.slice({"issuer": i}), snap.baseline.slice({"issuer": i})
            rows.append({"issuer": name, "payments": w.payments, "first_attempt_success_rate": w.first_attempt_rate,
                         "success_rate": w.success_rate, "baseline_first_attempt_success_rate": b.first_attempt_rate,
                         "thin": w.payments < min_n})
        return rows

    def _controller_state(self) -> dict:
        if self.controller is None:
            return {}
        return {"control_plane": self.controller.control.to_dict(), "policy_log": self.controller.changes[-200:]}

    # -- state documents ---------------------------------------------------------------
    def state_documents(self, status: dict) -> dict[str, dict]:
        """Everything the dashboard reads, as JSON-ready documents keyed by file name."""
        r = self.last
        snap = r.snapshot
        summary = snap.summary()
        decision = r.decision.to_dict() if r.decision else None
        explanation = {
            "observation": explain_observation(summary),
            "hypotheses": [explain_hypothesis(h) for h in r.hypotheses],
            "decision": explain_decision(r.decision) if r.decision else "Policy 'none': observing only.",
            "tradeoffs": explain_tradeoffs(r.decision) if r.decision else [],
            "guardrails": list(r.decision.guardrails) if r.decision else [],
        }
        actions = [{k: v for k, v in a.to_dict().items() if k != "guard"} for a in self.executor.actions.values()]
        for a in actions:
            a["explanation_of_status"] = explain_outcome(a)
        return {
            "metrics.json": {"tick": r.tick, "summary": summary, "issuers": self.issuer_table(),
                             "processors": [{"processor": p, "p50_ms": snap.window.latency_quantiles(i)[0],
                                             "p95_ms": snap.window.latency_quantiles(i)[1],
                                             "p99_ms": snap.window.latency_quantiles(i)[2],
                                             "first_attempt_success_rate": snap.window.slice({"processor": i}).first_attempt_rate}
                                            for i, p in enumerate(self.universe.processor_names)],
                             "error_codes": snap.window.code_mix(self.universe.code_axis.labels), "trend": list(self.trend)},
            "hypotheses.json": {"tick": r.tick, "latest": [h.to_dict() for h in r.hypotheses],
                                "history": list(self.hypothesis_log), "llm": self.llm_status},
            "actions.json": {"tick": r.tick, "decision": decision, "explanation": explanation,
                             "actions": actions[-EVENT_HISTORY:], "decisions": list(self.decision_log),
                             "pending": [a for a in actions if a["status"] == Status.PENDING_APPROVAL.value]},
            "learning.json": {"tick": r.tick, "effectiveness": self.learner.get_action_effectiveness_stats(),
                              "signal": _signal_dict(self.learner.signal(r.tick)), **self.learner.to_dict()},
            "control_plane.json": {"tick": r.tick, **self.executor.to_dict(), **self._controller_state()},
            "status.json": {"tick": r.tick, "policy": self.policy, **status},
            "incidents.json": {"tick": r.tick, "time": self._time_of(r.tick) if r.tick in self._stamps else None,
                               "incidents": self.incident_docs(), "open": len(self.incidents.open_incidents())},
        }


def _signal_dict(sig: LearningSignal) -> dict:
    return {"extra_confidence": dict(sig.extra_confidence),
            "target_caution": [{"action": a, "entity": dict([t]), "extra": v} for (a, t), v in sig.target_caution]}
