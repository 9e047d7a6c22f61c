"""Judge: read an action's guard window and say whether it helped, hurt, did nothing, or cannot tell yet.

Canary analysis, as Kayenta and Argo Rollouts do it: a reroute's new path against a
concurrent holdout that stayed on the old path, over the same ticks; a retry policy
or suppression against the slice's own numbers before the action. Minimum samples
everywhere: too little data is "inconclusive", never a silent pass. review() turns a
verdict into the action's next step (keep running, roll back, restore).

Pure: values in, values out; never changes the control plane, never learns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from actions import Outcome, Status
from reasoner import Cause
from slice_stats import SliceStats, histogram_quantiles


@dataclass(frozen=True)
class JudgeSettings:
    guard_ticks: int = 6            # one guard window: as long as the observer's "now"
    max_windows: int = 3            # inconclusive for this many windows -> roll back to the known state
    max_windows_thin: int = 6       # a thin path's reroute, whose holdout needs longer to reach min_holdout, up to this
    min_treated: int = 150          # first attempts needed on the new path per window
    min_holdout: int = 100          # and on the holdout
    min_gain: float = 0.02          # a success-rate difference under 2 pp is noise to payment ops
    z: float = 2.5                  # two-sided, ~1% false verdicts per window
    cost_tolerance: float = 0.25    # cost per approved up by more than 25% without a gain is harm
    latency_tolerance: float = 1.3  # p95 up by more than 30% without a gain is harm
    latency_win: float = 0.77       # p95 down by at least 23% counts as a latency win
    usual_attempts_tolerance: float = 0.05  # attempts per payment within 5% of the slice's usual: the storm is over
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


def judge_retry(after: SliceStats, usual: SliceStats, s: JudgeSettings = JudgeSettings()) -> Verdict:
    """A retry policy or suppression against the slice's usual numbers (its baseline before the storm): did
    attempts per payment come back to usual without costing approvals? A before/after comparison on the
    storm's first ticks would be confounded by how far the storm had got; the usual is not."""
    if after.payments < s.min_treated or usual.payments < s.min_treated:
        return Verdict(Outcome.INCONCLUSIVE, f"too few payments ({after.payments} after, {usual.payments} usual)")
    apa, apu = after.approvals_per_payment, usual.approvals_per_payment
    # approvals per payment is a proportion (each payment approves at most once)
    z = _z(after.approvals, after.payments, usual.approvals, usual.payments)
    ratio = after.attempts_per_payment / usual.attempts_per_payment
    metrics = (("approvals_per_payment_after", apa), ("approvals_per_payment_before", apu), ("z", z),
               ("attempts_ratio", ratio))
    text = (f"attempts per payment {after.attempts_per_payment:.2f} vs {usual.attempts_per_payment:.2f} usual, "
            f"approvals {100 * apa:.1f}% vs {100 * apu:.1f}%")
    if apa - apu <= -s.min_gain and z <= -s.z:
        return Verdict(Outcome.HURT, f"approvals per payment fell below usual: {text}", metrics)
    if ratio <= 1 + s.usual_attempts_tolerance:
        return Verdict(Outcome.HELPED, f"retries back to usual: {text}", metrics)
    return Verdict(Outcome.NEUTRAL, f"attempts still above usual: {text}", metrics)


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


# -- a whole guard window, from the per-tick slices the executor keeps ---------------------------

def latency_matters(target: dict, cause: str | None) -> bool:
    """A reroute is judged on latency too when it moved a whole processor or was made for a latency spike."""
    return "issuer" not in target or cause == Cause.LATENCY_SPIKE


def _hist(parts: list) -> np.ndarray | None:
    parts = [p for p in parts if p is not None]
    return np.sum(np.array(parts), axis=0) if parts else None


def as_retries(s: SliceStats) -> SliceStats:
    """A slice's retries read as if they were its first attempts, to judge a reroute that moves retries only."""
    return SliceStats(s.retries, s.retry_approvals, s.retries, s.retry_approvals, 0, 0, 0, 0, s.fees,
                      s.approved_amount)


def judge_window(entries: list[dict], is_reroute: bool, latency_matters: bool, before: dict | None,
                 baseline_rate: float | None, baseline_p95: float | None,
                 s: JudgeSettings = JudgeSettings(), retries_only: bool = False) -> tuple[Verdict, bool]:
    """(verdict, old path healthy again) over guard entries: a reroute's treated/holdout slices and latency
    histograms per tick, or a retry policy's slice per tick against `before`. A reroute of retries only is
    judged on retries: those moved, on the whole new path (its own retries among them), against those held."""
    if not is_reroute:
        return judge_retry(SliceStats.sum([e["after"] for e in entries]), SliceStats(**before), s), False
    treated = SliceStats.sum([e["treated"] for e in entries])
    holdout = SliceStats.sum([e["holdout"] for e in entries])
    if retries_only:
        treated, holdout = as_retries(treated), as_retries(holdout)
    p95_t = histogram_quantiles(_hist([e["lat_treated"] for e in entries]), (0.95,))[0]
    p95_h = histogram_quantiles(_hist([e["lat_holdout"] for e in entries]), (0.95,))[0]
    verdict = judge_reroute(treated, holdout, p95_t if latency_matters else None,
                            p95_h if latency_matters else None, s)
    return verdict, path_recovered(holdout, baseline_rate, p95_h, baseline_p95, s)


# -- what a verdict means for the action -----------------------------------------------------------

@dataclass(frozen=True)
class Review:
    outcome: Outcome               # the action's outcome after this window
    end: Status | None = None      # ROLLED_BACK or RESTORED; None: it keeps running
    reason: str | None = None
    healthy_streak: int = 0


def review(verdict: Verdict, recovered: bool, before: Outcome, is_reroute: bool, healthy_streak: int,
           restore_after: int, windows_exhausted: bool, max_windows: int, recovered_text: str) -> Review:
    """The next step of an executed action after one judged window.

    A reroute that helped is restored (not blamed) when the old path is healthy again on its holdout, or
    when its new path fails later; an action that was worse than its control from the start is rolled back
    as hurt; no gain is rolled back as neutral; too thin for every window allowed is rolled back as
    inconclusive. A path that flapped needs `restore_after` healthy windows in a row before traffic returns.
    """
    v = verdict.outcome
    as_good = v is Outcome.NEUTRAL and before is Outcome.HELPED and is_reroute
    streak = healthy_streak + 1 if recovered or as_good else 0
    if v is Outcome.HURT and before is not Outcome.HELPED:        # worse than the holdout from the start
        return Review(Outcome.HURT, Status.ROLLED_BACK, verdict.reason, streak)
    if streak and (streak >= restore_after or v is Outcome.HURT):
        why = recovered_text if recovered else "old path as good as the new one again: " + verdict.reason
        return Review(Outcome.HELPED if before in (Outcome.HELPED, Outcome.PENDING) else before,
                      Status.RESTORED, why, streak)
    if streak:                       # the path flapped before: one healthy window is not enough to move traffic back
        return Review(before, None, None, streak)
    if v is Outcome.HURT and is_reroute:      # it helped while it was on; the new path has failed since
        return Review(before, Status.RESTORED, "new path now worse than the old one: " + verdict.reason, streak)
    if v is Outcome.HURT:                     # a retry policy that helped at first and hurts now
        return Review(Outcome.HURT, Status.ROLLED_BACK, verdict.reason, streak)
    if v is Outcome.NEUTRAL:
        return Review(Outcome.NEUTRAL, Status.ROLLED_BACK, "did not help: " + verdict.reason, streak)
    if v is Outcome.INCONCLUSIVE and windows_exhausted:
        return Review(Outcome.INCONCLUSIVE if before is Outcome.PENDING else before, Status.ROLLED_BACK,
                      f"inconclusive for {max_windows} windows: {verdict.reason}", streak)
    return Review(Outcome.HELPED if v is Outcome.HELPED else before, None, None, streak)
