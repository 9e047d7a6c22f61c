"""State load: the schema and bounds a state file or audit line must meet before a restart trusts it.

worker.py reads status.json, control_plane.json and learning.json through safe_json (size, depth,
no NaN), then asks here whether each document is one the agent can resume from; recovery.py asks
the same of every audit line it replays. Each check is pure: a document in, None (fine) or a
one-line reason out. A document that fails is quarantined by the caller and that part starts fresh.

MAX_TICK bounds every tick a state file may claim (10^8 ticks: over three years at one tick a
second), so start-up never works through a hostile tick count.

Never reads or writes a file and never raises on a document's content.
"""
from __future__ import annotations

import math
import re

from actions import ActionRecord, Outcome, Status
from control_plane import ActionType, ControlPlane

MAX_TICK = 100_000_000
CHAIN_START = "audit_chain_start"   # the first line of a chain begun after a break: a checkpoint to replay from
MAX_ACTIONS = 5_000              # records in control_plane.json (the worker keeps live ones plus 200 finished)
MAX_MEMORY = 5_000               # learner entries (it keeps 500)
MAX_TEXT = 4_000                 # an explanation or reason
_ID = re.compile(r"^A\d{1,9}$")
_ACTION_TYPES = {t.value for t in ActionType if t is not ActionType.NO_OP}
_FIELDS = set(ActionRecord.__dataclass_fields__)
_OUTCOMES = {o.value for o in Outcome}
_STATUSES = {s.value for s in Status}
_REQUIRED = {"id", "tick", "action", "target", "params", "cause", "confidence", "risk", "requires_human_approval",
             "status", "explanation", "params_hash"}


def is_int(v, lo: int = 0, hi: int = MAX_TICK) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) < 1e15


def _names(d) -> bool:
    """A target: entity kind -> entity name, both short strings."""
    return isinstance(d, dict) and len(d) <= 8 and all(isinstance(k, str) and isinstance(v, str) and len(v) <= 200
                                                       for k, v in d.items())


def _flat(d, max_keys: int = 64) -> bool:
    """Parameters or a slice's numbers: short string keys, scalar values."""
    return isinstance(d, dict) and len(d) <= max_keys and all(
        isinstance(k, str) and (v is None or isinstance(v, (str, bool)) or is_num(v)) for k, v in d.items())


def tick_reason(v, name: str = "tick") -> str | None:
    if not is_int(v):
        return f"{name} {str(v)[:40]!r} is not a whole number from 0 to {MAX_TICK:,}"
    return None


def status_reason(doc: dict) -> str | None:
    """status.json: the tick to resume after, bounded; the operator's pause."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    if "tick" in doc and (why := tick_reason(doc["tick"])):
        return why
    for key in ("paused", "kill_switch"):
        if key in doc and not isinstance(doc[key], bool):
            return f"{key} is not true or false"
    if doc.get("paused_reason") is not None and not isinstance(doc["paused_reason"], str):
        return "paused_reason is not text"
    return None


def action_record_reason(d) -> str | None:
    """One action record of control_plane.json, with its guard window."""
    if not isinstance(d, dict):
        return "an action record is not an object"
    who = f"action {str(d.get('id'))[:20]!r}"
    if missing := _REQUIRED - set(d):
        return f"{who} lacks {', '.join(sorted(missing))}"
    if extra := set(d) - _FIELDS:
        return f"{who} has unknown fields {', '.join(sorted(extra)[:3])}"
    checks = [
        (isinstance(d["id"], str) and _ID.match(d["id"]), "id"), (is_int(d["tick"]), "tick"),
        (d["action"] in _ACTION_TYPES, "action"), (_names(d["target"]), "target"), (_flat(d["params"]), "params"),
        (d["cause"] is None or isinstance(d["cause"], str), "cause"), (is_num(d["confidence"]), "confidence"),
        (is_num(d["risk"]), "risk"), (isinstance(d["requires_human_approval"], bool), "requires_human_approval"),
        (d["status"] in _STATUSES, "status"), (isinstance(d["params_hash"], str), "params_hash"),
        (isinstance(d["explanation"], str) and len(d["explanation"]) <= MAX_TEXT, "explanation"),
        (d.get("outcome", "pending") in _OUTCOMES, "outcome"),
        (d.get("before") is None or _flat(d["before"]), "before"),
        (all(d.get(k) is None or is_num(d[k]) for k in ("baseline_rate", "baseline_p95", "proposed_at",
                                                         "traffic_share")), "numbers"),
        (all(d.get(k) is None or is_int(d[k]) for k in ("executed_tick", "ended_tick")), "ticks"),
        (all(is_int(d.get(k, 1), 0, 10_000) for k in ("ticks_active", "healthy_streak", "restore_after",
                                                       "max_windows")), "counters"),
        (d.get("approval") is None or isinstance(d["approval"], dict), "approval"),
        (all(isinstance(d.get(k, []), list) for k in ("guard", "verdicts", "guardrails")), "lists"),
        (isinstance(d.get("guard", []), list) and all(_guard_entry(g) for g in d.get("guard", [])), "guard"),
    ]
    bad = [name for ok, name in checks if not ok]
    return f"{who}: bad {', '.join(bad)}" if bad else None


def _guard_entry(g) -> bool:
    return isinstance(g, dict) and len(g) <= 8 and all(
        _flat(v) if isinstance(v, dict) else isinstance(v, list) and len(v) <= 512 and all(is_num(x) for x in v)
        for v in g.values())


def control_plane_reason(cp) -> str | None:
    if not isinstance(cp, dict):
        return "control_plane is not an object"
    try:
        ControlPlane.from_dict(cp)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        return f"control_plane does not load ({type(e).__name__})"
    return None


def control_doc_reason(doc) -> str | None:
    """control_plane.json: the control plane, every action record, the effect ledger, the pause."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    for key in ("control_plane", "actions", "applied", "next_id"):
        if key not in doc:
            return f"{key} is missing"
    if "tick" in doc and (why := tick_reason(doc["tick"])):
        return why
    if why := control_plane_reason(doc["control_plane"]):
        return why
    if not isinstance(doc["actions"], list) or len(doc["actions"]) > MAX_ACTIONS:
        return f"actions is not a list of at most {MAX_ACTIONS:,} records"
    for a in doc["actions"]:
        if why := action_record_reason(a):
            return why
    if not isinstance(doc["applied"], dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                       for k, v in doc["applied"].items()):
        return "applied is not a map of action id to parameters hash"
    if not is_int(doc["next_id"], 1, 10**9):
        return "next_id is not a whole number from 1 to 10^9"
    if not isinstance(doc.get("paused", False), bool):
        return "paused is not true or false"
    restored = doc.get("restored_at", [])
    if not isinstance(restored, list) or not all(isinstance(r, list) and len(r) == 2 and _names(r[0]) and is_int(r[1])
                                                 for r in restored):
        return "restored_at is not a list of [target, tick]"
    head = doc.get("audit_head")
    if head is not None and head_reason(head):
        return f"audit_head: {head_reason(head)}"
    return None


def head_reason(head) -> str | None:
    """An audit head kept outside the log: {seq, hash}."""
    if not isinstance(head, dict) or not is_int(head.get("seq"), 0, 10**12) or not isinstance(head.get("hash"), str):
        return "not {seq: whole number, hash: text}"
    return None


def learning_reason(doc) -> str | None:
    """learning.json: the learner's memory of outcomes and its summary for people."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    memory = doc.get("memory", [])
    if not isinstance(memory, list) or len(memory) > MAX_MEMORY:
        return f"memory is not a list of at most {MAX_MEMORY:,} entries"
    for m in memory:
        if not (isinstance(m, dict) and isinstance(m.get("id"), str) and is_int(m.get("tick"))
                and m.get("action") in _ACTION_TYPES and _names(m.get("target")) and isinstance(m.get("harm"), bool)
                and m.get("outcome") in _OUTCOMES and m.get("status") in _STATUSES and is_num(m.get("success_gain"))
                and all(isinstance(m.get(k), bool) for k in ("cost_harm", "retry_harm"))):
            return "a memory entry lacks id, tick, action, target, outcome, status, gain or harm, or has the wrong type"
    if doc.get("summary") is not None and not isinstance(doc["summary"], dict):
        return "summary is not an object"
    return None


def audit_event_reason(e) -> str | None:
    """An action line of the audit log, as replay needs it."""
    if not isinstance(e, dict):
        return "not an object"
    if not (isinstance(e.get("action_id"), str) and _ID.match(e["action_id"])):
        return "action_id is missing or malformed"
    if e.get("action_type") not in _ACTION_TYPES:
        return f"unknown action type {str(e.get('action_type'))[:30]!r}"
    if not _names(e.get("target")) or not e["target"]:
        return "target is missing or malformed"
    if not _flat(e.get("params")):
        return "params are missing or malformed"
    if e["action_type"] == ActionType.REROUTE and not isinstance(e["params"].get("to_processor"), str):
        return "a reroute without to_processor"
    if e["action_type"] == ActionType.RETRY_POLICY and not (isinstance(e["target"].get("merchant"), str)
                                                             and is_int(e["params"].get("max_attempts"), 1, 100)):
        return "a retry policy without merchant or max_attempts"
    if e.get("record") is not None and not isinstance(e["record"], dict):
        return "record is not an object"
    return None


def rebuild_fields(r) -> dict:
    """The fields of an audit line's record that have the right type (others are left to the fail-safe)."""
    if not isinstance(r, dict):
        return {}
    return {k: v for k, v in r.items() if k in _REBUILD_CHECKS and _REBUILD_CHECKS[k](v)}


_REBUILD_CHECKS = {
    "tick": is_int, "executed_tick": is_int, "confidence": is_num, "proposed_at": is_num, "traffic_share": is_num,
    "requires_human_approval": lambda v: isinstance(v, bool), "max_windows": lambda v: is_int(v, 1, 10_000),
    "baseline_rate": lambda v: v is None or is_num(v), "baseline_p95": lambda v: v is None or is_num(v),
    "before": lambda v: v is None or _flat(v), "cause": lambda v: v is None or isinstance(v, str),
    "explanation": lambda v: isinstance(v, str) and len(v) <= MAX_TEXT,
    "guardrails": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "expected": _flat, "replaces": lambda v: v is None or isinstance(v, str),
    "approval": lambda v: v is None or (isinstance(v, dict) and _flat(v)),
}


def checkpoint_reason(cp) -> str | None:
    """The checkpoint opening a new audit chain: control plane, each action's status, the ledger."""
    if not isinstance(cp, dict):
        return "not an object"
    if why := control_plane_reason(cp.get("control_plane")):
        return why
    statuses, applied = cp.get("statuses"), cp.get("applied")
    if not isinstance(statuses, dict) or not all(v in _STATUSES for v in statuses.values()):
        return "statuses is not a map of action id to status"
    if not isinstance(applied, dict) or not all(isinstance(v, str) for v in applied.values()):
        return "applied is not a map of action id to parameters hash"
    return None
