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
from collections import deque
from dataclasses import dataclass, field, replace
from enum import Enum

from decision import ActionType, ControlView, Decision, PolicyConfig
from learning_policy import (JudgeSettings, Outcome, Verdict, judge_reroute, judge_retry, path_recovered)
from merchant_profiles import Universe
from observer import LAT_EDGES, SliceStats, Snapshot, Stats, sum_stats
from simulator import ControlPlane, RetryPolicy, RouteOverride, Suppression


class Status(str, Enum):
    EXECUTED = "executed"
    PENDING_APPROVAL = "pending_approval"
    ROLLED_BACK = "rolled_back"
    RESTORED = "restored"
    REJECTED = "rejected"


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
    executed_tick: int | None = None
    ended_tick: int | None = None
    outcome: str = "pending"
    verdicts: list = field(default_factory=list)
    end_reason: str | None = None
    approval: dict | None = None
    baseline_rate: float | None = None
    baseline_p95: float | None = None
    before: dict | None = None

    @property
    def target_key(self) -> tuple:
        return tuple(sorted(self.target.items()))

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        d["status"] = self.status.value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ActionRecord":
        return cls(**{**d, "status": Status(d["status"])})


class Executor:
    def __init__(self, universe: Universe, config: PolicyConfig = PolicyConfig(),
                 judge: JudgeSettings = JudgeSettings(), control: ControlPlane = ControlPlane()):
        self.universe = universe
        self.config = config
        self.judge = judge
        self.control = control
        self.actions: dict[str, ActionRecord] = {}
        self.applied: set[str] = set()          # effect ledger: ids whose effect reached the control plane
        self.paused = False
        self._windows: dict[str, deque[Stats]] = {}
        self._ticks_active: dict[str, int] = {}
        self._healthy_streak: dict[str, int] = {}    # guard windows in a row in which the old path looked healthy
        self._restore_after: dict[str, int] = {}     # healthy windows in a row needed before restoring
        self._restored_at: dict[tuple, int] = {}     # target -> tick of its last restore (a quick return means it flaps)

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
        return ControlView(busy, rerouted, self.recent_auto_actions(tick), self.paused, settling)

    def recent_auto_actions(self, tick: int) -> int:
        since = tick - self.config.auto_action_window_ticks
        return sum(1 for a in self.actions.values()
                   if a.executed_tick is not None and a.executed_tick > since and a.approval is None)

    def active(self) -> list[ActionRecord]:
        return [a for a in self.actions.values() if a.status is Status.EXECUTED]

    def needs_human(self, action: str, target: dict, params: dict, risk: float, flagged: bool) -> list[str]:
        """The executor's own gate; the decision's flag can only add to it."""
        why = ["flagged by the decision"] if flagged else []
        if not target or any(v in (None, "", "all", "*") for v in target.values()):
            why.append("target is empty or 'all'")
        if risk > self.config.risk_threshold:
            why.append("risk above threshold")
        if action in self.config.always_approve:
            why.append(f"{action} always needs a human")
        if action == ActionType.RETRY_POLICY.value and params.get("max_attempts", 99) > self.config.max_auto_attempts:
            why.append("retry policy allows too many attempts")
        return why

    # -- submit, approve, reject --------------------------------------------------------
    def submit(self, decision: Decision, tick: int, snap: Snapshot, explanation: str = "") -> ActionRecord | None:
        if decision.is_no_op:
            return None
        target, params = dict(decision.target), dict(decision.params)
        rec = ActionRecord(
            id=f"A{len(self.actions) + 1:04d}", tick=tick, action=decision.action.value, target=target,
            params=params, cause=decision.cause, confidence=decision.confidence, risk=decision.risk,
            requires_human_approval=False, status=Status.PENDING_APPROVAL, explanation=explanation,
            params_hash=params_hash(decision.action.value, target, params), guardrails=list(decision.guardrails),
            expected=dict(decision.expected))
        why = self.needs_human(rec.action, target, params, rec.risk, decision.requires_human_approval)
        if not why and self.paused:
            why.append("kill switch: automation paused")
        if not why and self.recent_auto_actions(tick) >= self.config.max_auto_actions:
            why.append("automatic action rate limit reached")
        rec.requires_human_approval = bool(why)
        self._capture_before(rec, snap)
        self.actions[rec.id] = rec
        if not why:
            self._apply(rec, tick)
        return rec

    def approve(self, action_id: str, approver: str, tick: int, at: str, approved_hash: str | None = None) -> str:
        rec = self.actions.get(action_id)
        if rec is None:
            return f"refused: no action {action_id}"
        if rec.status is not Status.PENDING_APPROVAL:
            return f"refused: {action_id} is {rec.status.value}, not pending approval"
        if approved_hash is not None and approved_hash != rec.params_hash:
            return f"refused: approval was for other parameters than {action_id} has now"
        rec.approval = {"by": approver, "at": at, "tick": tick, "params_hash": rec.params_hash}
        self._apply(rec, tick)
        return f"approved: {action_id} executed"

    def reject(self, action_id: str, approver: str, tick: int, at: str) -> str:
        rec = self.actions.get(action_id)
        if rec is None or rec.status is not Status.PENDING_APPROVAL:
            return f"refused: {action_id} is not pending approval"
        rec.status, rec.ended_tick, rec.outcome = Status.REJECTED, tick, "rejected"
        rec.approval = {"rejected_by": approver, "at": at, "tick": tick}
        return f"rejected: {action_id}"

    # -- effects on the control plane -------------------------------------------------------
    def _apply(self, rec: ActionRecord, tick: int) -> None:
        if rec.requires_human_approval and (rec.approval is None or rec.approval.get("params_hash") != rec.params_hash):
            raise ApprovalError(f"{rec.id} needs a recorded human approval before it can run")
        if rec.id in self.applied:
            raise ApprovalError(f"{rec.id} was already applied once")
        c, t, p = self.control, rec.target, rec.params
        if rec.action == ActionType.REROUTE.value:
            ov = RouteOverride(to_processor=p["to_processor"], from_processor=p.get("from_processor"),
                               issuer=t.get("issuer"), merchant=t.get("merchant"), holdout=p.get("holdout", 0.0),
                               action_id=rec.id, holdout_first_only=self.config.holdout_first_attempts_only)
            self.control = replace(c, route_overrides=c.route_overrides + (ov,))
        elif rec.action == ActionType.RETRY_POLICY.value:
            pol = RetryPolicy(p["max_attempts"], p.get("min_backoff_ticks", 1), p.get("retry_hard_declines", False))
            rest = tuple(x for x in c.retry_policies if x[0] != t["merchant"])
            self.control = replace(c, retry_policies=tuple(sorted(rest + ((t["merchant"], pol),))))
        elif rec.action == ActionType.SUPPRESS.value:
            sup = Suppression(t.get("issuer"), t.get("method"), t.get("merchant"), rec.id)
            self.control = replace(c, suppressions=c.suppressions + (sup,))
        self.applied.add(rec.id)
        rec.status, rec.executed_tick = Status.EXECUTED, tick
        self._windows[rec.id] = deque(maxlen=self.judge.guard_ticks * self.judge.max_windows)
        flapped = tick - self._restored_at.get(rec.target_key, -10 ** 9) <= self.judge.flap_memory_ticks
        self._restore_after[rec.id] = self.judge.restore_windows if flapped else 1
        self._ticks_active[rec.id] = 0

    def _remove(self, rec: ActionRecord) -> None:
        c = self.control
        if rec.action == ActionType.RETRY_POLICY.value:
            self.control = replace(c, retry_policies=tuple(x for x in c.retry_policies if x[0] != rec.target["merchant"]))
        else:
            self.control = replace(c, route_overrides=tuple(o for o in c.route_overrides if o.action_id != rec.id),
                                   suppressions=tuple(s for s in c.suppressions if s.action_id != rec.id))

    def _end(self, rec: ActionRecord, status: Status, tick: int, reason: str) -> None:
        self._remove(rec)
        rec.status, rec.ended_tick, rec.end_reason = status, tick, reason
        self._windows.pop(rec.id, None)
        self._ticks_active.pop(rec.id, None)
        self._healthy_streak.pop(rec.id, None)
        self._restore_after.pop(rec.id, None)
        if status is Status.RESTORED:
            self._restored_at[rec.target_key] = tick

    # -- judging -------------------------------------------------------------------
    def _codes(self, d: dict) -> dict[str, int]:
        return {k: self.universe.index(k, v) for k, v in d.items()}

    def _capture_before(self, rec: ActionRecord, snap: Snapshot) -> None:
        t, p = rec.target, rec.params
        if rec.action == ActionType.REROUTE.value:
            src = self._codes({k: v for k, v in {"issuer": t.get("issuer"), "processor": p["from_processor"]}.items() if v})
            rec.baseline_rate = snap.baseline.slice(src).first_attempt_rate
            rec.baseline_p95 = snap.baseline.latency_quantiles(src["processor"])[1]
        else:
            rec.before = snap.window.slice(self._codes(t)).__dict__.copy()

    def review(self, tick: int, last: Stats, urgent: frozenset = frozenset()) -> list[ActionRecord]:
        """Feed one tick to every active action; judge those at a guard-window boundary, and at once those
        in `urgent` (a reroute whose new path the reasoner now flags as failing)."""
        changed = []
        for rec in self.active():
            self._windows[rec.id].append(last)
            self._ticks_active[rec.id] += 1
            n = self._ticks_active[rec.id]
            if n % self.judge.guard_ticks and not (rec.id in urgent and n >= self.judge.guard_ticks):
                continue
            ticks = list(self._windows[rec.id])
            window = sum_stats(ticks[-self.judge.guard_ticks:], last.counts.shape[:5], len(LAT_EDGES) - 1)
            verdict, recovered = self._judge(rec, window)
            latest = dict(verdict.metrics)
            if verdict.outcome is Outcome.INCONCLUSIVE and len(ticks) > self.judge.guard_ticks:
                # too thin in one window (a small issuer's holdout): judge on every window so far instead;
                # whether the old path is healthy again stays a question about the latest window
                verdict, _ = self._judge(rec, sum_stats(ticks, last.counts.shape[:5], len(LAT_EDGES) - 1))
            rec.verdicts.append({"tick": tick, "outcome": verdict.outcome.value, "reason": verdict.reason,
                                 "metrics": {k: round(v, 4) for k, v in verdict.metrics}})
            before = rec.outcome
            as_good = verdict.outcome is Outcome.NEUTRAL and before == "helped" and rec.action == ActionType.REROUTE.value
            streak = self._healthy_streak[rec.id] = self._healthy_streak.get(rec.id, 0) + 1 if recovered or as_good else 0
            if streak and (streak >= self._restore_after.get(rec.id, 1) or verdict.outcome is Outcome.HURT):
                self._end(rec, Status.RESTORED, tick, "old path healthy again on the holdout: "
                          f"{100 * latest.get('holdout_rate', 0):.1f}% vs {100 * (rec.baseline_rate or 0):.1f}% before the fault"
                          if recovered else "old path as good as the new one again: " + verdict.reason)
                rec.outcome = "helped" if before in ("helped", "pending") else before
            elif streak:
                pass                  # the path flapped before: one healthy window is not enough to move traffic back
            elif verdict.outcome is Outcome.HURT and before == "helped" and rec.action == ActionType.REROUTE.value:
                # it helped while it was on; the new path has failed since: move back, without blaming the action
                self._end(rec, Status.RESTORED, tick, "new path now worse than the old one: " + verdict.reason)
            elif verdict.outcome is Outcome.HURT:
                rec.outcome = "hurt"
                self._end(rec, Status.ROLLED_BACK, tick, verdict.reason)
            elif verdict.outcome is Outcome.NEUTRAL:
                rec.outcome = "neutral"
                self._end(rec, Status.ROLLED_BACK, tick, "did not help: " + verdict.reason)
            elif verdict.outcome is Outcome.INCONCLUSIVE and n >= self.judge.guard_ticks * self.judge.max_windows:
                rec.outcome = "inconclusive" if before == "pending" else before
                self._end(rec, Status.ROLLED_BACK, tick, f"inconclusive for {self.judge.max_windows} windows: {verdict.reason}")
            elif verdict.outcome is Outcome.HELPED:
                rec.outcome = "helped"
            if rec.outcome != before or rec.status is not Status.EXECUTED:
                changed.append(rec)
        return changed

    def _judge(self, rec: ActionRecord, w: Stats) -> tuple[Verdict, bool]:
        t, p = rec.target, rec.params
        if rec.action != ActionType.REROUTE.value:
            return judge_retry(w.slice(self._codes(t)), SliceStats(**rec.before), self.judge), False
        src, dst = self.universe.index("processor", p["from_processor"]), self.universe.index("processor", p["to_processor"])
        scope = {"issuer": self.universe.index("issuer", t["issuer"])} if "issuer" in t else {}
        treated, holdout = w.slice({**scope, "processor": dst}), w.slice({**scope, "processor": src})
        p95_src = w.latency_quantiles(src)[1]
        latency_matters = "issuer" not in t
        verdict = judge_reroute(treated, holdout, w.latency_quantiles(dst)[1] if latency_matters else None,
                                p95_src if latency_matters else None, self.judge)
        recovered = path_recovered(holdout, rec.baseline_rate, p95_src, rec.baseline_p95, self.judge)
        return verdict, recovered

    # -- persistence -----------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"control_plane": self.control.to_dict(), "actions": [a.to_dict() for a in self.actions.values()],
                "applied": sorted(self.applied), "paused": self.paused}
