"""Actions: the record each proposed action leaves, and the closed vocabularies of its life.

An ActionRecord is born when the executor receives a decision, and keeps its status
(pending approval, executed, rolled back, restored, rejected, expired), its outcome
(pending until a guard window judges it: helped, hurt, neutral, inconclusive), its
approval, and its guard window. The executor changes records; the learner, the
report and the state files read them.

Plain data: no I/O, no clock, no decisions.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum

from control_plane import ActionType


class Status(str, Enum):
    EXECUTED = "executed"
    PENDING_APPROVAL = "pending_approval"
    ROLLED_BACK = "rolled_back"
    RESTORED = "restored"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REPLACED = "replaced"            # a safe fix, replaced by the stronger one a human approved


LIVE = (Status.EXECUTED, Status.PENDING_APPROVAL)

# what an audit line of a proposal or an execution carries, so that a record rebuilt from the log after a crash is
# complete: its cause and explanation, when it was proposed (approval expiry), who approved it, the judge's baseline
REBUILD_FIELDS = ("tick", "cause", "confidence", "requires_human_approval", "explanation", "guardrails", "expected",
                  "proposed_at", "traffic_share", "max_windows", "baseline_rate", "baseline_p95", "before", "replaces",
                  "approval", "executed_tick")


class Outcome(str, Enum):
    PENDING = "pending"            # not judged yet
    HELPED = "helped"
    HURT = "hurt"
    NEUTRAL = "neutral"
    INCONCLUSIVE = "inconclusive"  # too little data to say, for every window allowed
    REJECTED = "rejected"          # never ran: refused by the executor or by an operator
    EXPIRED = "expired"            # never ran: nobody approved it in time


JUDGED = (Outcome.HELPED, Outcome.HURT, Outcome.NEUTRAL, Outcome.INCONCLUSIVE)


def params_hash(action: str, target: dict, params: dict) -> str:
    """What an approval is bound to: the action's exact type, target and parameters."""
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
    traffic_share: float = 0.0            # share of the window's attempts the action touches, as the executor measured it
    executed_tick: int | None = None
    ended_tick: int | None = None
    outcome: Outcome = Outcome.PENDING
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
    max_windows: int = 3                        # guard windows it may stay inconclusive (more for a thin path)
    replaces: str | None = None                 # the safe fix this stronger one replaces when approved

    def __post_init__(self) -> None:      # records rebuilt from JSON carry plain strings
        self.status, self.outcome = Status(self.status), Outcome(self.outcome)

    @property
    def target_key(self) -> tuple:
        return tuple(sorted(self.target.items()))

    @property
    def is_reroute(self) -> bool:
        return self.action == ActionType.REROUTE

    @property
    def retries_only(self) -> bool:
        return self.params.get("attempts") == "retries"

    @property
    def judgeable(self) -> bool:
        """The judge has what it compares against: a retry policy's or suppression's slice before the action."""
        return self.is_reroute or isinstance(self.before, dict)

    def rebuild_fields(self) -> dict:
        """The part of the record an audit line carries (REBUILD_FIELDS), JSON-ready."""
        return {k: getattr(self, k) for k in REBUILD_FIELDS}

    def to_dict(self) -> dict:
        return {**self.__dict__, "status": self.status.value, "outcome": self.outcome.value}

    @classmethod
    def from_dict(cls, d: dict) -> "ActionRecord":
        return cls(**d)
