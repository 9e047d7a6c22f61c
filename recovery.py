"""Recover: after a crash, bring the executor back in line with its audit log (the log is written first).

replay_audit() is the control plane the log implies and each action's last recorded
status; reconcile() repairs an executor loaded from its state file so that it equals
that replay. Records the state file never saw are rebuilt from the log: a proposal's or
an execution's line carries the record's cause, explanation, proposal time, approval and
the judge's baseline (actions.REBUILD_FIELDS). Where an old line lacks them, it fails
safe for that record: an applied action is rolled back (audited), a pending one keeps
the time of its line. A new chain (after an accepted break) opens with a checkpoint of
the control plane, and the replay starts from it. Lines that fail their schema are skipped
and named, never replayed.

Never trusts an unverified log (the worker verifies the chain first) and never raises on
a line's content. No I/O: events in, repairs to the executor out; reads no file itself.
"""
from __future__ import annotations

from datetime import datetime

from actions import REBUILD_FIELDS, ActionRecord, Status
from control_plane import ControlPlane, apply_action, remove_action
from executor import Executor
from state_load import CHAIN_START, audit_event_reason, checkpoint_reason, is_num, rebuild_fields

_STATUS_EVENTS = {"action_executed": Status.EXECUTED, "action_rolled_back": Status.ROLLED_BACK,
                  "action_restored": Status.RESTORED, "action_rejected": Status.REJECTED,
                  "action_refused": Status.REJECTED, "action_expired": Status.EXPIRED,
                  "action_pending_approval": Status.PENDING_APPROVAL, "action_replaced": Status.REPLACED}


def replay_audit(events: list[dict], skipped: list[str] | None = None) -> tuple[ControlPlane, dict[str, dict]]:
    """The control plane the audit log implies, and each action's last recorded status and details.

    Pure: events in, values out. The executor's state must always equal this replay. A line that fails
    its schema is left out (and named in `skipped`, when given).
    """
    control, last, approved = ControlPlane(), {}, set()
    for n, e in enumerate(events, 1):
        if not isinstance(e, dict):
            continue
        if e.get("event") == CHAIN_START and isinstance(e.get("checkpoint"), dict):
            why = checkpoint_reason(e["checkpoint"])
            if why is None:
                control = ControlPlane.from_dict(e["checkpoint"]["control_plane"])
                last = {i: {"status": Status(s), "checkpoint": True} for i, s in e["checkpoint"]["statuses"].items()}
                approved = set()
            elif skipped is not None:
                skipped.append(f"audit line {n}: checkpoint ignored ({why})")
            continue
        if e.get("event") == "action_approved":
            approved.add(e.get("action_id"))
        status = _STATUS_EVENTS.get(e.get("event"))
        if status is None:
            continue
        why = audit_event_reason(e)
        held = last.get(e.get("action_id"), {}).get("status") is Status.PENDING_APPROVAL or (
            isinstance(e.get("record"), dict) and e["record"].get("requires_human_approval") is True)
        if why is None and status is Status.EXECUTED and held and e["action_id"] not in approved:
            why = "executed without a recorded approval"
        if why is not None:
            if skipped is not None:
                skipped.append(f"audit line {n} (seq {e.get('seq')}) not replayed: {why}")
            continue
        previous = last.get(e["action_id"], {})
        if status is Status.EXECUTED:
            if previous.get("status") is Status.EXECUTED:
                continue                              # never applied twice, whatever the log says
            control = apply_action(control, e["action_type"], e["target"], e["params"], e["action_id"])
        elif status in (Status.ROLLED_BACK, Status.RESTORED, Status.REPLACED) and \
                previous.get("status") is Status.EXECUTED:
            control = remove_action(control, e["action_type"], e["target"], e["action_id"])
        record = {**previous.get("record", {}), **rebuild_fields(e.get("record"))}
        approval = _approval(e) or previous.get("approval")
        last[e["action_id"]] = {**e, "status": status, "record": record, "approval": approval}
    return control, last


def last_pause(events: list[dict]) -> bool | None:
    """True when the log's last pause or resume line is a pause, False for a resume, None for neither."""
    for e in reversed(events):
        if isinstance(e, dict) and e.get("event") in ("pause", "resume"):
            return e["event"] == "pause"
        if isinstance(e, dict) and e.get("event") == CHAIN_START:
            return None
    return None


def _approval(e: dict) -> dict | None:
    a = rebuild_fields(e.get("record")).get("approval")
    return a if isinstance(a, dict) and a.get("by") else None


def _line_time(e: dict, now: float) -> float:
    """The line's own time in clock seconds when it is an ISO time not in the future, else now."""
    try:
        t = datetime.fromisoformat(str(e.get("ts", "")).replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        return now
    return t if t <= now else now


def _rebuild(action_id: str, e: dict, now: float) -> tuple[ActionRecord, str | None]:
    """A record from its last line; returns (record, what was missing) when the line is an old one."""
    r = e["record"]
    complete = all(k in r for k in REBUILD_FIELDS if k not in ("approval", "executed_tick", "replaces"))
    fields = {k: v for k, v in r.items() if k in REBUILD_FIELDS}
    fields.setdefault("tick", fields.get("executed_tick") or 0)
    fields.setdefault("cause", None)
    fields.setdefault("confidence", 0.0)
    fields.setdefault("explanation", "rebuilt from the audit log after a restart")
    fields.setdefault("requires_human_approval", e["status"] is Status.PENDING_APPROVAL or e.get("who") == "operator")
    if "proposed_at" not in r:
        fields["proposed_at"] = _line_time(e, now)
    if e["status"] is Status.EXECUTED and fields.get("executed_tick") is None:
        fields["executed_tick"] = fields["tick"]
    if e.get("approval"):
        fields["approval"] = e["approval"]
    rec = ActionRecord(id=action_id, action=e["action_type"], target=e["target"], params=e["params"],
                       risk=e["risk"] if is_num(e.get("risk")) else 0.0, status=e["status"],
                       params_hash=e["params_hash"] if isinstance(e.get("params_hash"), str) else "",
                       **fields)
    return rec, (None if complete else "its audit line predates complete records")


def reconcile(ex: Executor, events: list[dict], now: float = 0.0) -> list[str]:
    """After a crash: bring the executor in line with its audit log (the log is written first).

    Returns one line per repair. Records the state file never saw are rebuilt from the log; their
    guard window starts afresh. `now` is the agent's clock: a pending record rebuilt from an old line
    without its proposal time keeps its line's time, never an instant expiry.
    """
    skipped: list[str] = []
    control, last = replay_audit(events, skipped)
    repairs = list(skipped)
    unjudgeable = []
    for action_id, e in last.items():
        rec = ex.actions.get(action_id)
        if e.get("checkpoint"):
            if rec is not None and rec.status is not e["status"]:
                repairs.append(f"{action_id}: {rec.status.value} in state, {e['status'].value} at the checkpoint")
                rec.status = e["status"]
            continue
        if rec is None:
            rec, missing = _rebuild(action_id, e, now)
            ex.actions[action_id] = rec
            repairs.append(f"{action_id}: rebuilt from the audit log as {e['status'].value}"
                           + (f" ({missing})" if missing else ""))
            if missing and rec.status is Status.EXECUTED:
                unjudgeable.append(rec)
        elif rec.status is not e["status"]:
            repairs.append(f"{action_id}: {rec.status.value} in state, {e['status'].value} in the audit log")
            rec.status = e["status"]
            if e["status"] in (Status.ROLLED_BACK, Status.RESTORED, Status.REPLACED):
                rec.end_reason = e.get("reason")
            if e["status"] is Status.EXECUTED:       # executed after the state was written: its approval, its tick
                rec.approval = e.get("approval") or rec.approval
                rec.executed_tick = e["record"].get("executed_tick", rec.executed_tick)
                rec.guard, rec.ticks_active = [], 0
        if rec.status is Status.EXECUTED and not rec.judgeable and rec not in unjudgeable:
            unjudgeable.append(rec)
    for e in events:                             # the ledger: every id whose effect the log saw applied
        if isinstance(e, dict) and e.get("event") == CHAIN_START and isinstance(e.get("checkpoint"), dict) \
                and checkpoint_reason(e["checkpoint"]) is None:
            for action_id, h in e["checkpoint"]["applied"].items():
                ex.applied.setdefault(action_id, h)
        elif isinstance(e, dict) and e.get("event") == "action_executed" and audit_event_reason(e) is None \
                and last.get(e["action_id"], {}).get("status") not in (None, Status.PENDING_APPROVAL):
            ex.applied.setdefault(e["action_id"], e.get("params_hash") or "")
    if control != ex.control:
        repairs.append("control plane rebuilt from the audit log")
        ex.control = control
    if last_pause(events) is True and not ex.paused:            # a pause is never lost; a lost resume stays paused
        repairs.append("automation paused again: the audit log's last pause came after the state was written")
        ex.paused = True
    numbers = [int(a[1:]) for a in ex.actions if a[1:].isdigit()]
    ex.next_id = max([ex.next_id] + [n + 1 for n in numbers])
    for rec in unjudgeable:                      # fail safe: what cannot be judged goes back to the known state
        ex.roll_back(rec, rec.executed_tick or rec.tick, "rebuilt after a restart without the baseline the judge "
                                                         "needs: rolled back to the known state")
        repairs.append(f"{rec.id}: rolled back (no baseline to judge it against)")
    return repairs
