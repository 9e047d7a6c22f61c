"""Schemas: the wire shape of every state file and of the run report, written down as TypedDicts.

agent.py, worker.py and run.py build these documents; state_writer.py stamps them with
`schema_version` and `generated_at`; the dashboard and other tools read them. Tests pin
each shape's keys (tests/test_schemas.py), so a renamed field fails there first.
Nested values are described in the README's "State files" section.

Types only: no I/O, no logic.
"""

from typing import NotRequired, TypedDict  # evaluated at class creation: no `from __future__ import annotations` here


class Stamped(TypedDict):
    schema_version: int
    generated_at: str            # ISO 8601, UTC ("...Z"); simulated time in run.py


class MetricsDoc(Stamped):
    tick: int
    summary: dict                # observer.Snapshot.summary(): rates now and baseline, latency, cost
    issuers: list[dict]          # per issuer: payments, first-attempt and success rates, baseline, thin
    processors: list[dict]       # per processor: p50/p95/p99 and first-attempt rate
    error_codes: dict[str, int]  # attempts per decline code label in the window
    trend: list[dict]            # one summary per tick, the last 720, with `detected` and `action`


class HypothesesDoc(Stamped):
    tick: int
    latest: list[dict]           # reasoner.Hypothesis.to_dict()
    history: list[dict]
    llm: dict                    # llm_reasoner status and accounting; never the key


class ActionsDoc(Stamped):
    tick: int
    decision: dict | None        # decision.Decision.to_dict(); None under a baseline or policy none
    explanation: dict            # observation, hypotheses, decision, tradeoffs, guardrails
    actions: list[dict]          # actions.ActionRecord.to_dict() without the guard window, plus explanation_of_status
    decisions: list[dict]
    pending: list[dict]


class LearningDoc(Stamped):
    tick: int
    effectiveness: dict[str, dict]
    signal: dict                 # extra_confidence per action type, target_caution per entity
    memory: list[dict]
    summary: dict | None         # the LLM's summary for people; never applied to policy


class ControlPlaneDoc(Stamped):
    tick: int
    control_plane: dict          # control_plane.ControlPlane.to_dict()
    actions: list[dict]          # every action record with its guard window
    applied: dict[str, str]      # effect ledger: action id -> params hash
    paused: bool
    next_id: int
    restored_at: list
    audit_head: NotRequired[dict]   # {seq, hash} of the last audit line when the state was written
    policy_log: NotRequired[list]   # a baseline's own routing changes


class StatusDoc(Stamped):
    tick: int
    policy: str
    state: str                   # running, paused, stopped, finished
    mode: str                    # run (run.py) or live (worker.py)
    tick_seconds: float
    paused: NotRequired[bool]
    paused_reason: NotRequired[str | None]
    kill_switch: NotRequired[bool]
    tick_errors: NotRequired[dict]   # total, consecutive, last, log
    audit: NotRequired[dict]         # worker: {"ok": bool, "message": one line}; ok false while a broken log waits
    tps: NotRequired[float]
    seed: NotRequired[int]
    pid: NotRequired[int]
    started_at: NotRequired[str]


class SimulatorDoc(Stamped):
    tick: int
    active_fault: dict | None    # scenario.fault_dict() of the injected fault: ground truth for people
    next_fault_not_before: NotRequired[int]
    scenario: NotRequired[str]
    phase: NotRequired[str | None]
    active_faults: NotRequired[list[dict]]


class CommandsDoc(Stamped):
    tick: int
    max_age_seconds: int
    log: list[dict]              # id, file, command, action_id, by, issued_at, processed_at, tick, result, message
    refusals: dict[str, int]     # refused commands since the state began: file (hostile), signature, command


class IncidentsDoc(Stamped):
    tick: int
    time: str | None             # the tick's time (ISO 8601; data time in a replay)
    incidents: list[dict]        # incidents.Incident.to_dict(): where, since when, how large, recommendation, note
    open: int


class AuditHeadDoc(Stamped):          # audit_head.json (worker.py): the log's head, kept outside the log
    seq: int
    hash: str


class AuditBrokenDoc(Stamped):        # audit_broken.json (audit_trust.py): present while a break waits for an operator
    detected_at: str
    message: str                     # one line: where the chain broke
    old_head: dict | None            # the head the state files recorded for the chain set aside
    log: str | None                  # audit.jsonl.broken-<time>: the broken log, untouched
    sha256: str | None


class Report(TypedDict):
    schema_version: int
    scenario: str
    seed: int
    policy: str
    universe: dict[str, list[str]]
    phases: list[dict]
    faults: list[dict]
    hypotheses: list[dict]       # first sighting of each (cause, target): tick, cause, target, confidence, source
    incidents: NotRequired[list[dict]]   # as in incidents.json; absent from reports written before incidents
    actions: list[dict]
    learning: dict[str, dict]
    totals: dict
    llm: dict
    counterfactual: NotRequired[dict]
    policy_actions: NotRequired[dict]
    learning_summary: NotRequired[dict]


AUDIT_SCHEMAS: dict[str, type] = {"audit_head.json": AuditHeadDoc, "audit_broken.json": AuditBrokenDoc}

STATE_SCHEMAS: dict[str, type] = {
    "metrics.json": MetricsDoc, "hypotheses.json": HypothesesDoc, "actions.json": ActionsDoc,
    "learning.json": LearningDoc, "control_plane.json": ControlPlaneDoc, "status.json": StatusDoc,
    "simulator.json": SimulatorDoc, "commands.json": CommandsDoc, "incidents.json": IncidentsDoc,
}
