"""judge.py: a guard window's verdict (helped, hurt, neutral, inconclusive) and what it means for the action.

A table per function: each row a case, with the rule it pins."""
from __future__ import annotations

import pytest

from actions import Outcome, Status
from judge import JudgeSettings, judge_reroute, judge_retry, latency_matters, path_recovered, review
from merchant_profiles import DEFAULT_UNIVERSE as U
from observer import Observer
from simulator import Simulator

S = JudgeSettings()


def sl(payments, first_rate, attempts=None, approvals=None, fees=None):
    """A slice with `payments` first attempts approving at `first_rate` (and, for retry verdicts, its totals)."""
    from slice_stats import SliceStats
    fa = round(payments * first_rate)
    attempts = payments if attempts is None else attempts
    approvals = fa if approvals is None else approvals
    fees = attempts * 0.3 if fees is None else fees
    return SliceStats(attempts, approvals, payments, fa, attempts - payments, approvals - fa, 0, 0, fees,
                      approvals * 50.0)


@pytest.mark.parametrize("treated, holdout, p95, outcome, words", [
    # too few first attempts on either side: inconclusive, never a silent pass
    (sl(100, 0.95), sl(500, 0.70), (None, None), Outcome.INCONCLUSIVE, "too few samples"),
    (sl(500, 0.95), sl(50, 0.70), (None, None), Outcome.INCONCLUSIVE, "too few samples"),
    # a significant gain of at least min_gain (2 pp): helped
    (sl(1000, 0.90), sl(400, 0.80), (None, None), Outcome.HELPED, "success rate up"),
    # a significant loss: hurt
    (sl(1000, 0.80), sl(400, 0.90), (None, None), Outcome.HURT, "success rate dropped"),
    # a gain the sample cannot confirm yet (z < 2.5): wait, not "no gain"
    (sl(160, 0.88), sl(110, 0.83), (None, None), Outcome.INCONCLUSIVE, "not yet significant"),
    # same approvals, p95 down by more than 23%: a latency win
    (sl(1000, 0.85), sl(400, 0.85), (700.0, 1000.0), Outcome.HELPED, "p95 latency down"),
    # same approvals, p95 up by 30% or more: hurt
    (sl(1000, 0.85), sl(400, 0.85), (1400.0, 1000.0), Outcome.HURT, "p95 latency up"),
    # same approvals, cost per approval up more than 25%: hurt
    (sl(1000, 0.85, fees=1000 * 0.6), sl(400, 0.85), (None, None), Outcome.HURT, "cost per approval up"),
    # nothing moved: neutral
    (sl(1000, 0.85), sl(400, 0.85), (1000.0, 1000.0), Outcome.NEUTRAL, "no measurable gain"),
])
def test_judge_reroute_table(treated, holdout, p95, outcome, words):
    v = judge_reroute(treated, holdout, *p95)
    assert v.outcome is outcome and words in v.reason


@pytest.mark.parametrize("after, usual, outcome, words", [
    # too few payments: inconclusive
    (sl(100, 0.8, attempts=110, approvals=85), sl(1000, 0.8, attempts=1100, approvals=850), Outcome.INCONCLUSIVE,
     "too few payments"),
    # attempts per payment back within 5% of usual, approvals kept: helped
    (sl(1000, 0.8, attempts=1120, approvals=850), sl(1000, 0.8, attempts=1100, approvals=850), Outcome.HELPED,
     "retries back to usual"),
    # still retrying above usual, approvals kept: neutral
    (sl(1000, 0.8, attempts=1500, approvals=850), sl(1000, 0.8, attempts=1100, approvals=850), Outcome.NEUTRAL,
     "still above usual"),
    # back to usual attempts but approvals per payment fell significantly: hurt, whatever the attempts say
    (sl(1000, 0.8, attempts=1000, approvals=800), sl(1000, 0.8, attempts=1100, approvals=880), Outcome.HURT,
     "fell below usual"),
])
def test_judge_retry_table(after, usual, outcome, words):
    v = judge_retry(after, usual)
    assert v.outcome is outcome and words in v.reason


@pytest.mark.parametrize("holdout, base_rate, p95, base_p95, ok", [
    (sl(200, 0.88), 0.90, None, None, True),          # within 3 pp of its baseline: healthy again
    (sl(200, 0.85), 0.90, None, None, False),         # 5 pp under: still sick
    (sl(50, 0.90), 0.90, None, None, False),          # too thin a holdout to say
    (sl(200, 0.90), None, None, None, False),         # no baseline to compare with
    (sl(200, 0.90), 0.90, 1300.0, 1000.0, False),     # approvals back but p95 still 30% up
    (sl(200, 0.90), 0.90, 1100.0, 1000.0, True),
])
def test_path_recovered(holdout, base_rate, p95, base_p95, ok):
    assert path_recovered(holdout, base_rate, p95, base_p95) is ok


def test_latency_matters_for_a_whole_processor_or_a_latency_cause():
    assert latency_matters({"processor": "cobalt"}, "issuer_degradation")
    assert latency_matters({"issuer": "chase", "processor": "atlas"}, "latency_spike")
    assert not latency_matters({"issuer": "chase", "processor": "atlas"}, "issuer_degradation")


def V(outcome):
    from judge import Verdict
    return Verdict(outcome, outcome.value)


@pytest.mark.parametrize("verdict, recovered, before, reroute, streak, restore_after, exhausted, expect", [
    # worse than its control from the start: rolled back as hurt
    (Outcome.HURT, False, Outcome.PENDING, True, 0, 1, False, (Outcome.HURT, Status.ROLLED_BACK)),
    # it helped, and the old path is healthy again: restored, credited as helped
    (Outcome.HELPED, True, Outcome.HELPED, True, 0, 1, False, (Outcome.HELPED, Status.RESTORED)),
    # a path that flapped needs two healthy windows: the first one keeps the action on
    (Outcome.HELPED, True, Outcome.HELPED, True, 0, 2, False, (Outcome.HELPED, None)),
    (Outcome.HELPED, True, Outcome.HELPED, True, 1, 2, False, (Outcome.HELPED, Status.RESTORED)),
    # it helped, then the new path failed: restored (traffic back), not blamed
    (Outcome.HURT, False, Outcome.HELPED, True, 0, 1, False, (Outcome.HELPED, Status.RESTORED)),
    # a retry policy that helped and hurts now: rolled back as hurt
    (Outcome.HURT, False, Outcome.HELPED, False, 0, 1, False, (Outcome.HURT, Status.ROLLED_BACK)),
    # no gain: rolled back as neutral
    (Outcome.NEUTRAL, False, Outcome.PENDING, True, 0, 1, False, (Outcome.NEUTRAL, Status.ROLLED_BACK)),
    # inconclusive with windows left: keep waiting; with none left: rolled back as inconclusive
    (Outcome.INCONCLUSIVE, False, Outcome.PENDING, True, 0, 1, False, (Outcome.PENDING, None)),
    (Outcome.INCONCLUSIVE, False, Outcome.PENDING, True, 0, 1, True, (Outcome.INCONCLUSIVE, Status.ROLLED_BACK)),
    # helping, old path still sick: keep running, helped
    (Outcome.HELPED, False, Outcome.PENDING, True, 0, 1, False, (Outcome.HELPED, None)),
])
def test_review_table(verdict, recovered, before, reroute, streak, restore_after, exhausted, expect):
    r = review(V(verdict), recovered, before, reroute, streak, restore_after, exhausted, 3, "old path healthy")
    assert (r.outcome, r.end) == expect
    assert (r.reason is None) is (r.end is None)                        # every end says why


# A/A over 100 windows (from test_executor.py): a statistical long run
@pytest.mark.slow
def test_judge_on_noise_rarely_cries_harm():
    # A/A: "treated" and "holdout" are random halves (payment id parity) of the same healthy path
    from control_plane import ControlPlane
    from simulator import Batch
    sim, obs = Simulator(U, seed=21), Observer(U)
    where = {"issuer": U.index("issuer", "chase"), "processor": U.index("processor", "atlas")}
    hurt = 0
    for _ in range(100):
        halves = [None, None]
        for _ in range(6):
            b = sim.step(ControlPlane(), ())
            for parity in (0, 1):
                keep = b.payment_id % 2 == parity
                part = Batch(b.tick, *(getattr(b, c)[keep] for c in ("payment_id", "attempt", "merchant", "issuer",
                             "method", "processor", "amount", "latency_ms", "approved", "code", "fee")))
                s = obs.aggregate(part).slice(where)
                halves[parity] = s if halves[parity] is None else _add(halves[parity], s)
        hurt += judge_reroute(halves[0], halves[1], None, None).outcome is Outcome.HURT
    assert hurt <= 5


def _add(a, b):
    from slice_stats import SliceStats
    return SliceStats(**{k: getattr(a, k) + getattr(b, k) for k in a.__dict__})
