"""Act: apply decisions to the control plane, hold high-risk ones for a human, judge, roll back, restore.

The executor owns the control plane; nothing else changes routing. It enforces
approval itself (guardrails.approval_reasons, with its own measurements): an action
that needs a human is applied only with an approval recorded against the hash of its
exact parameters, and any action id is applied at most once (an effect ledger). After
applying, it judges the action every guard window (judge.py) and rolls back what hurt
or did not help, and restores a reroute once the old path is measured healthy on its
holdout. `audit(event)` is called before every change; a proposal's and an execution's line carry the
record's cause, explanation, proposal time, approval and baseline, so recovery.py can rebuild it whole.

Never decides what to do and never calls the LLM.
"""
from __future__ import annotations

import threading
from typing import Callable

from actions import LIVE, ActionRecord, Outcome, Status, params_hash
from control_plane import ControlPlane, apply_action, remove_action
from decision import Decision
from guardrails import ControlView, PolicyConfig, approval_reasons, automation_reasons, capacity_reason
from judge import JudgeSettings, judge_window, latency_matters, review
from merchant_profiles import Universe
from observer import Snapshot, Stats
from slice_stats import SliceStats


class ApprovalError(RuntimeError):
    """An action that needs a human was about to run without a valid approval."""


class Executor:
    """Owns the control plane and the action records."""

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
        busy = frozenset(a.target_key for a in self.actions.values() if a.status in LIVE)
        rerouted = frozenset((a.target.get("issuer"), a.params["from_processor"], a.params["to_processor"])
                             for a in self.active() if a.is_reroute and not a.retries_only)
        since = tick - self.judge.guard_ticks
        settling = frozenset((a.target.get("issuer"), a.params[end]) for a in self.actions.values()
                             if a.is_reroute and a.ended_tick is not None and a.ended_tick > since
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
               now: float = 0.0, replaces: str | None = None) -> ActionRecord | None:
        """Apply a decision, or hold it for a human; `replaces`: the safe fix a held stronger one replaces."""
        if decision.is_no_op:
            return None
        target, params = dict(decision.target), dict(decision.params)
        with self._lock:
            rec = ActionRecord(
                id=f"A{self.next_id:04d}", tick=tick, action=decision.action.value, target=target,
                params=params, cause=decision.cause, confidence=decision.confidence, risk=decision.risk,
                requires_human_approval=False, status=Status.PENDING_APPROVAL, explanation=explanation,
                params_hash=params_hash(decision.action.value, target, params), guardrails=list(decision.guardrails),
                expected=dict(decision.expected), proposed_at=now, replaces=replaces)
            self.actions[rec.id] = rec
            self.next_id += 1
            invalid = self.invalid_target(target) or self._over_capacity(rec, snap)
            if invalid:
                rec.status, rec.ended_tick, rec.outcome, rec.end_reason = (Status.REJECTED, tick, Outcome.REJECTED,
                                                                           f"refused: {invalid}")
                self._event("action_refused", rec, reason=rec.end_reason, result="failure")
                return rec
            src = snap.window.slice(self._source(rec))
            rec.traffic_share = (src.retries if rec.retries_only else src.attempts) / max(snap.window.total.attempts, 1)
            why = (["flagged by the decision"] if decision.requires_human_approval else []) + approval_reasons(
                rec.action, params, rec.risk, rec.traffic_share, self.config)
            why = why or automation_reasons(self.recent_auto_actions(tick), self.paused or self.kill_switch(), self.config)
            rec.requires_human_approval = bool(why)
            rec.max_windows = self._windows_needed(rec, snap)
            self._capture_before(rec, snap)
            if why:
                self._event("action_pending_approval", rec, reason="; ".join(why), record=rec.rebuild_fields())
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
            safe = self.actions.get(rec.replaces or "")
            if safe is not None and safe.status is Status.EXECUTED:
                self._end(safe, Status.REPLACED, tick, f"replaced by {rec.id}, approved by {approver}")
            self._apply(rec, tick, who="operator")
            return f"approved: {action_id} executed"

    def reject(self, action_id: str, approver: str, tick: int, at: str) -> str:
        with self._lock:
            rec = self.actions.get(action_id)
            if rec is None or rec.status is not Status.PENDING_APPROVAL:
                return f"refused: {action_id} is not pending approval"
            rec.status, rec.ended_tick, rec.outcome = Status.REJECTED, tick, Outcome.REJECTED
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
        rec.status, rec.ended_tick, rec.outcome = Status.EXPIRED, tick, Outcome.EXPIRED
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
        self._event("action_executed", rec, who=who, record={**rec.rebuild_fields(), "executed_tick": tick})
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

    def roll_back(self, rec: ActionRecord, tick: int, reason: str) -> None:
        """End an applied action that cannot be judged (fail safe after a restart); audited like any rollback."""
        with self._lock:
            if rec.status is Status.EXECUTED:
                if rec.outcome is Outcome.PENDING:
                    rec.outcome = Outcome.INCONCLUSIVE
                self._end(rec, Status.ROLLED_BACK, tick, reason)

    def _source(self, rec: ActionRecord) -> dict[str, int]:
        """The slice an action touches, as codes: a reroute's old path, else its target."""
        if not rec.is_reroute:
            return self._codes(rec.target)
        return self._codes({k: v for k, v in {"issuer": rec.target.get("issuer"),
                                              "processor": rec.params["from_processor"]}.items() if v})

    def _windows_needed(self, rec: ActionRecord, snap: Snapshot) -> int:
        """Guard windows a reroute's holdout needs to see min_holdout first attempts (a thin path's take longer)."""
        j = self.judge
        if not rec.is_reroute:
            return j.max_windows
        per_window = (rec.params.get("holdout", 0.0) * snap.window.slice(self._source(rec)).payments
                      * j.guard_ticks / max(snap.window.ticks, 1))
        needed = -(-j.min_holdout // max(per_window, 1e-9)) + 1          # one window to spare: the estimate is noisy
        return int(min(j.max_windows_thin, max(j.max_windows, needed)))

    def _over_capacity(self, rec: ActionRecord, snap: Snapshot) -> str | None:
        if not rec.is_reroute:
            return None
        return capacity_reason(snap, self._source(rec), self.universe.index("processor", rec.params["to_processor"]),
                               rec.params.get("holdout", 0.0), rec.retries_only)

    def prune(self, keep_finished: int = 200) -> None:
        """Bound memory in endless runs: keep every active and pending record and the newest finished ones."""
        with self._lock:
            done = [a.id for a in self.actions.values() if a.status not in LIVE]
            for action_id in done[:-keep_finished] if keep_finished else done:
                del self.actions[action_id]
            live = {a.id for a in self.actions.values()}
            self.applied = {k: v for k, v in self.applied.items() if k in live or k in done[-keep_finished:]}

    # -- judging -------------------------------------------------------------------
    def _codes(self, d: dict) -> dict[str, int]:
        return {k: self.universe.index(k, v) for k, v in d.items()}

    def _capture_before(self, rec: ActionRecord, snap: Snapshot) -> None:
        src = self._source(rec)
        if rec.is_reroute:
            rec.baseline_rate = snap.baseline.slice(src).first_attempt_rate
            rec.baseline_p95 = snap.baseline.latency_quantiles(src["processor"])[1]
        else:
            rec.before = snap.baseline.slice(src).__dict__.copy()     # the slice's usual, before the storm

    def _guard_entry(self, rec: ActionRecord, last: Stats) -> dict:
        """What the judge needs of one tick for this action: a few slices, not the whole cube."""
        if not rec.is_reroute:
            return {"after": last.slice(self._codes(rec.target)).__dict__}
        u = self.universe
        src, dst = u.index("processor", rec.params["from_processor"]), u.index("processor", rec.params["to_processor"])
        scope = {"issuer": u.index("issuer", rec.target["issuer"])} if "issuer" in rec.target else {}
        return {"treated": last.slice({**scope, "processor": dst}).__dict__,
                "holdout": last.slice({**scope, "processor": src}).__dict__,
                "lat_treated": last.latency_hist[dst].tolist(), "lat_holdout": last.latency_hist[src].tolist()}

    def _judge(self, rec: ActionRecord, entries: list[dict]):
        return judge_window(entries, rec.is_reroute, latency_matters(rec.target, rec.cause), rec.before, rec.baseline_rate,
                            rec.baseline_p95, self.judge, retries_only=rec.retries_only)

    def review(self, tick: int, last: Stats, urgent: frozenset = frozenset()) -> list[ActionRecord]:
        """Feed one tick to every active action; judge those at a guard-window boundary, and at once those
        in `urgent` (a reroute whose new path the reasoner now flags as failing). Returns the records whose
        outcome or status changed."""
        changed = []
        with self._lock:
            for rec in self.active():
                before = rec.outcome
                self._review_one(rec, tick, last, rec.id in urgent)
                if rec.outcome is not before or rec.status is not Status.EXECUTED:
                    changed.append(rec)
        return changed

    def _review_one(self, rec: ActionRecord, tick: int, last: Stats, urgent: bool) -> None:
        if not rec.judgeable:
            self.roll_back(rec, tick, "no baseline to judge it against (record rebuilt without one): rolled back "
                                      "to the known state")
            return
        g = self.judge.guard_ticks
        rec.guard = (rec.guard + [self._guard_entry(rec, last)])[-g * rec.max_windows:]
        rec.ticks_active += 1
        n = rec.ticks_active
        if n % g and not (urgent and n >= g):
            return                                   # not at a window boundary
        verdict, recovered = self._judge(rec, rec.guard[-g:])
        holdout_rate = dict(verdict.metrics).get("holdout_rate", 0)
        if rec.is_reroute and rec.max_windows > self.judge.max_windows:
            suffix = self._holdout_suffix(rec)                # a thin holdout: enough of the latest ticks to say
            recovered = self._judge(rec, suffix)[1]
            holdout_rate = SliceStats.sum([e["holdout"] for e in suffix]).first_attempt_rate or 0.0
        if verdict.outcome is Outcome.INCONCLUSIVE and len(rec.guard) > g:
            # too thin in one window (a small issuer's holdout): judge on every window so far instead;
            # whether the old path is healthy again stays a question about the latest window
            verdict, _ = self._judge(rec, rec.guard)
        rec.verdicts = (rec.verdicts + [{"tick": tick, "outcome": verdict.outcome.value, "reason": verdict.reason,
                                         "metrics": {k: round(v, 4) for k, v in verdict.metrics}}])[-10:]
        step = review(verdict, recovered, rec.outcome, rec.is_reroute, rec.healthy_streak, rec.restore_after,
                      n >= g * rec.max_windows, rec.max_windows,
                      f"old path healthy again on the holdout: {100 * holdout_rate:.1f}% vs "
                      f"{100 * (rec.baseline_rate or 0):.1f}% before the fault")
        rec.outcome, rec.healthy_streak = step.outcome, step.healthy_streak
        if step.end is not None:
            self._end(rec, step.end, tick, step.reason)

    def _holdout_suffix(self, rec: ActionRecord) -> list[dict]:
        """The latest guard ticks whose holdout saw min_holdout first attempts (all of them if it never did)."""
        seen = 0
        for k in range(len(rec.guard) - 1, -1, -1):
            seen += rec.guard[k]["holdout"]["payments"]
            if seen >= self.judge.min_holdout:
                return rec.guard[k:]
        return rec.guard

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
