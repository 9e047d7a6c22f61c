"""Learn: remember context -> action -> outcome, report effectiveness, and raise caution after harm.

The learner only keeps memory and derives a LearningSignal through
learning_policy.derive_signal (more confidence needed for an action type or a
target that recently hurt or did not help). It never changes the policy. An
optional summarizer (the LLM) may write a prose summary of outcomes; that text is
shown to people and never applied.
"""
from __future__ import annotations

from collections import Counter

from actions import ActionRecord, Status
from learning_policy import LearnerSettings, LearningSignal, cost_harm, derive_signal, is_harm, retry_harm

MEMORY_LIMIT = 500  # outcomes kept; older ones fall off (bounded memory in endless runs)


class Learner:
    def __init__(self, settings: LearnerSettings = LearnerSettings(), summarizer=None):
        self.settings = settings
        self.summarizer = summarizer
        self.memory: list[dict] = []
        self.summary: dict | None = None

    def record(self, rec: ActionRecord, tick: int) -> dict:
        """Store the latest conclusive outcome of an action (one entry per action id, updated in place)."""
        last = rec.verdicts[-1]["metrics"] if rec.verdicts else {}
        entry = {
            "id": rec.id, "tick": tick, "action": rec.action, "target": rec.target, "cause": rec.cause,
            "confidence": rec.confidence, "risk": rec.risk, "outcome": rec.outcome.value, "status": rec.status.value,
            "harm": is_harm_outcome(rec),
            "success_gain": (last.get("treated_rate", 0) - last.get("holdout_rate", 0)) if "treated_rate" in last
            else last.get("approvals_per_payment_after", 0) - last.get("approvals_per_payment_before", 0),
            "cost_ratio": last.get("cost_ratio"),
            "cost_harm": cost_harm(last.get("cost_ratio")),
            "retry_harm": retry_harm(last.get("attempts_ratio")),
        }
        self.memory = [m for m in self.memory if m["id"] != rec.id] + [entry]
        self.memory = self.memory[-MEMORY_LIMIT:]
        return entry

    def signal(self, tick: int) -> LearningSignal:
        return derive_signal(self.memory, tick, self.settings)

    def get_action_effectiveness_stats(self) -> dict[str, dict]:
        """Per action type: counts by outcome, helped share, mean success-rate gain."""
        out: dict[str, dict] = {}
        for action in sorted({m["action"] for m in self.memory}):
            rows = [m for m in self.memory if m["action"] == action]
            c = Counter(m["outcome"] for m in rows)
            out[action] = {"count": len(rows), "helped": c["helped"], "hurt": c["hurt"], "neutral": c["neutral"],
                           "inconclusive": c["inconclusive"], "helped_rate": round(c["helped"] / len(rows), 3),
                           "rolled_back": sum(m["status"] == Status.ROLLED_BACK.value for m in rows),
                           "mean_success_gain": round(sum(m["success_gain"] for m in rows) / len(rows), 4),
                           "cost_harm": sum(m["cost_harm"] for m in rows),
                           "retry_harm": sum(m["retry_harm"] for m in rows)}
        return out

    def summarize(self) -> dict | None:
        """Ask the optional summarizer for prose on outcomes; never applied to policy."""
        if self.summarizer is None or not self.memory:
            return None
        self.summary = self.summarizer.summarize(self.memory[-50:], self.get_action_effectiveness_stats())
        return self.summary

    def to_dict(self) -> dict:
        return {"memory": self.memory, "summary": self.summary}

    def load(self, d: dict) -> None:
        self.memory = list(d.get("memory", []))[-MEMORY_LIMIT:]
        self.summary = d.get("summary")


def is_harm_outcome(rec: ActionRecord) -> bool:
    return is_harm(rec.outcome, rec.status is Status.ROLLED_BACK)
