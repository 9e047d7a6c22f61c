"""Sequential evidence: a CUSUM of first-attempt declines per slice, so thin slices are judged over many ticks.

A slice with a few dozen first attempts per tick never reaches the 200 a single window
needs, yet one that fails hard is plain after a few ticks. Per slice, each tick adds the
log-likelihood ratio of "the approval rate fell by `drop`" against "it is at its baseline",
and the sum is floored at zero (Page's CUSUM):

    S_t = max(0, S_{t-1} + x log(p1/p0) + (n - x) log((1 - p1)/(1 - p0)))

Two changes make it forget a recovered slice quickly: a tick's evidence of health counts
`recovery` times over, and S never exceeds twice the threshold.

with n first attempts, x approvals, p0 the slice's baseline rate (shrunk towards the
whole traffic's rate by `prior` pseudo-attempts, so a thin baseline cannot claim 100%) and
p1 = p0 - drop. A slice whose rate stays within about drop/2 of its baseline drifts back to
zero; one that fails hard crosses `threshold` within a few ticks. Worked example: p0 = 0.9,
drop = 0.1, a tick of 30 attempts with 9 approvals adds 21 log(2) + 9 log(8/9) = 13.5.

Pure numpy on arrays handed in; the observer keeps the running S per view.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SequentialSettings:
    drop: float = 0.10            # the fall in first-attempt approval rate the test looks for (10 pp)
    prior: float = 50.0           # pseudo-attempts at the whole traffic's rate added to every slice's baseline
    threshold: float = 16.0       # ln of the likelihood ratio that counts as evidence (e^16: thousands of slices
                                  # are tested every tick, so a false alarm must be rarer than one in millions)
    recovery: float = 4.0         # evidence of health counts this many times over, and S stops at 2 x threshold:
                                  # a slice that recovered stops being flagged within minutes, not hours
    min_baseline: int = 30        # first attempts a slice's baseline needs before it is tested at all
    views: tuple[tuple[str, ...], ...] | None = None   # which slices get a CUSUM; None: every cell of every view


def baseline_rate(x_base: np.ndarray, n_base: np.ndarray, overall: float, prior: float) -> np.ndarray:
    """Each slice's baseline first-attempt rate, shrunk towards the overall rate."""
    return (x_base + prior * overall) / (n_base + prior)


def cusum_step(s: np.ndarray, n: np.ndarray, x: np.ndarray, p0: np.ndarray, cfg: SequentialSettings,
               tested: np.ndarray) -> np.ndarray:
    """One tick of Page's CUSUM per slice; slices not tested (thin baseline) stay at zero."""
    p0 = np.clip(p0, 0.02, 0.995)
    p1 = np.clip(p0 - cfg.drop, 0.01, None)
    llr = x * np.log(p1 / p0) + (n - x) * np.log((1 - p1) / (1 - p0))
    llr = np.where(llr < 0, cfg.recovery * llr, llr)
    return np.where(tested, np.clip(s + llr, 0.0, 2 * cfg.threshold), 0.0)
