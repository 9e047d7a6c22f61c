"""Observe: fold each tick's attempts into count cubes and answer questions about slices.

A tick becomes one integer cube counts[issuer, processor, merchant, method,
attempt bucket (1, 2, 3+), code] plus fee and approved-amount sums and a
log-spaced latency histogram per processor, all by np.bincount. The observer
keeps a ring of those cubes: the last `window_ticks` are "now", the
`baseline_ticks` before them are the slice's own past. Snapshots are frozen.

Never decides or acts, and never sees faults: only what the traffic shows.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from decline_codes import CODE_LABELS, HARD_CODES, N_CODES, Code
from merchant_profiles import Universe
from simulator import Batch

ATTEMPT_BUCKETS = 3                       # attempt 1, attempt 2, attempt 3 and later
LAT_EDGES = np.geomspace(50.0, 40_000.0, 97)  # 96 log bins, each ~7% wide
DIMS = ("issuer", "processor", "merchant", "method")


@dataclass(frozen=True)
class ObserverSettings:
    window_ticks: int = 6        # "now": one minute at 10 s ticks, Razorpay flags issuer downtime in <= 3 min
    baseline_ticks: int = 120    # the slice's own past, lagging the window (20 min at 10 s ticks)


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


_COUNT_FIELDS = ("attempts", "approvals", "payments", "first_approvals", "retries", "retry_approvals",
                 "late_retries", "late_retry_approvals")


@dataclass(frozen=True, eq=False)
class Stats:
    """Summed cubes over a span of ticks."""
    counts: np.ndarray           # [I, P, M, K, A, C] int64
    fees: np.ndarray             # [I, P, M, K, A]
    approved_amount: np.ndarray  # [I, P, M, K, A]
    latency_hist: np.ndarray     # [P, bins]
    ticks: int
    hard_retries: np.ndarray     # [M] retries of a hard decline (Visa category 1: never to be retried)

    @cached_property
    def _memo(self) -> dict:
        """Marginals and quantiles already computed: the reasoner and the decision ask for many slices per tick."""
        return {}

    def _marginal(self, keep: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Every SliceStats field as an array over the kept dimensions, e.g. ("issuer",) -> arrays of shape [I]."""
        key = ("marginal", keep)
        if key not in self._memo:
            drop = tuple(a for a, d in enumerate(DIMS) if d not in keep)
            c = self.counts.sum(axis=drop)        # [..keep.., A, C]
            att, appr = c.sum(axis=-1), c[..., Code.APPROVED]
            self._memo[key] = {
                "attempts": att.sum(axis=-1), "approvals": appr.sum(axis=-1),
                "payments": att[..., 0], "first_approvals": appr[..., 0],
                "retries": att[..., 1:].sum(axis=-1), "retry_approvals": appr[..., 1:].sum(axis=-1),
                "late_retries": att[..., 2], "late_retry_approvals": appr[..., 2],
                "fees": self.fees.sum(axis=drop).sum(axis=-1),
                "approved_amount": self.approved_amount.sum(axis=drop).sum(axis=-1)}
        return self._memo[key]

    def slice(self, target: dict[str, int] | None = None) -> SliceStats:
        """Totals for a target given as integer codes, e.g. {"issuer": 0, "processor": 2}."""
        target = target or {}
        keep = tuple(d for d in DIMS if d in target)
        ix = tuple(target[d] for d in keep)
        m = self._marginal(keep)
        return SliceStats(*(int(m[f][ix]) for f in _COUNT_FIELDS), float(m["fees"][ix]), float(m["approved_amount"][ix]))

    def table(self, *by: str) -> dict[str, np.ndarray]:
        """Per-slice arrays over the named dimensions (e.g. "issuer", "processor")."""
        m = self._marginal(tuple(d for d in DIMS if d in by))
        return {k: m[k] for k in ("attempts", "approvals", "payments", "first_approvals", "retries",
                                  "retry_approvals", "fees")}

    def code_mix(self) -> dict[str, int]:
        totals = self.counts.reshape(-1, N_CODES).sum(axis=0)
        return {label: int(n) for label, n in zip(CODE_LABELS, totals)}

    def latency_quantiles(self, processor: int | None = None, qs=(0.5, 0.95, 0.99)) -> tuple[float | None, ...]:
        key = ("latency", processor, tuple(qs))
        if key not in self._memo:
            hist = self.latency_hist.sum(axis=0) if processor is None else self.latency_hist[processor]
            self._memo[key] = histogram_quantiles(hist, qs)
        return self._memo[key]

    @cached_property
    def total(self) -> SliceStats:
        return self.slice()


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


@dataclass(frozen=True, eq=False)
class Snapshot:
    tick: int
    universe: Universe
    window: Stats
    baseline: Stats
    last: Stats

    def code(self, kind: str, name: str) -> int:
        return self.universe.index(kind, name)

    def codes(self, target: dict[str, str]) -> dict[str, int]:
        return {k: self.universe.index(k, v) for k, v in target.items()}

    def summary(self) -> dict:
        """The headline numbers, JSON-ready."""
        w, b = self.window.total, self.baseline.total
        p50, p95, p99 = self.window.latency_quantiles()
        return {
            "tick": self.tick, "payments": w.payments, "attempts": w.attempts,
            "success_rate": w.success_rate, "baseline_success_rate": b.success_rate,
            "first_attempt_success_rate": w.first_attempt_rate,
            "baseline_first_attempt_success_rate": b.first_attempt_rate,
            "retry_success_rate": w.retry_rate, "attempts_per_payment": w.attempts_per_payment,
            "baseline_attempts_per_payment": b.attempts_per_payment,
            "p50_latency_ms": p50, "p95_latency_ms": p95, "p99_latency_ms": p99,
            "cost_per_approved": w.cost_per_approved, "approved_amount": w.approved_amount,
            "window_ticks": self.window.ticks, "baseline_ticks": self.baseline.ticks,
        }


class Observer:
    """Holds the ring of per-tick cubes; `observe(batch)` returns the new Snapshot."""

    def __init__(self, universe: Universe, settings: ObserverSettings = ObserverSettings()):
        self.universe = universe
        self.settings = settings
        self.shape = (len(universe.issuers), len(universe.processors), len(universe.merchants),
                      len(universe.methods), ATTEMPT_BUCKETS)
        self._ring: deque[Stats] = deque(maxlen=settings.window_ticks + settings.baseline_ticks)
        self._window = self._baseline = empty_stats(self.shape, len(LAT_EDGES) - 1)
        self._since_exact = 0

    def aggregate(self, batch: Batch) -> Stats:
        """One tick's attempts -> one Stats, columnar (bincount over flat cell codes)."""
        nI, nP, nM, nK, nA = self.shape
        a = np.minimum(batch.attempt, ATTEMPT_BUCKETS).astype(np.int64) - 1
        cell = (((batch.issuer.astype(np.int64) * nP + batch.processor) * nM + batch.merchant) * nK + batch.method) * nA + a
        ncell = nI * nP * nM * nK * nA
        counts = np.bincount(cell * N_CODES + batch.code, minlength=ncell * N_CODES).reshape(self.shape + (N_CODES,))
        fees = np.bincount(cell, weights=batch.fee, minlength=ncell).reshape(self.shape)
        amount = np.bincount(cell, weights=batch.amount * batch.approved, minlength=ncell).reshape(self.shape)
        nb = len(LAT_EDGES) - 1
        lb = np.clip(np.searchsorted(LAT_EDGES, batch.latency_ms, side="right") - 1, 0, nb - 1)
        lat = np.bincount(batch.processor.astype(np.int64) * nb + lb, minlength=nP * nb).reshape(nP, nb)
        hard = np.zeros(nM, dtype=np.int64) if batch.prev_code is None else \
            np.bincount(batch.merchant[np.isin(batch.prev_code, HARD_CODES)], minlength=nM)
        return Stats(counts, fees, amount, lat, 1, hard)

    def observe(self, batch: Batch) -> Snapshot:
        """Running sums: the new tick joins the window, the window's oldest moves to the baseline, the
        baseline's oldest leaves. New arrays every time, so earlier snapshots never change."""
        last = self.aggregate(batch)
        w = self.settings.window_ticks
        dropped = self._ring[0] if len(self._ring) == self._ring.maxlen else None
        self._ring.append(last)
        self._since_exact += 1
        if self._since_exact >= self._ring.maxlen:      # re-add from the ring now and then: float sums never drift
            ring = list(self._ring)
            self._window = sum_stats(ring[-w:], self.shape, len(LAT_EDGES) - 1)
            self._baseline = sum_stats(ring[:-w], self.shape, len(LAT_EDGES) - 1)
            self._since_exact = 0
        else:
            self._window = _add(self._window, last)
            if len(self._ring) > w:
                moving = self._ring[-w - 1]
                self._window = _add(self._window, moving, -1)
                self._baseline = _add(self._baseline, moving)
                if dropped is not None:
                    self._baseline = _add(self._baseline, dropped, -1)
        return Snapshot(batch.tick, self.universe, self._window, self._baseline, last)


def _add(a: Stats, b: Stats, sign: int = 1) -> Stats:
    return Stats(a.counts + sign * b.counts, a.fees + sign * b.fees, a.approved_amount + sign * b.approved_amount,
                 a.latency_hist + sign * b.latency_hist, a.ticks + sign * b.ticks, a.hard_retries + sign * b.hard_retries)


def empty_stats(shape: tuple, nbins: int) -> Stats:
    return Stats(np.zeros(shape + (N_CODES,), dtype=np.int64), np.zeros(shape), np.zeros(shape),
                 np.zeros((shape[1], nbins), dtype=np.int64), 0, np.zeros(shape[2], dtype=np.int64))


def sum_stats(parts: list[Stats], shape: tuple, nbins: int) -> Stats:
    if not parts:
        return empty_stats(shape, nbins)
    return Stats(sum(p.counts for p in parts), sum(p.fees for p in parts),
                 sum(p.approved_amount for p in parts), sum(p.latency_hist for p in parts), len(parts),
                 sum(p.hard_retries for p in parts))
