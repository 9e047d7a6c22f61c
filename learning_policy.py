"""Judge and learn, the pure part: what helped, hurt or was neutral, and how much caution follows.

judge() reads an action's guard window the way canary analysis does (Kayenta,
Argo Rollouts): the treated slice against a concurrent holdout that stayed on the
old path, or for retry policies against the slice's own pre-action numbers, with
minimum samples; too little data is "inconclusive", never a silent pass.
derive_signal() turns remembered outcomes into extra confidence needed. Both are
pure; neither changes the policy's rules.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from decision import LearningSignal, focus
from observer import SliceStats


class Outcome(str, Enum):
    HELPED = "helped"
    HURT = "hurt"
    NEUTRAL = "neutral"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class JudgeSettings:
    guard_ticks: int = 6            # one guard window: as long as the observer's "now"
    max_windows: int = 3            # inconclusive for this many windows -> roll back to the known state
    min_treated: int = 150          # first attempts needed on the new path per window
    min_holdout: int = 100          # and on the holdout
    min_gain: float = 0.02          # a success-rate difference under 2 pp is noise to payment ops
    z: float = 2.5                  # two-sided, ~1% false verdicts per window
    cost_tolerance: float = 0.25    # cost per approved up by more than 25% without a gain is harm
    latency_tolerance: float = 1.3  # p95 up by more than 30% without a gain is harm
    latency_win: float = 0.77       # p95 down by at least 23% counts as a latency win
    attempts_win: float = 0.9       # attempts per payment down by 10% counts as a retry win
    restore_tolerance: float = 0.03  # old path within 3 pp of its pre-fault baseline is healthy again
    restore_latency: float = 1.2
    restore_windows: int = 2        # a path that flapped must look healthy this many guard windows in a row before restoring
    flap_memory_ticks: int = 60     # a reroute re-applied within 10 minutes (10 s ticks) of its restore: the path flaps


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str
    metrics: tuple[tuple[str, float], ...] = ()


def _z(a_hits: int, a_n: int, b_hits: int, b_n: int) -> float:
    pa, pb = a_hits / a_n, b_hits / b_n
    pool = (a_hits + b_hits) / (a_n + b_n)
    se = math.sqrt(max(pool * (1 - pool), 1e-4) * (1 / a_n + 1 / b_n))
    return (pa - pb) / se


def judge_reroute(treated: SliceStats, holdout: SliceStats, p95_treated: float | None, p95_holdout: float | None,
                  s: JudgeSettings = JudgeSettings()) -> Verdict:
    """New path against the holdout on the old path, over the same ticks."""
    if treated.payments < s.min_treated or holdout.payments < s.min_holdout:
        return Verdict(Outcome.INCONCLUSIVE, f"too few samples ({treated.payments} treated, {holdout.payments} holdout)")
    rt, rh = treated.first_attempt_rate, holdout.first_attempt_rate
    z = _z(treated.first_approvals, treated.payments, holdout.first_approvals, holdout.payments)
    cost_t, cost_h = treated.cost_per_approved, holdout.cost_per_approved
    cost_ratio = cost_t / cost_h if cost_t and cost_h else 1.0
    lat_ratio = p95_treated / p95_holdout if p95_treated and p95_holdout else 1.0
    metrics = (("treated_rate", rt), ("holdout_rate", rh), ("z", z), ("cost_ratio", cost_ratio), ("p95_ratio", lat_ratio))
    diff = f"{100 * rt:.1f}% on the new path vs {100 * rh:.1f}% on the holdout"
    if rt - rh <= -s.min_gain and z <= -s.z:
        return Verdict(Outcome.HURT, f"success rate dropped: {diff}", metrics)
    if rt - rh >= s.min_gain and z >= s.z:
        return Verdict(Outcome.HELPED, f"success rate up: {diff}", metrics)
    if lat_ratio <= s.latency_win and rt - rh > -s.min_gain:
        return Verdict(Outcome.HELPED, f"p95 latency down x{lat_ratio:.2f} with no loss in approvals ({diff})", metrics)
    if rt - rh >= s.min_gain:       # a gain too small a sample cannot confirm is not "no gain": wait for more windows
        return Verdict(Outcome.INCONCLUSIVE, f"gain not yet significant: {diff} (z={z:.1f})", metrics)
    if lat_ratio >= s.latency_tolerance:
        return Verdict(Outcome.HURT, f"p95 latency up x{lat_ratio:.2f} without a gain ({diff})", metrics)
    if cost_ratio - 1 > s.cost_tolerance:
        return Verdict(Outcome.HURT, f"no gain ({diff}) and cost per approval up {100 * (cost_ratio - 1):.0f}%", metrics)
    return Verdict(Outcome.NEUTRAL, f"no measurable gain: {diff}, cost per approval x{cost_ratio:.2f}", metrics)


def judge_retry(after: SliceStats, before: SliceStats, s: JudgeSettings = JudgeSettings()) -> Verdict:
    """A retry policy or suppression against the slice's own numbers before the action."""
    if after.payments < s.min_treated or before.payments < s.min_treated:
        return Verdict(Outcome.INCONCLUSIVE, f"too few payments ({after.payments} after, {before.payments} before)")
    apa, apb = after.approvals_per_payment, before.approvals_per_payment
    # approvals per payment is a proportion (each payment approves at most once)
    z = _z(after.approvals, after.payments, before.approvals, before.payments)
    ratio = after.attempts_per_payment / before.attempts_per_payment
    metrics = (("approvals_per_payment_after", apa), ("approvals_per_payment_before", apb), ("z", z),
               ("attempts_ratio", ratio))
    if apa - apb <= -s.min_gain and z <= -s.z:
        return Verdict(Outcome.HURT, f"approvals per payment fell {100 * apb:.1f}% -> {100 * apa:.1f}%", metrics)
    if ratio <= s.attempts_win:
        return Verdict(Outcome.HELPED, f"attempts per payment {before.attempts_per_payment:.2f} -> "
                                       f"{after.attempts_per_payment:.2f}, approvals {100 * apb:.1f}% -> {100 * apa:.1f}%", metrics)
    return Verdict(Outcome.NEUTRAL, f"attempts per payment x{ratio:.2f}, approvals {100 * apb:.1f}% -> {100 * apa:.1f}%", metrics)


def path_recovered(holdout: SliceStats, baseline_rate: float | None, p95_holdout: float | None,
                   baseline_p95: float | None, s: JudgeSettings = JudgeSettings()) -> bool:
    """Is the old path healthy again, measured on the holdout that never left it?"""
    if holdout.payments < s.min_holdout or baseline_rate is None:
        return False
    if holdout.first_attempt_rate < baseline_rate - s.restore_tolerance:
        return False
    if baseline_p95 and p95_holdout and p95_holdout > baseline_p95 * s.restore_latency:
        return False
    return True


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
