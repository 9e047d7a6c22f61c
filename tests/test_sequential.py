"""sequential.py: Page's CUSUM of first-attempt declines, so a thin slice failing hard is found over a few ticks."""
from __future__ import annotations

import math

import numpy as np

from sequential import SequentialSettings, baseline_rate, cusum_step

CFG = SequentialSettings()


def step(s, n, x, p0, tested=True, cfg=CFG):
    return cusum_step(np.array([s], float), np.array([n], float), np.array([x], float), np.array([p0], float), cfg,
                      np.array([tested]))[0]


def test_the_docstrings_worked_example():
    # p0 = 0.9, drop 0.1: 30 attempts with 9 approvals add 21 log(2) + 9 log(8/9)
    assert math.isclose(step(0.0, 30, 9, 0.9), 21 * math.log(2) + 9 * math.log(8 / 9))
    assert math.isclose(step(0.0, 30, 9, 0.9), 13.5, abs_tol=0.05)


def test_a_thin_slice_failing_hard_crosses_the_threshold_within_a_few_ticks():
    s, ticks = 0.0, 0
    while s < CFG.threshold:
        s = step(s, 30, 9, 0.9)
        ticks += 1
    assert ticks == 2


def test_a_healthy_slice_stays_at_zero_and_evidence_of_health_counts_recovery_times_over():
    assert step(0.0, 40, 36, 0.9) == 0.0                                 # at its baseline: floored at zero
    llr = 30 * math.log(0.8 / 0.9) + 0 * math.log(0.2 / 0.1)             # a tick of 30 approvals out of 30
    assert math.isclose(step(20.0, 30, 30, 0.9), 20.0 + CFG.recovery * llr)


def test_the_sum_is_capped_at_twice_the_threshold_and_untested_slices_stay_at_zero():
    assert step(30.0, 200, 0, 0.9) == 2 * CFG.threshold
    assert step(30.0, 200, 0, 0.9, tested=False) == 0.0


def test_baseline_rate_is_shrunk_towards_the_overall_rate():
    # a thin baseline of 10/10 cannot claim 100%: 50 pseudo-attempts at the overall 80% pull it to 0.833
    r = baseline_rate(np.array([10.0, 0.0, 900.0]), np.array([10.0, 0.0, 1000.0]), 0.8, CFG.prior)
    assert np.allclose(r, [(10 + 40) / 60, 0.8, (900 + 40) / 1050])
