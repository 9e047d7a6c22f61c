"""Learn, the pure part: how much caution past outcomes call for.

derive_signal() turns remembered outcomes into a LearningSignal: extra confidence
needed for an action type, and for an entity, that recently hurt or did not help;
it fades with time. decide() reads the signal; learning raises caution and never
changes the policy's rules.
"""
from __future__ import annotations

from dataclasses import dataclass

from actions import Outcome


def focus(target) -> tuple[str, str] | None:
    """The entity an action is about: its issuer, else its merchant, else its processor."""
    t = dict(target)
    for key in ("issuer", "merchant", "processor"):
        if key in t:
            return key, t[key]
    return None


@dataclass(frozen=True)
class LearningSignal:
    """Extra confidence needed, per action type and per (action type, entity); read by decide()."""
    extra_confidence: tuple[tuple[str, float], ...] = ()   # per action type
    target_caution: tuple[tuple[tuple, float], ...] = ()   # per (action type, focus entity)

    def needed(self, min_confidence: float, action: str, target: tuple) -> float:
        """The confidence an action on this target needs now: the policy's minimum plus the learned caution."""
        return (min_confidence + dict(self.extra_confidence).get(action, 0.0)
                + dict(self.target_caution).get((action, focus(target)), 0.0))


@dataclass(frozen=True)
class LearnerSettings:
    memory_ticks: int = 180          # outcomes older than 30 min (10 s ticks) no longer add caution
    caution_per_harm: float = 0.1    # extra confidence needed per recent hurt/neutral outcome of a type
    max_caution: float = 0.3
    target_caution: float = 0.3      # an entity (issuer, merchant, processor) whose action was just rolled back needs this much more


def is_harm(outcome: Outcome, rolled_back: bool) -> bool:
    return outcome is Outcome.HURT or (rolled_back and outcome is not Outcome.HELPED)


def cost_harm(cost_ratio: float | None, tolerance: float = 0.25) -> bool:
    """Cost per approval (new path / holdout) up by more than 25% is cost harm."""
    return cost_ratio is not None and cost_ratio - 1 > tolerance


def retry_harm(attempts_ratio: float | None, tolerance: float = 0.15) -> bool:
    """Attempts per payment (after / before) up by more than 15% is retry harm."""
    return attempts_ratio is not None and attempts_ratio - 1 > tolerance


def derive_signal(memory: list[dict], tick: int, s: LearnerSettings = LearnerSettings()) -> LearningSignal:
    """Recent harm raises the confidence needed, per action type and per target; it decays with time."""
    extra: dict[str, float] = {}
    target: dict[tuple, float] = {}
    for rec in memory:
        age = tick - rec["tick"]
        if age > s.memory_ticks or not rec["harm"]:
            continue
        fade = 1 - age / s.memory_ticks
        extra[rec["action"]] = min(s.max_caution, extra.get(rec["action"], 0.0) + s.caution_per_harm * fade)
        key = (rec["action"], focus(rec["target"]))
        target[key] = max(target.get(key, 0.0), s.target_caution * fade)
    return LearningSignal(tuple(sorted((k, round(v, 4)) for k, v in extra.items())),
                          tuple(sorted((k, round(v, 4)) for k, v in target.items())))
