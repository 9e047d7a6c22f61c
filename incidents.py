"""Incidents: hypotheses held over time, so a replay reports what went wrong, where, from when to when, and how much.

An incident opens the first tick a hypothesis names a slice, and collects every later
hypothesis that names the same slice or shares a value with it (chase on atlas, then chase
everywhere, is one incident). It closes when nothing names it for `close_after` ticks; its
end is the start of the first tick after the last one that named it (None while open). Each
tick it is named, its slice's first attempts count as affected and the approvals they missed
against the slice's baseline rate as lost (an estimate: the baseline is the slice's own past).

Pure bookkeeping over values handed in; no I/O, no clock (tick times come from the data).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Incident:
    id: str
    start_tick: int
    start: str                      # ISO 8601 from the data
    cause: str
    target: dict
    confidence: float
    evidence: list
    last_tick: int
    end: str | None = None
    affected_attempts: int = 0
    approvals_lost_est: float = 0.0
    recommendation: dict | None = None
    no_recommendation_reason: str | None = None
    named: Counter = field(default_factory=Counter)     # (cause, target) -> ticks it was named so
    note: dict | None = None                            # a short write-up for people (template or LLM)

    @property
    def open(self) -> bool:
        return self.end is None

    def values(self) -> set:
        return {kv for (_, t) in self.named for kv in t}

    def to_dict(self) -> dict:
        return {"id": self.id, "start": self.start, "end": self.end, "cause": self.cause, "target": self.target,
                "confidence": round(self.confidence, 3), "evidence": list(self.evidence),
                "affected_attempts": int(self.affected_attempts),
                "approvals_lost_est": round(float(self.approvals_lost_est), 1),
                "recommendation": self.recommendation,
                **({"no_recommendation_reason": self.no_recommendation_reason}
                   if self.recommendation is None and self.no_recommendation_reason else {}),
                "also_named": [{"cause": c, "target": dict(t), "ticks": n} for (c, t), n in self.named.items()
                               if (c, dict(t)) != (self.cause, self.target)],
                "start_tick": self.start_tick, "ticks_named": sum(self.named.values()),
                **({"note": self.note} if self.note else {})}


class IncidentTracker:
    def __init__(self, close_after: int = 2):
        self.close_after = close_after
        self.incidents: list[Incident] = []
        self.opened = 0                      # incidents ever opened: ids stay unique when old ones are pruned

    def prune(self, keep: int) -> None:
        """Forget the oldest closed incidents beyond `keep` (endless runs)."""
        closed = [i for i in self.incidents if not i.open]
        if len(closed) > keep:
            gone = {i.id for i in closed[:len(closed) - keep]}
            self.incidents = [i for i in self.incidents if i.id not in gone]

    def open_incidents(self) -> list[Incident]:
        return [i for i in self.incidents if i.open]

    def _match(self, key: tuple) -> Incident | None:
        cause, target = key
        values = set(target)
        for inc in self.open_incidents():
            if key in inc.named or values & inc.values():
                return inc
        return None

    def update(self, tick: int, hypotheses, impact, time_of) -> list[Incident]:
        """Fold one tick's hypotheses in; `impact(target)` gives (affected first attempts, approvals lost) this
        tick and `time_of(tick)` a tick's start as ISO 8601. Returns the incidents opened this tick."""
        opened, seen = [], set()
        for h in hypotheses:
            key = (h.cause.value, h.target)
            inc = self._match(key)
            if inc is None:
                self.opened += 1
                inc = Incident(f"I{self.opened:03d}", tick, time_of(tick), h.cause.value, h.target_dict,
                               h.confidence, list(h.evidence), tick)
                self.incidents.append(inc)
                opened.append(inc)
            if inc.id in seen:
                inc.named[key] += 1
                continue
            seen.add(inc.id)
            inc.named[key] += 1
            inc.last_tick = tick
            if h.confidence >= inc.confidence:
                inc.confidence, inc.evidence = h.confidence, list(h.evidence)
            (cause, target), _ = inc.named.most_common(1)[0]
            inc.cause, inc.target = cause, dict(target)
            affected, lost = impact(inc.target)
            inc.affected_attempts += affected
            inc.approvals_lost_est += lost
        for inc in self.open_incidents():
            if inc.id not in seen and tick - inc.last_tick >= self.close_after:
                inc.end = time_of(inc.last_tick + 1)
        return opened
