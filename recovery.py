"""Recover: after a crash, bring the executor back in line with its audit log (the log is written first).

replay_audit() is the control plane the log implies and each action's last recorded
status; reconcile() repairs an executor loaded from its state file so that it equals
that replay. Records the state file never saw are rebuilt from the log.

No I/O: events in, repairs to the executor out; reads no file itself.
"""
from __future__ import annotations

from actions import ActionRecord, Status
from control_plane import ControlPlane, apply_action, remove_action
from executor import Executor

_STATUS_EVENTS = {"action_executed": Status.EXECUTED, "action_rolled_back": Status.ROLLED_BACK,
                  "action_restored": Status.RESTORED, "action_rejected": Status.REJECTED,
                  "action_refused": Status.REJECTED, "action_expired": Status.EXPIRED,
                  "action_pending_approval": Status.PENDING_APPROVAL, "action_replaced": Status.REPLACED}


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
        elif status in (Status.ROLLED_BACK, Status.RESTORED, Status.REPLACED) and \
                last.get(e["action_id"], {}).get("status") is Status.EXECUTED:
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
            if e["status"] in (Status.ROLLED_BACK, Status.RESTORED, Status.REPLACED):
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
