"""Localise: name the smallest combination of dimension values that explains a drop in approvals.

Every value of every dimension, and every pair of values, is a candidate segment; one is
flagged when its first-attempt rate in the window is well below its own baseline (a
two-proportion z test on a slice with volume), or when its sequential evidence crossed the
threshold (a thin slice failing for several ticks). A flagged segment is then moved to the
level that explains it, the ripple rule of HotSpot / Squeeze:

- refine: a value (gateway=payu) whose lost approvals sit mostly (>= 70%) in one child along
  another dimension (bank=icici), with the rest of the value healthy, is that pair: one bank
  on one gateway, not the whole gateway;
- generalise: a pair whose parent value is bad outside the pair too is the parent: a bank down
  on every gateway, not on one.

Segments are taken in order of approvals lost; one that shares a value with a segment
already named is part of it (two incidents on the same entity at once are reported as one).
A pair of issuer and processor is named issuer_degradation; an issuer bad on two or more
processors, issuer_outage; anything else, segment_degradation with its target keys.

Pure: a Snapshot in, hypotheses out; never decides or acts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_universe import ALL, OTHER
from formatting import pct
from reasoner import Cause, Hypothesis, make_target

POOLED = (OTHER, ALL)


@dataclass(frozen=True)
class LocaliseSettings:
    min_payments: int = 200          # first attempts in the window for a z test (Primer-style: below it, noise)
    min_baseline_payments: int = 400
    min_drop: float = 0.05           # 5 pp below baseline matters to payment ops
    min_z: float = 5.0               # thousands of segments are tested every tick
    healthy_drop: float = 0.03       # the rest of a segment within 3 pp of its baseline (or not significantly
                                     # below it, z < 3) is healthy
    explain_share: float = 0.7       # a child holding this share of its parent's lost approvals explains it
    min_peer_payments: int = 60      # the rest of a parent below this is too thin to call healthy or bad
    seq_min_z: float = 2.5           # a slice flagged by sequential evidence must still be down in the window ...
    seq_min_payments: int = 5        # ... on at least this many first attempts (two failures prove nothing)
    min_recent_payments: int = 50    # the latest tick overrules the window (a fault that has passed) with this many
    max_hypotheses: int = 8


@dataclass(frozen=True)
class Segment:
    """One candidate: dimension values (as codes) with its window and baseline numbers."""
    dims: tuple[str, ...]
    codes: tuple[int, ...]
    n: float                         # first attempts in the window
    x: float                         # first approvals in the window
    n_base: float
    x_base: float
    evidence: float                  # the CUSUM of its view cell

    @property
    def rate(self) -> float:
        return self.x / self.n if self.n else 0.0

    @property
    def base_rate(self) -> float:
        return self.x_base / self.n_base if self.n_base else 0.0

    @property
    def lost(self) -> float:
        """Approvals lost in the window against the baseline rate."""
        return max(0.0, self.n * self.base_rate - self.x)

    @property
    def key(self) -> tuple:
        return tuple(zip(self.dims, self.codes))


def _z(n, x, nb, xb) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        rb = np.where(nb > 0, xb / np.maximum(nb, 1), 0.0)
        rn = np.where(n > 0, x / np.maximum(n, 1), 0.0)
        var = np.maximum(rb * (1 - rb), 0.01) * (1 / np.maximum(n, 1) + 1 / np.maximum(nb, 1))
        return rb - rn, (rb - rn) / np.sqrt(var)


class Localiser:
    """Reads one snapshot: the arrays of every single and pair view, and the segments they flag."""

    def __init__(self, snap, s: LocaliseSettings, threshold: float | None):
        self.snap, self.s, self.threshold = snap, s, threshold
        self.dims = tuple(snap.universe.dims)
        self.tables: dict[tuple[str, ...], dict[str, np.ndarray]] = {}

    def table(self, dims: tuple[str, ...]) -> dict[str, np.ndarray]:
        if dims not in self.tables:
            w, b = self.snap.window.marginal(dims), self.snap.baseline.marginal(dims)
            ev = self.snap.evidence.get(dims)
            if ev is None and len(dims) == 2 and dims[::-1] in self.snap.evidence:
                ev = self.snap.evidence[dims[::-1]].T
            self.tables[dims] = {"n": w["payments"].astype(float), "x": w["first_approvals"].astype(float),
                                 "nb": b["payments"].astype(float), "xb": b["first_approvals"].astype(float),
                                 "ev": np.zeros(w["payments"].shape) if ev is None else ev}
        return self.tables[dims]

    def segment(self, key: tuple) -> Segment:
        dims, codes = tuple(k for k, _ in key), tuple(c for _, c in key)
        t, ix = self.table(dims), tuple(codes)
        return Segment(dims, codes, t["n"][ix], t["x"][ix], t["nb"][ix], t["xb"][ix], float(t["ev"][ix]))

    def flagged(self) -> list[Segment]:
        """Every single value and pair of values that is clearly below its baseline, most approvals lost first."""
        s, out = self.s, []
        views = [(d,) for d in self.dims] + [(a, b) for i, a in enumerate(self.dims) for b in self.dims[i + 1:]]
        for dims in views:
            if self.snap.window.view_for(dims) is None or any(self.snap.universe.size(d) < 2 for d in dims):
                continue
            t = self.table(dims)
            drop, z = _z(t["n"], t["x"], t["nb"], t["xb"])
            # a shift every slice shares (declines rise at night) is nobody's incident: judge the excess over the
            # median slice's drop, which one failing slice cannot move
            measured = (t["n"] >= s.min_payments) & (t["nb"] >= s.min_baseline_payments)
            shift = max(0.0, float(np.median(drop[measured]))) if measured.sum() >= 3 else 0.0
            z = z * np.where(drop > 0, np.maximum(drop - shift, 0) / np.where(drop > 0, drop, 1), 1)
            drop = drop - shift
            by_z = measured & (drop >= s.min_drop) & (z >= s.min_z)
            # a slice too thin for one window: its evidence over several crossed the threshold, and its window
            # is still clearly down (a slice with volume is judged on its window alone)
            by_seq = ((t["ev"] >= self.threshold) & (drop >= s.min_drop) & (z >= s.seq_min_z)
                      & (t["n"] < s.min_payments) & (t["n"] >= s.seq_min_payments)
                      if self.threshold is not None else np.zeros_like(by_z))
            last = self.snap.last.marginal(dims)
            n_last, x_last = last["payments"], last["first_approvals"]
            with np.errstate(divide="ignore", invalid="ignore"):
                passed = (n_last >= s.min_recent_payments) & (
                    t["xb"] / np.maximum(t["nb"], 1) - x_last / np.maximum(n_last, 1) < s.healthy_drop)
            keep = (by_z | by_seq) & ~passed & ~self._pooled(dims)
            for ix in zip(*np.nonzero(keep)):
                out.append(self.segment(tuple(zip(dims, (int(i) for i in ix)))))
        return sorted(out, key=lambda g: (-g.lost, g.key))

    def _pooled(self, dims: tuple[str, ...]) -> np.ndarray:
        """Cells holding a pooled or absent value ('(other)', '(all)'): not an entity anyone can act on."""
        u = self.snap.universe
        marks = [np.array([n in POOLED for n in u.names(d)]) for d in dims]
        out = marks[0]
        for m in marks[1:]:
            out = out[..., None] | m
        return out

    def explained_by(self, g: Segment, root: Segment) -> bool:
        """Could `root` account for most of g's lost approvals? Shared values: yes. Otherwise g and root overlap at
        most as much as any pair of their values does, so the smallest such pair's lost approvals bound it."""
        if set(g.key) & set(root.key):
            return True
        bound = np.inf
        for gd, gc in g.key:
            for rd, rc in root.key:
                if gd == rd:
                    return False                           # the same dimension, another value: disjoint
                bound = min(bound, self.segment(((gd, gc), (rd, rc))).lost)
        # what is left of g's loss once the most the root could hold is taken away: still a material, clear drop?
        left = max(0.0, g.lost - bound) / max(g.n, 1)
        se = np.sqrt(max(g.base_rate * (1 - g.base_rate), 0.01) / max(g.n, 1))
        return bound >= self.s.explain_share * g.lost or left < self.s.min_drop or left / se < self.s.min_z

    def _rest(self, parent: Segment, child: Segment) -> Segment:
        return Segment(parent.dims, parent.codes, parent.n - child.n, parent.x - child.x, parent.n_base - child.n_base,
                       parent.x_base - child.x_base, 0.0)

    def _bad(self, g: Segment, than: float = 0.0) -> bool:
        """Measured, significantly and materially below its baseline: by min_drop, and by a third of `than`."""
        drop, z = _z(np.array(g.n), np.array(g.x), np.array(g.n_base), np.array(g.x_base))
        return bool(g.n >= self.s.min_peer_payments and drop >= max(self.s.min_drop, than / 3) and z >= 3.0)

    def _healthy(self, g: Segment, than: float) -> bool:
        """Too thin to say, within healthy_drop of its baseline, not significantly below it, or fallen by less
        than a quarter of what `than` (the child that explains it) fell: the ripple, not the source."""
        if g.n < self.s.min_peer_payments or g.base_rate - g.rate < max(self.s.healthy_drop, than / 4):
            return True
        _, z = _z(np.array(g.n), np.array(g.x), np.array(g.n_base), np.array(g.x_base))
        return float(z) < 3.0

    def refine(self, g: Segment) -> Segment | None:
        """A single value explained by one child along another dimension, the rest of it healthy."""
        (d,), (i,) = g.dims, g.codes
        best = None
        for e in self.dims:
            if e == d or self.snap.universe.size(e) < 2 or self.snap.window.view_for((d, e)) is None:
                continue
            t = self.table((d, e))
            lost = np.maximum(0.0, t["n"][i] * np.where(t["nb"][i] > 0, t["xb"][i] / np.maximum(t["nb"][i], 1), 0) - t["x"][i])
            if lost.sum() <= 0:
                continue
            j = int(np.argmax(lost))
            share = lost[j] / max(g.lost, lost.sum())
            child = self.segment(((d, i), (e, j)))
            if child.n == g.n and child.n_base == g.n_base:
                continue                               # the same payments (upi_collect is all upi): no refinement
            if share >= self.s.explain_share and self._healthy(self._rest(g, child), child.base_rate - child.rate):
                if best is None or share > best[0]:
                    best = (share, child)
        return None if best is None else best[1]

    def generalise(self, g: Segment) -> Segment | None:
        """A pair whose parent value is bad outside the pair too is the parent."""
        for k in range(2):
            parent = self.segment(((g.dims[k], g.codes[k]),))
            if self._bad(self._rest(parent, g), g.base_rate - g.rate):
                return parent
        return None

    def nested(self, g: Segment) -> Segment | None:
        """A pair whose one value lies inside the other (upi_collect is always upi) is just the inner value."""
        for k in range(2):
            single = self.segment(((g.dims[k], g.codes[k]),))
            if single.n == g.n and single.n_base == g.n_base:
                return single
        return None

    def narrow(self, g: Segment) -> Segment | None:
        """A pair (upi on payu) whose loss sits in a value nested inside one of its values (upi_collect, always upi)
        is that narrower pair (upi_collect on payu), the rest of it healthy."""
        for k in range(2):
            (d, i), (e, j) = g.key[k], g.key[1 - k]
            for f in self.dims:
                if f in (d, e) or self.snap.window.view_for((d, f)) is None or self.snap.window.view_for((f, e)) is None:
                    continue
                inner, single = self.table((d, f)), self.table((f,))
                nested = (inner["n"][i] == single["n"]) & (inner["nb"][i] == single["nb"]) & (single["nb"] > 0)
                for q in np.flatnonzero(nested):
                    child = self.segment(((f, int(q)), (e, j)))
                    if child.lost >= self.s.explain_share * g.lost and self._healthy(
                            self._rest(g, child), child.base_rate - child.rate):
                        return child
        return None

    def resolve(self, g: Segment) -> Segment:
        seen = set()
        while g.key not in seen:
            seen.add(g.key)
            nxt = self.refine(g) if len(g.dims) == 1 else (self.nested(g) or self.narrow(g) or self.generalise(g))
            if nxt is None:
                return g
            g = nxt
        return g


def name(g: Segment, loc: Localiser, s: LocaliseSettings) -> tuple[Cause, dict[str, str], list[str]]:
    """The cause a segment is, its target as names, and what else the evidence says."""
    u = loc.snap.universe
    target = {d: u.names(d)[c] for d, c in zip(g.dims, g.codes)}
    notes = []
    if set(g.dims) == {"issuer", "processor"}:
        return Cause.ISSUER_DEGRADATION, target, notes
    if g.dims == ("issuer",) and u.size("processor") >= 2:
        t = loc.table(("issuer", "processor"))
        i = g.codes[0]
        bad = [p for p in range(u.size("processor"))
               if loc._bad(Segment(("issuer", "processor"), (i, p), t["n"][i, p], t["x"][i, p], t["nb"][i, p],
                                   t["xb"][i, p], 0.0))]
        if len(bad) >= 2:
            notes.append(f"bad on {', '.join(u.processor_names[p] for p in bad)}: every measured processor")
            return Cause.ISSUER_OUTAGE, target, notes
        if len(bad) == 1 and t["n"][i, bad[0]] >= 0.95 * t["n"][i].sum():
            # all of the issuer goes through one processor: as far as the data shows, that path fails
            notes.append(f"only measured on {u.processor_names[bad[0]]}: the other processors are too thin to compare")
            return Cause.ISSUER_DEGRADATION, {**target, "processor": u.processor_names[bad[0]]}, notes
    return Cause.SEGMENT_DEGRADATION, target, notes


def confidence(g: Segment, s: LocaliseSettings, threshold: float | None) -> float:
    drop, z = _z(np.array(g.n), np.array(g.x), np.array(g.n_base), np.array(g.x_base))
    by_z = 0.4 + 0.3 * min(1.0, float(drop) / 0.15) + 0.3 * min(1.0, max(0.0, float(z) - s.min_z) / 8)
    by_seq = 0.6 + 0.3 * min(1.0, (g.evidence - threshold) / threshold) if threshold and g.evidence >= threshold else 0.0
    return round(min(0.99, max(by_z if g.n >= s.min_payments else 0.0, by_seq)), 4)


def detect_segments(snap, s: LocaliseSettings = LocaliseSettings(), threshold: float | None = None,
                    explained: tuple[dict[str, str], ...] = (),
                    recent: tuple[dict[str, str], ...] = ()) -> list[Hypothesis]:
    """The smallest segments that explain the drops of this snapshot, as hypotheses, most approvals lost first.

    explained: targets another detector already named (a slow processor): nothing they explain is named.
    recent: segments named in recent ticks: they are named again while they fail, and what they explain is not.
    """
    loc = Localiser(snap, s, threshold)
    u = snap.universe
    as_segments = lambda targets: [loc.segment(tuple((d, u.index(d, v)) for d, v in t.items()))  # noqa: E731
                                   for t in targets]
    other, own = as_segments(explained), as_segments(recent)
    named: list[Segment] = []
    for g in loc.flagged():
        if any(loc.explained_by(g, r) for r in other + named):
            continue                                   # part of a segment already named
        if any(loc.explained_by(g, r) for r in own) and not any(set(g.key) == set(r.key) for r in own):
            continue                                   # part of a segment named lately (which, itself, may stay)
        root = loc.resolve(g)
        if any(set(root.key) & set(r.key) for r in other + named):
            continue
        named.append(root)
        if len(named) >= s.max_hypotheses:
            break
    out = []
    for g in named:
        cause, target, notes = name(g, loc, s)
        drop, z = _z(np.array(g.n), np.array(g.x), np.array(g.n_base), np.array(g.x_base))
        evidence = [f"first-attempt {pct(g.rate)} vs {pct(g.base_rate)} baseline on {g.n:,.0f} payments "
                    f"(z={float(z):.1f}), ~{g.lost:,.0f} approvals lost in the window"]
        if threshold is not None and g.evidence >= threshold:
            evidence.append(f"sequential evidence {g.evidence:.1f} (threshold {threshold:g}) over the last ticks")
        out.append(Hypothesis(cause, make_target(**target), confidence(g, s, threshold), tuple(evidence + notes)))
    return out
