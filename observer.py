"""Observe: fold each tick's attempts into count cubes and answer questions about slices.

A tick becomes integer cubes counts[dimension values..., attempt bucket (1, 2, 3+), code]
plus fee and approved-amount sums, all by np.bincount, and a log-spaced latency histogram
per processor. Each cube is a *view* over some of the universe's dimensions: the simulator's
small universe keeps one view over all four (issuer, processor, merchant, method); a replayed
log with hundreds of banks and extra dimensions keeps one view per dimension and per pair,
which is enough to name one bank on one gateway. A slice is read from the smallest view
that holds its dimensions. The last `window_ticks` are "now"; the `baseline_ticks` before
them, kept in blocks of `block_ticks`, are each slice's own past. Snapshots are frozen.

Never decides or acts, and never sees faults: only what the traffic shows.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations
from typing import Protocol

import numpy as np

from decline_codes import CodeAxis
from sequential import SequentialSettings, baseline_rate, cusum_step
from simulator import Batch
from slice_stats import LAT_EDGES, N_BINS, SliceStats, histogram_quantiles

ATTEMPT_BUCKETS = 3                       # attempt 1, attempt 2, attempt 3 and later
DIMS = ("issuer", "processor", "merchant", "method")


class Universe(Protocol):
    """What the observer needs of a universe: its dimensions, their sizes and its code axis."""
    dims: tuple[str, ...]
    code_axis: CodeAxis

    def size(self, dim: str) -> int: ...


@dataclass(frozen=True)
class ObserverSettings:
    window_ticks: int = 6        # "now": one minute at 10 s ticks, Razorpay flags issuer downtime in <= 3 min
    baseline_ticks: int = 120    # the slice's own past, lagging the window (20 min at 10 s ticks)
    block_ticks: int = 1         # the baseline moves on in blocks of this many ticks (a day of minutes: 60)
    views: tuple[tuple[str, ...], ...] | None = None   # None: one view over every dimension (a full cube)
    sequential: SequentialSettings | None = None       # a CUSUM per view cell for thin slices (sequential.py)

    @property
    def blocks(self) -> int:
        return max(1, self.baseline_ticks // self.block_ticks)


def pair_views(dims: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """Every dimension alone and every pair: ('a', 'b', 'c') -> (a), (b), (c), (a, b), (a, c), (b, c)."""
    return tuple((d,) for d in dims) + tuple(combinations(dims, 2))


_VIEW_CHOICE: dict[tuple, int | None] = {}      # (views' dims, dims wanted) -> the index of the smallest view that fits

_COUNT_FIELDS = ("attempts", "approvals", "payments", "first_approvals", "retries", "retry_approvals",
                 "late_retries", "late_retry_approvals")


@dataclass(frozen=True, eq=False)
class View:
    """Counts over one combination of dimensions: counts [values..., A, C], fees and approved amount [values..., A]."""
    dims: tuple[str, ...]
    counts: np.ndarray
    fees: np.ndarray
    approved_amount: np.ndarray

    @property
    def cells(self) -> int:
        return math.prod(self.counts.shape[:-2])


@dataclass(frozen=True)
class Layout:
    """Where each view's cells sit in one packed array, so a tick's views add, subtract and test as one array."""
    dims: tuple[tuple[str, ...], ...]
    shapes: tuple[tuple[int, ...], ...]       # the value sizes of each view
    offsets: tuple[int, ...]
    cells: int


@dataclass(frozen=True, eq=False)
class Stats:
    """Summed cubes over a span of ticks: every view packed in counts [cells, A, C], fees and amount [cells, A]."""
    layout: Layout
    packed_counts: np.ndarray
    packed_fees: np.ndarray
    packed_amount: np.ndarray
    latency_hist: np.ndarray     # [P, bins]
    ticks: int
    hard_retries: np.ndarray     # [M] retries of a hard decline (Visa category 1: never to be retried)

    @cached_property
    def views(self) -> tuple[View, ...]:
        out = []
        for dims, shape, o in zip(self.layout.dims, self.layout.shapes, self.layout.offsets):
            n = math.prod(shape)
            out.append(View(dims, self.packed_counts[o:o + n].reshape(shape + self.packed_counts.shape[1:]),
                            self.packed_fees[o:o + n].reshape(shape + self.packed_fees.shape[1:]),
                            self.packed_amount[o:o + n].reshape(shape + self.packed_amount.shape[1:])))
        return tuple(out)

    @property
    def counts(self) -> np.ndarray:
        """The widest view's counts (the whole cube in the simulator)."""
        return self.views[0].counts

    @cached_property
    def _memo(self) -> dict:
        """Marginals and quantiles already computed: the reasoner and the decision ask for many slices per tick."""
        return {}

    def view_for(self, keep: tuple[str, ...] | set[str]) -> View | None:
        """The smallest view holding every one of these dimensions (None when no view does)."""
        key = (self.layout.dims, frozenset(keep))
        if key not in _VIEW_CHOICE:
            fits = [(v.cells, k) for k, v in enumerate(self.views) if key[1] <= set(v.dims)]
            _VIEW_CHOICE[key] = min(fits)[1] if fits else None
        k = _VIEW_CHOICE[key]
        return None if k is None else self.views[k]

    def _marginal(self, keep: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Every SliceStats field as an array over the kept dimensions (in the view's order), e.g. ("issuer",) ->
        arrays of shape [I]."""
        key = ("marginal", keep)
        if key not in self._memo:
            view = self.view_for(keep)
            if view is None:
                raise KeyError(f"no view holds {keep}; views: {[v.dims for v in self.views]}")
            drop = tuple(a for a, d in enumerate(view.dims) if d not in keep)
            c = view.counts.sum(axis=drop)        # [..keep.., A, C]
            att, appr = c.sum(axis=-1), c[..., 0]
            self._memo[key] = {
                "attempts": att.sum(axis=-1), "approvals": appr.sum(axis=-1),
                "payments": att[..., 0], "first_approvals": appr[..., 0],
                "retries": att[..., 1:].sum(axis=-1), "retry_approvals": appr[..., 1:].sum(axis=-1),
                "late_retries": att[..., 2], "late_retry_approvals": appr[..., 2],
                "fees": view.fees.sum(axis=drop).sum(axis=-1),
                "approved_amount": view.approved_amount.sum(axis=drop).sum(axis=-1)}
        return self._memo[key]

    def marginal(self, dims: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Every SliceStats field as an array over exactly these dimensions, in this order (a view holding them)."""
        keep = self._keep(dims)
        m = self._marginal(keep)
        if keep == tuple(dims):
            return m
        order = [keep.index(d) for d in dims]
        return {k: np.transpose(v, order) for k, v in m.items()}

    def _keep(self, dims) -> tuple[str, ...]:
        view = self.view_for(dims)
        return tuple(d for d in (view.dims if view else dims) if d in dims)

    def slice(self, target: dict[str, int] | None = None) -> SliceStats:
        """Totals for a target given as integer codes, e.g. {"issuer": 0, "processor": 2}."""
        target = target or {}
        keep = self._keep(tuple(target))
        ix = tuple(target[d] for d in keep)
        m = self._marginal(keep)
        return SliceStats(*(int(m[f][ix]) for f in _COUNT_FIELDS), float(m["fees"][ix]), float(m["approved_amount"][ix]))

    def table(self, *by: str) -> dict[str, np.ndarray]:
        """Per-slice arrays over the named dimensions, in the order of the view that holds them."""
        m = self._marginal(self._keep(by))
        return {k: m[k] for k in ("attempts", "approvals", "payments", "first_approvals", "retries",
                                  "retry_approvals", "fees")}

    def code_counts(self, target: dict[str, int] | None = None) -> np.ndarray:
        """Attempts per code (the universe's code axis) in a slice."""
        target = target or {}
        view = self.view_for(tuple(target))
        drop = tuple(a for a, d in enumerate(view.dims) if d not in target)
        c = view.counts.sum(axis=drop).sum(axis=-2)
        return c[tuple(target[d] for d in view.dims if d in target)]

    def code_mix(self, labels: tuple[str, ...]) -> dict[str, int]:
        totals = self.code_counts()
        return {label: int(n) for label, n in zip(labels, totals)}

    def latency_quantiles(self, processor: int | None = None, qs=(0.5, 0.95, 0.99)) -> tuple[float | None, ...]:
        key = ("latency", processor, tuple(qs))
        if key not in self._memo:
            hist = self.latency_hist.sum(axis=0) if processor is None else self.latency_hist[processor]
            self._memo[key] = histogram_quantiles(hist, qs)
        return self._memo[key]

    @cached_property
    def total(self) -> SliceStats:
        return self.slice()


@dataclass(frozen=True, eq=False)
class Snapshot:
    tick: int
    universe: Universe
    window: Stats
    baseline: Stats
    last: Stats
    evidence: dict = field(default_factory=dict)   # view dims -> CUSUM per cell (first-attempt declines), if kept

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


@dataclass(frozen=True, eq=False)
class Attempts:
    """One tick of attempts as the observer reads them: a row per attempt, or per (slice, outcome) with a weight.

    The simulator's Batch becomes one with from_batch; a replayed log's tick with shadow.py.
    """
    tick: int
    dims: dict[str, np.ndarray]      # integer code per dimension
    attempt: np.ndarray              # 1, 2, 3 and later
    code: np.ndarray                 # index on the universe's code axis (0: approved)
    fee: np.ndarray                  # per row, all its attempts
    approved_amount: np.ndarray      # per row
    weight: np.ndarray | None = None        # attempts each row stands for; None: one each
    latency_ms: np.ndarray | None = None    # per row; NaN where unknown
    hard_retry: np.ndarray | None = None    # the row retries a hard decline
    new_payments: int = 0


def from_batch(batch: Batch, hard_codes) -> Attempts:
    """The simulator's attempts: one row each, every column known."""
    hard = None if batch.prev_code is None else np.isin(batch.prev_code, hard_codes)
    return Attempts(batch.tick, {d: getattr(batch, d) for d in DIMS}, batch.attempt, batch.code, batch.fee,
                    batch.amount * batch.approved, None, batch.latency_ms, hard, batch.new_payments)


class Observer:
    """Holds the window's per-tick cubes and the baseline's blocks; `observe(batch)` returns the new Snapshot."""

    def __init__(self, universe: Universe, settings: ObserverSettings = ObserverSettings()):
        self.universe = universe
        self.settings = settings
        views = settings.views or (tuple(universe.dims),)
        self.views = tuple(tuple(d for d in v if d in universe.dims) for v in views)
        self.shape = tuple(universe.size(d) for d in universe.dims) + (ATTEMPT_BUCKETS,)
        self.n_codes = len(universe.code_axis.labels)
        shapes = tuple(tuple(universe.size(d) for d in v) for v in self.views)
        sizes = [math.prod(sh) for sh in shapes]
        self.layout = Layout(self.views, shapes, tuple(int(x) for x in np.cumsum([0] + sizes[:-1])), sum(sizes))
        # a view's cell of a row = its dimension codes times these strides, plus the view's offset
        self._strides = np.zeros((len(universe.dims), len(self.views)), dtype=np.int64)
        for k, (dims, shape) in enumerate(zip(self.views, shapes)):
            for j, d in enumerate(dims):
                self._strides[universe.dims.index(d), k] = math.prod(shape[j + 1:])
        self._offsets = np.array(self.layout.offsets, dtype=np.int64)
        self._recent: deque[Stats] = deque(maxlen=settings.window_ticks + 1)
        self._blocks: deque[Stats] = deque(maxlen=settings.blocks)
        self._partial: list[Stats] = []
        self._window = self._baseline = self.empty()
        self._since_exact = 0
        self._cusum = np.zeros(self.layout.cells)
        self._tracked: dict[tuple[str, ...], np.ndarray] = {}

    def empty(self) -> Stats:
        n, A, C = self.layout.cells, ATTEMPT_BUCKETS, self.n_codes
        return Stats(self.layout, np.zeros((n, A, C), dtype=np.int64), np.zeros((n, A)), np.zeros((n, A)),
                     np.zeros((self._size("processor"), N_BINS), dtype=np.int64), 0,
                     np.zeros(self._size("merchant"), dtype=np.int64))

    def _size(self, dim: str) -> int:
        return self.universe.size(dim) if dim in self.universe.dims else 1

    def aggregate(self, batch: Batch | Attempts) -> Stats:
        """One tick's attempts -> one Stats, columnar (bincount over flat cell codes, one per view)."""
        at = batch if isinstance(batch, Attempts) else from_batch(batch, self.universe.code_axis.hard)
        u, C, A, lay = self.universe, self.n_codes, ATTEMPT_BUCKETS, self.layout
        a = np.minimum(at.attempt, ATTEMPT_BUCKETS).astype(np.int64) - 1
        if len(lay.dims) == 1:                                  # one cube: its cell by mixed radix, as ever
            cell = np.zeros(len(a), dtype=np.int64)
            for d in lay.dims[0]:
                cell = cell * u.size(d) + at.dims[d]
            cell = cell * A + a
            tile = lambda x: x                                  # noqa: E731
        else:                                                   # many views: every row's cell in each, at once
            codes = np.stack([at.dims[d] for d in self.universe.dims], axis=1).astype(np.int64)
            cell = ((codes @ self._strides + self._offsets) * A + a[:, None]).T.ravel()
            tile = lambda x: np.tile(x, len(lay.dims))          # noqa: E731
        weight = None if at.weight is None else tile(at.weight)
        counts = np.bincount(cell * C + tile(at.code), weights=weight, minlength=lay.cells * A * C)
        if weight is not None:
            counts = np.rint(counts).astype(np.int64)
        fees = np.bincount(cell, weights=tile(at.fee), minlength=lay.cells * A).reshape(lay.cells, A)
        amount = np.bincount(cell, weights=tile(at.approved_amount), minlength=lay.cells * A).reshape(lay.cells, A)
        nP = self._size("processor")
        proc = at.dims["processor"].astype(np.int64) if "processor" in at.dims else np.zeros(len(a), dtype=np.int64)
        lat = np.zeros((nP, N_BINS), dtype=np.int64)
        if at.latency_ms is not None and len(at.latency_ms):
            known = np.isfinite(at.latency_ms)
            lb = np.clip(np.searchsorted(LAT_EDGES, at.latency_ms[known], side="right") - 1, 0, N_BINS - 1)
            w = None if at.weight is None else at.weight[known]
            lat = np.bincount(proc[known] * N_BINS + lb, weights=w, minlength=nP * N_BINS).reshape(nP, N_BINS)
            lat = lat if w is None else np.rint(lat).astype(np.int64)
        nM = self._size("merchant")
        hard = np.zeros(nM, dtype=np.int64)
        if at.hard_retry is not None and "merchant" in at.dims:
            hard = np.bincount(at.dims["merchant"][at.hard_retry], minlength=nM)
        return Stats(lay, counts.reshape(lay.cells, A, C), fees, amount, lat, 1, hard)

    def observe(self, batch: Batch | Attempts) -> Snapshot:
        """Running sums: the new tick joins the window, the window's oldest moves to the baseline (whole blocks at
        a time), the baseline's oldest block leaves. New arrays every time, so earlier snapshots never change."""
        last = self.aggregate(batch)
        s = self.settings
        w = s.window_ticks
        self._recent.append(last)
        self._window = _add(self._window, last)
        moving = self._recent[0] if len(self._recent) > w else None
        if moving is not None:
            self._window = _add(self._window, moving, -1)
            self._partial.append(moving)
            if len(self._partial) == s.block_ticks:
                block = self._partial[0] if s.block_ticks == 1 else sum_stats(self._partial)
                self._partial = []
                dropped = self._blocks[0] if len(self._blocks) == self._blocks.maxlen else None
                self._blocks.append(block)
                self._baseline = _add(self._baseline, block)
                if dropped is not None:
                    self._baseline = _add(self._baseline, dropped, -1)
        self._since_exact += 1
        if self._since_exact >= w + s.blocks * s.block_ticks:   # re-add now and then: float sums never drift
            recent = list(self._recent)
            self._window = sum_stats(recent[-w:]) if recent else self.empty()
            self._baseline = sum_stats(list(self._blocks)) if self._blocks else self.empty()
            self._since_exact = 0
        evidence = self._sequential(last) if s.sequential else {}
        return Snapshot(batch.tick, self.universe, self._window, self._baseline, last, evidence)

    def _sequential(self, last: Stats) -> dict[tuple[str, ...], np.ndarray]:
        """Each tracked slice's CUSUM after this tick's first attempts, against its baseline rate (which lags):
        every cell of every view at once, packed, or the marginals named in the settings (the live agent's paths)."""
        cfg, base = self.settings.sequential, self._baseline
        overall = base.total.first_attempt_rate or 0.0
        if cfg.views is None:
            n_now, x_now = last.packed_counts[:, 0, :].sum(axis=-1), last.packed_counts[:, 0, 0]
            n_base, x_base = base.packed_counts[:, 0, :].sum(axis=-1), base.packed_counts[:, 0, 0]
            p0 = baseline_rate(x_base, n_base, overall, cfg.prior)
            self._cusum = cusum_step(self._cusum, n_now, x_now, p0, cfg, n_base >= cfg.min_baseline)
            lay = self.layout
            return {dims: self._cusum[o:o + math.prod(shape)].reshape(shape)
                    for dims, shape, o in zip(lay.dims, lay.shapes, lay.offsets)}
        out = {}
        for dims in cfg.views:
            now, past = last.marginal(dims), base.marginal(dims)
            p0 = baseline_rate(past["first_approvals"], past["payments"], overall, cfg.prior)
            prev = self._tracked.get(dims, np.zeros(past["payments"].shape))
            out[dims] = self._tracked[dims] = cusum_step(prev, now["payments"], now["first_approvals"], p0, cfg,
                                                         past["payments"] >= cfg.min_baseline)
        return out


def _add(a: Stats, b: Stats, sign: int = 1) -> Stats:
    return Stats(a.layout, a.packed_counts + sign * b.packed_counts, a.packed_fees + sign * b.packed_fees,
                 a.packed_amount + sign * b.packed_amount, a.latency_hist + sign * b.latency_hist,
                 a.ticks + sign * b.ticks, a.hard_retries + sign * b.hard_retries)


def sum_stats(parts: list[Stats]) -> Stats:
    """Totals over several ticks (at least one)."""
    return Stats(parts[0].layout, sum(p.packed_counts for p in parts), sum(p.packed_fees for p in parts),
                 sum(p.packed_amount for p in parts), sum(p.latency_hist for p in parts),
                 sum(p.ticks for p in parts),
                 sum(p.hard_retries for p in parts))
