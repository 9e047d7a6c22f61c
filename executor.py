"""Act: apply decisions to the control plane, hold high-risk ones for a human, judge, roll back, restore.

The executor owns the control plane; nothing else changes routing. It enforces
approval itself: an action that needs a human is applied only with an approval
recorded against the hash of its exact parameters, and any action id is applied
at most once (an effect ledger). After applying, it judges the action every guard
window (learning_policy.judge_*) and rolls back what hurt or did not help, and
restores a reroute once the old path is measured healthy on its holdout.

Never decides what to do and never calls the LLM.
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

import numpy as np

from control_plane import ControlPlane, apply_action, remove_action
from decision import ActionType, ControlView, Decision, PolicyConfig
from learning_policy import (
    JudgeSettings,
    Outcome,
    Verdict,
    judge_reroute,
    judge_retry,
    path_recovered,
)
from merchant_profiles import Universe
from observer import SliceStats, Snapshot, Stats, histogram_quantiles


class Status(str, Enum):
    EXECUTED = "executed"
    PENDING_APPROVAL = "pending_approval"
    ROLLED_BACK = "rolled_back"
    RESTORED = "restored"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ApprovalError(RuntimeError):
    """An action that needs a human was about to run without a valid approval."""


def params_hash(action: str, target: dict, params: dict) -> str:
    blob = json.dumps({"action": action, "target": target, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class ActionRecord:
    id: str
    tick: int
    action: str
    target: dict
    params: dict
    cause: str | None
    confidence: float
    risk: float
    requires_human_approval: bool
    status: Status
    explanation: str
    params_hash: str
    guardrails: list = field(default_factory=list)
    expected: dict = field(default_factory=dict)
    proposed_at: float = 0.0              # clock seconds, for approval expiry
    executed_tick: int | None = None
    ended_tick: int | None = None
    outcome: str = "pending"
    verdicts: list = field(default_factory=list)
    end_reason: str | None = None
    approval: dict | None = None
    baseline_rate: float | None = None
    baseline_p95: float | None = None
    before: dict | None = None
    guard: list = field(default_factory=list)   # per-tick slices of the last guard windows
    ticks_active: int = 0
    healthy_streak: int = 0                     # guard windows in a row in which the old path looked healthy
    restore_after: int = 1                      # healthy windows in a row needed before restoring (more if it flapped)

    @property
    def target_key(self) -> tuple:
        return tuple(sorted(self.target.items()))

    def to_dict(self) -> dict:
        return {**self.__dict__, "status": self.status.value}

    @classmethod
    def from_dict(cls, d: dict) -> "ActionRecord":
        return cls(**{**d, "status": Status(d["status"])})


def _add_slices(parts: list[dict]) -> SliceStats:
    keys = SliceStats.__dataclass_fields__
    return SliceStats(**{k: sum(p[k] for p in parts) for k in keys})


def _add_hists(parts: list[list]) -> np.ndarray | None:
    parts = [p for p in parts if p is not None]
    return np.sum(np.array(parts), axis=0) if parts else None


class Executor:
    """Owns the control plane and the action records. `audit(event)` is called before every change."""

    def __init__(self, universe: Universe, config: PolicyConfig = PolicyConfig(),
                 judge: JudgeSettings = JudgeSettings(), control: ControlPlane = ControlPlane(),
                 audit: Callable[[dict], None] | None = None, kill_switch: Callable[[], bool] | None = None):
        self.universe = universe
        self.config = config
        self.judge = judge
        self.control = control
        self.actions: dict[str, ActionRecord] = {}
        self.applied: dict[str, str] = {}       # effect ledger: action id -> params hash of the effect applied
        self.paused = False                      # the operator's pause: no automatic execution
        self.audit = audit or (lambda event: None)
        self.kill_switch = kill_switch or (lambda: False)   # a global stop: no execution at all
        self._lock = threading.RLock()
        self.next_id = 1
        self.restored_at: dict[tuple, int] = {}     # target -> tick of its last restore (a quick return means it flaps)

    def __getstate__(self) -> dict:            # copies and pickles carry no lock
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # -- views ------------------------------------------------------------------------
    def view(self, tick: int) -> ControlView:
        busy = frozenset(a.target_key for a in self.actions.values()
                         if a.status in (Status.EXECUTED, Status.PENDING_APPROVAL))
        rerouted = frozenset((a.target.get("issuer"), a.params["from_processor"], a.params["to_processor"])
                             for a in self.active() if a.action == ActionType.REROUTE.value)
        since = tick - self.judge.guard_ticks
        settling = frozenset((a.target.get("issuer"), a.params[end]) for a in self.actions.values()
                             if a.action == ActionType.REROUTE.value and a.ended_tick is not None and a.ended_tick > since
                             for end in ("from_processor", "to_processor"))
        return ControlView(busy, rerouted, self.recent_auto_actions(tick), self.paused or self.kill_switch(), settling)

    def recent_auto_actions(self, tick: int) -> int:
        since = tick - self.config.auto_action_window_ticks
        return sum(1 for a in self.actions.values()
                   if a.executed_tick is not None and a.executed_tick > since and a.approval is None)

    def active(self) -> list[ActionRecord]:
        return [a for a in self.actions.values() if a.status is Status.EXECUTED]

    def pending(self) -> list[ActionRecord]:
        return [a for a in self.actions.values() if a.status is Status.PENDING_APPROVAL]

    def needs_human(self, action: str, target: dict, params: dict, risk: float, flagged: bool) -> list[str]:
        """The executor's own gate; the decision's flag can only add to it."""
        why = ["flagged by the decision"] if flagged else []
        if risk > self.config.risk_threshold:
            why.append("risk above threshold")
        if action in self.config.always_approve:
            why.append(f"{action} always needs a human")
        if action == ActionType.RETRY_POLICY.value and params.get("max_attempts", 99) > self.config.max_auto_attempts:
            why.append("retry policy allows too many attempts")
        return why

    def invalid_target(self, target: dict) -> str | None:
        """Why a target cannot be acted on at all: empty, 'all', or naming no known entity."""
        if not target:
            return "target is empty"
        for key, name in target.items():
            if name in (None, "", "all", "*"):
                return f"target {key} is '{name}': actions must name one slice"
            if key not in ("issuer", "processor", "merchant", "method") or name not in self.universe.names(key):
                return f"unknown {key} {name!r}"
        return None

    def _event(self, event: str, rec: ActionRecord, who: str = "agent", reason: str | None = None,
               result: str = "success", **extra) -> None:
        self.audit({"event": event, "who": who, "action_id": rec.id, "action_type": rec.action, "target": rec.target,
                    "params": rec.params, "risk": round(rec.risk, 4), "params_hash": rec.params_hash,
                    "approval_ref": (rec.approval or {}).get("ref"), "reason": reason, "result": result, **extra})

    # -- submit, approve, reject, expire ---------------------------------------------------
    def submit(self, decision: Decision, tick: int, snap: Snapshot, explanation: str = "",
               now: float = 0.0) -> ActionRecord | None:
        if decision.is_no_op:
            return None
        target, params = dict(decision.target), dict(decision.params)
        with self._lock:
            rec = ActionRecord(
                id=f"A{self.next_id:04d}", tick=tick, action=decision.action.value, target=target,
                params=params, cause=decision.cause, confidence=decision.confidence, risk=decision.risk,
                requires_human_approval=False, status=Status.PENDING_APPROVAL, explanation=explanation,
                params_hash=params_hash(decision.action.value, target, params), guardrails=list(decision.guardrails),
                expected=dict(decision.expected), proposed_at=now)
            self.actions[rec.id] = rec
            self.next_id += 1
            invalid = self.invalid_target(target) or self._over_capacity(rec, snap)
            if invalid:
                rec.status, rec.ended_tick, rec.outcome, rec.end_reason = Status.REJECTED, tick, "rejected", f"refused: {invalid}"
                self._event("action_refused", rec, reason=rec.end_reason, result="failure")
                return rec
            why = self.needs_human(rec.action, target, params, rec.risk, decision.requires_human_approval)
            share = self._traffic_share(rec, snap)
            if share > self.config.max_auto_traffic_share:
                why.append(f"touches {100 * share:.0f}% of traffic, over the automatic cap")
            if not why and (self.paused or self.kill_switch()):
                why.append("automation paused (kill switch)")
            if not why and self.recent_auto_actions(tick) >= self.config.max_auto_actions:
                why.append("automatic action rate limit reached")
            rec.requires_human_approval = bool(why)
            self._capture_before(rec, snap)
            if why:
                self._event("action_pending_approval", rec, reason="; ".join(why))
            else:
                self._apply(rec, tick)
            return rec

    def approve(self, action_id: str, approver: str, tick: int, at: str, approved_hash: str | None = None,
                now: float | None = None, ref: str | None = None) -> str:
        with self._lock:
            rec = self.actions.get(action_id)
            if rec is None:
                return f"refused: no action {action_id} was ever proposed"
            if rec.status is not Status.PENDING_APPROVAL:
                return f"refused: {action_id} is {rec.status.value}, not pending approval"
            if approved_hash is not None and approved_hash != rec.params_hash:
                self._event("approval_refused", rec, who="operator", reason="parameters changed since approval",
                            result="failure", approver=approver)
                return f"refused: the approval was for other parameters than {action_id} has now"
            if now is not None and now - rec.proposed_at > self.config.approval_ttl_seconds:
                self._expire(rec, tick)
                return f"refused: {action_id} expired before it was approved"
            if self.kill_switch():
                return "refused: the kill switch is on"
            rec.approval = {"by": approver, "at": at, "tick": tick, "params_hash": rec.params_hash,
                            "ref": ref or f"{action_id}:{rec.params_hash}:{at}"}
            self._event("action_approved", rec, who="operator", approver=approver)   # recorded before execution
            self._apply(rec, tick, who="operator")
            return f"approved: {action_id} executed"

    def reject(self, action_id: str, approver: str, tick: int, at: str) -> str:
        with self._lock:
            rec = self.actions.get(action_id)
            if rec is None or rec.status is not Status.PENDING_APPROVAL:
                return f"refused: {action_id} is not pending approval"
            rec.status, rec.ended_tick, rec.outcome = Status.REJECTED, tick, "rejected"
            rec.approval = {"rejected_by": approver, "at": at, "tick": tick}
            self._event("action_rejected", rec, who="operator", approver=approver)
            return f"rejected: {action_id}"

    def expire(self, tick: int, now: float) -> list[ActionRecord]:
        """Pending approvals older than the approval TTL expire; an operator must see them proposed again."""
        with self._lock:
            old = [r for r in self.pending() if now - r.proposed_at > self.config.approval_ttl_seconds]
            for rec in old:
                self._expire(rec, tick)
            return old

    def _expire(self, rec: ActionRecord, tick: int) -> None:
        rec.status, rec.ended_tick, rec.outcome = Status.EXPIRED, tick, "expired"
        rec.end_reason = f"no approval within {self.config.approval_ttl_seconds:.0f} s"
        self._event("action_expired", rec, reason=rec.end_reason)

    # -- effects on the control plane -------------------------------------------------------
    def _apply(self, rec: ActionRecord, tick: int, who: str = "agent") -> None:
        if rec.requires_human_approval and (rec.approval is None or rec.approval.get("params_hash") != rec.params_hash):
            raise ApprovalError(f"{rec.id} needs a recorded human approval before it can run")
        if rec.id in self.applied:
            if self.applied[rec.id] != rec.params_hash:
                raise ApprovalError(f"{rec.id} was applied with other parameters: an id is never reused")
            raise ApprovalError(f"{rec.id} was already applied once")
        self._event("action_executed", rec, who=who)
        self.control = apply_action(self.control, rec.action, rec.target, rec.params, rec.id)
        self.applied[rec.id] = rec.params_hash
        rec.status, rec.executed_tick, rec.guard, rec.ticks_active = Status.EXECUTED, tick, [], 0
        flapped = tick - self.restored_at.get(rec.target_key, -10 ** 9) <= self.judge.flap_memory_ticks
        rec.restore_after, rec.healthy_streak = (self.judge.restore_windows if flapped else 1), 0

    def _end(self, rec: ActionRecord, status: Status, tick: int, reason: str) -> None:
        self._event("action_" + status.value, rec, reason=reason)
        self.control = remove_action(self.control, rec.action, rec.target, rec.id)
        rec.status, rec.ended_tick, rec.end_reason, rec.guard = status, tick, reason, []
        if status is Status.RESTORED:
            self.restored_at[rec.target_key] = tick

    def _source(self, rec: ActionRecord) -> dict[str, int]:
        """The slice an action touches, as codes: a reroute's old path, else its target."""
        if rec.action != ActionType.REROUTE.value:
            return self._codes(rec.target)
        return self._codes({k: v for k, v in {"issuer": rec.target.get("issuer"),
                                              "processor": rec.params["from_processor"]}.items() if v})

    def _traffic_share(self, rec: ActionRecord, snap: Snapshot) -> float:
        return snap.window.slice(self._source(rec)).attempts / max(snap.window.total.attempts, 1)

    def _over_capacity(self, rec: ActionRecord, snap: Snapshot) -> str | None:
        """A reroute must not push its destination past capacity (measured load + what it moves)."""
        if rec.action != ActionType.REROUTE.value:
            return None
        u, w = self.universe, snap.window
        per_tick = 1.0 / max(w.ticks, 1)
        src = self._source(rec)
        dst = u.index("processor", rec.params["to_processor"])
        moved = w.slice(src).attempts * per_tick * (1 - rec.params.get("holdout", 0.0))
        load = w.slice({"processor": dst}).attempts * per_tick
        capacity = u.processors[dst].capacity_share * w.total.attempts * per_tick
        if load + moved > capacity:
            return f"{rec.params['to_processor']} would carry {load + moved:.0f} attempts/tick, over its capacity {capacity:.0f}"
        return None

    def prune(self, keep_finished: int = 200) -> None:
        """Bound memory in endless runs: keep every active and pending record and the newest finished ones."""
        with self._lock:
            done = [a.id for a in self.actions.values() if a.status not in (Status.EXECUTED, Status.PENDING_APPROVAL)]
            for action_id in done[:-keep_finished] if keep_finished else done:
                del self.actions[action_id]
            live = {a.id for a in self.actions.values()}
            self.applied = {k: v for k, v in self.applied.items() if k in live or k in done[-keep_finished:]}

    # -- judging -------------------------------------------------------------------
    def _codes(self, d: dict) -> dict[str, int]:
        return {k: self.universe.index(k, v) for k, v in d.items()}

    def _capture_before(self, rec: ActionRecord, snap: Snapshot) -> None:
        src = self._source(rec)
        if rec.action == ActionType.REROUTE.value:
            rec.baseline_rate = snap.baseline.slice(src).first_attempt_rate
            rec.baseline_p95 = snap.baseline.latency_quantiles(src["processor"])[1]
        else:
            rec.before = snap.window.slice(src).__dict__.copy()

    def _guard_entry(self, rec: ActionRecord, last: Stats) -> dict:
        """What the judge needs of one tick for this action: a few slices, not the whole cube."""
        if rec.action != ActionType.REROUTE.value:
            return {"after": last.slice(self._codes(rec.target)).__dict__}
        u = self.universe
        src, dst = u.index("processor", rec.params["from_processor"]), u.index("processor", rec.params["to_processor"])
        scope = {"issuer": u.index("issuer", rec.target["issuer"])} if "issuer" in rec.target else {}
        return {"treated": last.slice({**scope, "processor": dst}).__dict__,
                "holdout": last.slice({**scope, "processor": src}).__dict__,
                "lat_treated": last.latency_hist[dst].tolist(), "lat_holdout": last.latency_hist[src].tolist()}

    def review(self, tick: int, last: Stats, urgent: frozenset = frozenset()) -> list[ActionRecord]:
        """Feed one tick to every active action; judge those at a guard-window boundary, and at once those
        in `urgent` (a reroute whose new path the reasoner now flags as failing)."""
        changed = []
        g = self.judge.guard_ticks
        with self._lock:
            for rec in self.active():
                rec.guard = (rec.guard + [self._guard_entry(rec, last)])[-g * self.judge.max_windows:]
                rec.ticks_active += 1
                n = rec.ticks_active
                if n % g and not (rec.id in urgent and n >= g):
                    continue
                verdict, recovered = self._judge(rec, rec.guard[-g:])
                latest = dict(verdict.metrics)
                if verdict.outcome is Outcome.INCONCLUSIVE and len(rec.guard) > g:
                    # too thin in one window (a small issuer's holdout): judge on every window so far instead;
                    # whether the old path is healthy again stays a question about the latest window
                    verdict, _ = self._judge(rec, rec.guard)
                rec.verdicts = (rec.verdicts + [{"tick": tick, "outcome": verdict.outcome.value, "reason": verdict.reason,
                                                 "metrics": {k: round(v, 4) for k, v in verdict.metrics}}])[-10:]
                before = rec.outcome
                as_good = verdict.outcome is Outcome.NEUTRAL and before == "helped" and rec.action == ActionType.REROUTE.value
                rec.healthy_streak = rec.healthy_streak + 1 if recovered or as_good else 0
                if verdict.outcome is Outcome.HURT and before != "helped":
                    rec.outcome = "hurt"      # worse than the holdout from the start: the action itself hurt
                    self._end(rec, Status.ROLLED_BACK, tick, verdict.reason)
                elif rec.healthy_streak and (rec.healthy_streak >= rec.restore_after or verdict.outcome is Outcome.HURT):
                    rec.outcome = "helped" if before in ("helped", "pending") else before
                    self._end(rec, Status.RESTORED, tick, "old path healthy again on the holdout: "
                              f"{100 * latest.get('holdout_rate', 0):.1f}% vs {100 * (rec.baseline_rate or 0):.1f}% before "
                              "the fault" if recovered else "old path as good as the new one again: " + verdict.reason)
                elif rec.healthy_streak:
                    pass              # the path flapped before: one healthy window is not enough to move traffic back
                elif verdict.outcome is Outcome.HURT and before == "helped" and rec.action == ActionType.REROUTE.value:
                    # it helped while it was on; the new path has failed since: move back, without blaming the action
                    self._end(rec, Status.RESTORED, tick, "new path now worse than the old one: " + verdict.reason)
                elif verdict.outcome is Outcome.HURT:
                    rec.outcome = "hurt"      # a retry policy that helped at first and hurts now
                    self._end(rec, Status.ROLLED_BACK, tick, verdict.reason)
                elif verdict.outcome is Outcome.NEUTRAL:
                    rec.outcome = "neutral"
                    self._end(rec, Status.ROLLED_BACK, tick, "did not help: " + verdict.reason)
                elif verdict.outcome is Outcome.INCONCLUSIVE and n >= g * self.judge.max_windows:
                    rec.outcome = "inconclusive" if before == "pending" else before
                    self._end(rec, Status.ROLLED_BACK, tick,
                              f"inconclusive for {self.judge.max_windows} windows: {verdict.reason}")
                elif verdict.outcome is Outcome.HELPED:
                    rec.outcome = "helped"
                if rec.outcome != before or rec.status is not Status.EXECUTED:
                    changed.append(rec)
        return changed

    def _judge(self, rec: ActionRecord, g: list[dict]) -> tuple[Verdict, bool]:
        if rec.action != ActionType.REROUTE.value:
            return judge_retry(_add_slices([e["after"] for e in g]), SliceStats(**rec.before), self.judge), False
        treated, holdout = _add_slices([e["treated"] for e in g]), _add_slices([e["holdout"] for e in g])
        p95_t = histogram_quantiles(_add_hists([e["lat_treated"] for e in g]), (0.95,))[0]
        p95_h = histogram_quantiles(_add_hists([e["lat_holdout"] for e in g]), (0.95,))[0]
        latency_matters = "issuer" not in rec.target or rec.cause == "latency_spike"
        verdict = judge_reroute(treated, holdout, p95_t if latency_matters else None,
                                p95_h if latency_matters else None, self.judge)
        return verdict, path_recovered(holdout, rec.baseline_rate, p95_h, rec.baseline_p95, self.judge)

    # -- persistence -----------------------------------------------------------------
    def to_dict(self) -> dict:
        with self._lock:
            return {"control_plane": self.control.to_dict(), "actions": [a.to_dict() for a in self.actions.values()],
                    "applied": dict(sorted(self.applied.items())), "paused": self.paused, "next_id": self.next_id,
                    "restored_at": [[dict(t), tick] for t, tick in self.restored_at.items()]}

    def load(self, d: dict) -> None:
        """Resume from to_dict(): control plane, every action record with its guard window, the ledger."""
        with self._lock:
            self.control = ControlPlane.from_dict(d.get("control_plane", {}))
            self.actions = {a["id"]: ActionRecord.from_dict(a) for a in d.get("actions", [])}
            self.applied = dict(d.get("applied", {}))
            self.paused = bool(d.get("paused", False))
            self.next_id = int(d.get("next_id", len(self.actions) + 1))
            self.restored_at = {tuple(sorted(t.items())): tick for t, tick in d.get("restored_at", [])}


_STATUS_EVENTS = {"action_executed": Status.EXECUTED, "action_rolled_back": Status.ROLLED_BACK,
                  "action_restored": Status.RESTORED, "action_rejected": Status.REJECTED,
                  "action_refused": Status.REJECTED, "action_expired": Status.EXPIRED,
                  "action_pending_approval": Status.PENDING_APPROVAL}


def replay_audit(events: list[dict]) -> tuple[ControlPlane, dict[str, dict]]:
    """The control plane the audit log implies, and each action's last recorded status and details.

    Pure: events in, values out. The executor's state must always equal this replay.
    """
    control, last = ControlPlane(), {}
    for e in events:
        status = _STATUS_EVENTS.get(e.get("event"))
        if status is None or not e.get("action_id"):
            continue
        if status is Status.EXECUTED:
            control = apply_action(control, e["action_type"], e["target"], e["params"], e["action_id"])
        elif status in (Status.ROLLED_BACK, Status.RESTORED) and last.get(e["action_id"], {}).get("status") is Status.EXECUTED:
            control = remove_action(control, e["action_type"], e["target"], e["action_id"])
        last[e["action_id"]] = {**e, "status": status}
    return control, last


def reconcile(ex: Executor, events: list[dict]) -> list[str]:
    """After a crash: bring the executor in line with its audit log (the log is written first).

    Returns one line per repair. Records the state file never saw are rebuilt from the log;
    their guard window starts afresh.
    """
    control, last = replay_audit(events)
    repairs = []
    for action_id, e in last.items():
        rec = ex.actions.get(action_id)
        if rec is None:
            rec = ActionRecord(id=action_id, tick=e.get("tick", 0), action=e["action_type"], target=e["target"],
                               params=e["params"], cause=None, confidence=0.0, risk=e.get("risk", 0.0),
                               requires_human_approval=e["status"] is Status.PENDING_APPROVAL,
                               status=e["status"], explanation="rebuilt from the audit log after a restart",
                               params_hash=e.get("params_hash", ""))
            ex.actions[action_id] = rec
            repairs.append(f"{action_id}: rebuilt from the audit log as {e['status'].value}")
        elif rec.status is not e["status"]:
            repairs.append(f"{action_id}: {rec.status.value} in state, {e['status'].value} in the audit log")
            rec.status = e["status"]
            if e["status"] in (Status.ROLLED_BACK, Status.RESTORED):
                rec.end_reason = e.get("reason")
    for e in events:                       # the ledger: every id whose effect the log saw applied
        if e.get("event") == "action_executed":
            ex.applied.setdefault(e["action_id"], e.get("params_hash", ""))
    if control != ex.control:
        repairs.append("control plane rebuilt from the audit log")
        ex.control = control
    numbers = [int(a[1:]) for a in ex.actions if a[1:].isdigit()]
    ex.next_id = max([ex.next_id] + [n + 1 for n in numbers])
    return repairs
