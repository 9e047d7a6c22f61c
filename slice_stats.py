"""Slice totals: what the observer answers about one slice (counts, rates) and latency quantiles from histograms.

A SliceStats is the sum of a slice over a span of ticks; its rates are None when nothing
was seen. Latency is kept as a log-spaced histogram (bins ~7% wide) and read back as
quantiles, interpolated geometrically inside a bin.

Values only; no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAT_EDGES = np.geomspace(50.0, 40_000.0, 97)  # 96 log bins, each ~7% wide
N_BINS = len(LAT_EDGES) - 1


@dataclass(frozen=True)
class SliceStats:
    """Totals of one slice over a span of ticks; rates are None when nothing was seen."""
    attempts: int
    approvals: int
    payments: int                # first attempts: payments that started in the span
    first_approvals: int
    retries: int
    retry_approvals: int
    late_retries: int            # attempt 3 and later
    late_retry_approvals: int
    fees: float
    approved_amount: float

    @classmethod
    def sum(cls, parts) -> "SliceStats":
        """Totals over several slices or ticks; parts are SliceStats or their dicts (as guard windows keep them)."""
        rows = [p if isinstance(p, dict) else p.__dict__ for p in parts]
        return cls(**{k: sum(r[k] for r in rows) for k in cls.__dataclass_fields__})

    @staticmethod
    def _ratio(a: float, b: float) -> float | None:
        return a / b if b else None

    @property
    def success_rate(self) -> float | None:
        return self._ratio(self.approvals, self.attempts)

    @property
    def first_attempt_rate(self) -> float | None:
        return self._ratio(self.first_approvals, self.payments)

    @property
    def retry_rate(self) -> float | None:
        return self._ratio(self.retry_approvals, self.retries)

    @property
    def attempts_per_payment(self) -> float | None:
        return self._ratio(self.attempts, self.payments)

    @property
    def approvals_per_payment(self) -> float | None:
        return self._ratio(self.approvals, self.payments)

    @property
    def cost_per_approved(self) -> float | None:
        return self._ratio(self.fees, self.approvals)


def histogram_quantiles(hist: np.ndarray, qs) -> tuple[float | None, ...]:
    """Quantiles from the log-spaced histogram, interpolated geometrically inside a bin."""
    n = hist.sum()
    if n == 0:
        return tuple(None for _ in qs)
    cdf = np.cumsum(hist)
    out = []
    for q in qs:
        b = int(np.searchsorted(cdf, q * n, side="left"))
        below = cdf[b - 1] if b else 0
        frac = (q * n - below) / hist[b] if hist[b] else 0.0
        lo, hi = LAT_EDGES[b], LAT_EDGES[b + 1]
        out.append(float(lo * (hi / lo) ** frac))
    return tuple(out)
