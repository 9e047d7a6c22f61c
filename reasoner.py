"""Reason: turn a Snapshot into hypotheses about what is wrong, with evidence.

The heuristics compare each slice with its own baseline and with its peers:
bad on one processor but fine on the others -> issuer_degradation on that path;
bad on every measured processor -> issuer_outage; attempts per payment up while
the first-attempt rate is flat -> retry_storm; p95 up on one processor ->
latency_spike. Issuer and processor health is read on first attempts only, so
a merchant's retries cannot make an issuer look sick.

Three detectors (detect_latency, detect_issuer_paths, detect_storms) read one
snapshot each. An optional LLM reasoner (llm_reasoner.py, under the contract in
llm_contract.py) may add or confirm hypotheses; merge_hypotheses records where each
came from. Never decides or acts; no network, SDK, clock or files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum

from formatting import pct
from observer import Snapshot
from slice_stats import SliceStats


class Cause(str, Enum):
    ISSUER_DEGRADATION = "issuer_degradation"
    ISSUER_OUTAGE = "issuer_outage"
    RETRY_STORM = "retry_storm"
    LATENCY_SPIKE = "latency_spike"
    SEGMENT_DEGRADATION = "segment_degradation"   # any other combination of values failing on its own (replays)
    NONE = "none"


class Source(str, Enum):
    HEURISTIC = "heuristic"
    GEMINI = "gemini"
    HEURISTIC_FALLBACK = "heuristic_fallback"


TARGET_KEYS = ("issuer", "processor", "merchant", "method")


@dataclass(frozen=True)
class Hypothesis:
    cause: Cause
    target: tuple[tuple[str, str], ...]       # sorted (key, name) pairs; dict(target) to read
    confidence: float
    evidence: tuple[str, ...] = ()
    source: Source = Source.HEURISTIC
    fallback_reason: str | None = None
    supported_by_heuristic: bool = True
    llm_confidence: float | None = None       # what the LLM said, when it named this hypothesis

    @property
    def target_dict(self) -> dict[str, str]:
        return dict(self.target)

    @property
    def key(self) -> tuple:
        return (self.cause.value, self.target)

    def to_dict(self) -> dict:
        d = {"cause": self.cause.value, "target": self.target_dict, "confidence": round(self.confidence, 3),
             "evidence": list(self.evidence), "source": self.source.value}
        if self.fallback_reason:
            d["fallback_reason"] = self.fallback_reason
        if not self.supported_by_heuristic:
            d["supported_by_heuristic"] = False
        if self.llm_confidence is not None:
            d["llm_confidence"] = round(self.llm_confidence, 3)
        return d


def make_target(**names: str | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in names.items() if v is not None))


@dataclass(frozen=True)
class ReasonerSettings:
    min_payments: int = 200          # first attempts in the window below which a slice is too thin to judge
    min_baseline_payments: int = 400
    min_baseline_ticks: int = 12     # warm-up: the first ticks have no retries yet and would skew every baseline
    min_drop: float = 0.05           # absolute first-attempt rate drop that matters to payment ops (5 pp)
    new_path_drop: float = 0.15      # a path with no baseline, against the issuer's usual rate (paths differ by ~8 pp)
    min_z: float = 4.0               # many slices are tested every tick: demand strong evidence
    healthy_drop: float = 0.03       # a peer within 3 pp of its baseline counts as healthy
    thin_peer_factor: float = 0.8    # confidence kept when no peer path could be measured
    latency_ratio: float = 1.5       # p95 now / p95 baseline that counts as a spike
    min_latency_attempts: int = 300
    storm_ratio: float = 1.2         # attempts per payment now / baseline
    storm_min_increase: float = 0.1
    storm_max_first_drop: float = 0.03
    min_storm_payments: int = 150
    min_peer_payments: int = 60      # thin peer paths of an issuer are pooled; below 60 first attempts even pooled is noise
    min_peer_baseline_payments: int = 120
    min_recent_payments: int = 50    # the latest tick overrules the window only with this many first attempts
    storm_early_ratio: float = 2.0   # retries past attempt 2 at least doubled before they count as an early sign
    storm_min_events: int = 5        # and at least this many of them in the window
    min_storm_baseline_ticks: int = 30  # a short baseline still holds the start, before the first payments' retries came back
    sequential_threshold: float = 16.0  # a thin path whose CUSUM (sequential.py) crossed this is judged on it ...
    seq_min_z: float = 2.5           # ... when its window is still clearly down ...
    seq_min_payments: int = 5        # ... on at least this many first attempts


def z_drop(now: SliceStats, base: SliceStats) -> tuple[float, float]:
    """(drop in first-attempt rate, its z score) of a slice against its baseline."""
    rn, rb = now.first_attempt_rate, base.first_attempt_rate
    var = max(rb * (1 - rb), 0.01) * (1 / now.payments + 1 / base.payments)
    drop = rb - rn
    return drop, drop / math.sqrt(var)


def _early_z(observed: int, base_count: int, base_n: int, n: int, s: "ReasonerSettings") -> float:
    """Is an event count per payment up on its baseline? Two Poisson rates compared conditionally on the total
    (a binomial z, so a short baseline's own noise counts); 0 unless the rate also rose storm_early_ratio times
    and at least storm_min_events events were seen."""
    if observed < s.storm_min_events or observed < s.storm_early_ratio * base_count / base_n * n:
        return 0.0
    p = n / (n + base_n)
    total = observed + base_count
    return (observed - total * p) / math.sqrt(total * p * (1 - p))


def _confidence(drop: float, z: float, s: ReasonerSettings, full_drop: float = 0.15) -> float:
    return min(0.99, 0.4 + 0.3 * min(1.0, drop / full_drop) + 0.3 * min(1.0, max(0.0, z - s.min_z) / 8))


def detect_latency(snap: Snapshot, s: ReasonerSettings) -> tuple[list[Hypothesis], set[int]]:
    """latency_spike per processor whose p95 (or median) is up on its baseline; also returns those processors,
    whose issuer paths are then not judged on approvals (timeouts make every issuer look sick there)."""
    out, spiking = [], set()
    for p, pname in enumerate(snap.universe.processor_names):
        p50, now = snap.window.latency_quantiles(p)[:2]
        base_p50, base = snap.baseline.latency_quantiles(p)[:2]
        n_now = int(snap.window.latency_hist[p].sum())
        n_base = int(snap.baseline.latency_hist[p].sum())
        if now is None or base is None or n_now < s.min_latency_attempts or n_base < s.min_latency_attempts:
            continue
        # p95 alone forgets a spike once 5% of the baseline is slow; the median keeps it until half is
        ratio = max(now / base, p50 / base_p50)
        if ratio >= s.latency_ratio:
            spiking.add(p)
            timeouts = int(snap.window.code_counts({"processor": p})[snap.universe.code_axis.timeout])
            conf = min(0.99, 0.55 + 0.45 * min(1.0, (ratio - s.latency_ratio) / 1.5))
            out.append(Hypothesis(Cause.LATENCY_SPIKE, make_target(processor=pname), conf, (
                f"p95 {now:.0f} ms vs baseline {base:.0f} ms (x{now / base:.1f}), p50 x{p50 / base_p50:.1f}",
                f"{timeouts} timeouts in the last {snap.window.ticks} ticks")))
    return out, spiking


@dataclass(frozen=True)
class PathReading:
    """An issuer's path (or its thin peer paths pooled) read against a baseline."""
    name: str
    drop: float                  # first-attempt rate, baseline minus now
    z: float
    now: SliceStats
    base: SliceStats
    sequential: bool = False     # too thin for one window: judged on its evidence over several


def thin_path_fails(snap: Snapshot, i: int, p: int, now: SliceStats, base: SliceStats, s: ReasonerSettings) -> bool:
    """A path too thin for one window fails when its sequential evidence crossed the threshold and the window
    is still clearly down (a few dozen first attempts a tick, failing hard, show within a few windows)."""
    ev = snap.evidence.get(("issuer", "processor"))
    if ev is None or ev[i, p] < s.sequential_threshold or now.payments < s.seq_min_payments or not base.payments:
        return False
    drop, z = z_drop(now, base)
    if drop < s.min_drop or z < s.seq_min_z:
        return False
    last = snap.last.slice({"issuer": i, "processor": p})
    if last.payments >= s.seq_min_payments and base.first_attempt_rate - last.first_attempt_rate < s.min_drop:
        return False                                    # its latest tick is healthy: a failure that has passed
    codes = snap.window.code_counts({"issuer": i, "processor": p})
    excess = (codes.sum() - codes[0]) - codes.sum() * (1 - base.success_rate)    # failures beyond the usual ones
    return codes[snap.universe.code_axis.timeout] < excess / 2          # timing out: the processor's latency


@dataclass(frozen=True)
class IssuerPaths:
    bad: tuple[PathReading, ...]
    healthy: tuple[str, ...]
    thin: tuple[tuple[str, SliceStats, SliceStats, bool], ...]   # (processor, now, baseline, spiking)


def read_issuer_paths(snap: Snapshot, i: int, spiking: set[int], s: ReasonerSettings) -> IssuerPaths:
    """Each processor path of issuer i: bad, healthy, or too thin to judge alone."""
    bad, healthy, thin = [], [], []
    for p, pname in enumerate(snap.universe.processor_names):
        now = snap.window.slice({"issuer": i, "processor": p})
        base = snap.baseline.slice({"issuer": i, "processor": p})
        if now.payments >= s.min_payments and base.payments < s.min_baseline_payments and p not in spiking:
            # traffic newly on a path with no past of its own: held against the issuer's usual rate, and
            # only a failure far beyond path-to-path differences in approval counts
            usual = snap.baseline.slice({"issuer": i})
            if usual.payments >= s.min_baseline_payments:
                drop, z = z_drop(now, usual)
                if drop >= s.new_path_drop and z >= s.min_z:
                    bad.append(PathReading(pname, drop, z, now, usual))
                continue
        if now.payments < s.min_payments or base.payments < s.min_baseline_payments:
            if p not in spiking and thin_path_fails(snap, i, p, now, base, s):
                drop, z = z_drop(now, base)
                bad.append(PathReading(pname, drop, z, now, base, sequential=True))
                continue
            thin.append((pname, now, base, p in spiking))
            continue
        drop, z = z_drop(now, base)
        if drop >= s.min_drop and z >= s.min_z and p not in spiking:
            last = snap.last.slice({"issuer": i, "processor": p})
            if last.payments >= s.min_recent_payments and base.first_attempt_rate - last.first_attempt_rate < s.healthy_drop:
                continue          # healthy again in the latest tick: the window still remembers a fault that has passed
            bad.append(PathReading(pname, drop, z, now, base))
        elif drop < s.healthy_drop:
            healthy.append(pname)
    return IssuerPaths(tuple(bad), tuple(healthy), tuple(thin))


def read_thin_peers(paths: IssuerPaths, s: ReasonerSettings) -> tuple[PathReading | None, str | None]:
    """Paths too thin alone are judged together: (the pool as a bad path, or the pool's name when healthy)."""
    peers = [t for t in paths.thin if not t[3]]
    if not peers:
        return None, None
    now, base = SliceStats.sum([t[1] for t in peers]), SliceStats.sum([t[2] for t in peers])
    if now.payments < s.min_peer_payments or base.payments < s.min_peer_baseline_payments:
        return None, None
    drop, z = z_drop(now, base)
    name = "+".join(t[0] for t in peers) + " pooled"
    if drop >= s.min_drop and z >= s.min_z:
        return PathReading(name, drop, z, now, base), None
    return None, (name if drop < s.healthy_drop else None)


def detect_issuer_paths(snap: Snapshot, s: ReasonerSettings, spiking: set[int]) -> list[Hypothesis]:
    """issuer_degradation on a path bad while its peers are healthy; issuer_outage when bad on every measured path."""
    out = []
    for i, iname in enumerate(snap.universe.issuer_names):
        paths = read_issuer_paths(snap, i, spiking, s)
        if not paths.bad:
            continue
        pooled_bad, pooled_healthy = read_thin_peers(paths, s)
        healthy = paths.healthy + ((pooled_healthy,) if pooled_healthy else ())
        every = paths.bad + ((pooled_bad,) if pooled_bad else ())
        if not healthy and len(every) >= 2:      # bad on every measured processor: the issuer, not a path
            out.append(Hypothesis(Cause.ISSUER_OUTAGE, make_target(issuer=iname), _confidence(
                min(b.drop for b in every), min(b.z for b in every), s), tuple(
                f"{iname} on {b.name}: first-attempt {pct(b.now.first_attempt_rate)} vs "
                f"{pct(b.base.first_attempt_rate)} baseline" for b in every) + ("bad on every measured processor",)))
            continue
        for b in paths.bad:
            conf = _confidence(b.drop, b.z, s)
            peers = (f"healthy on {', '.join(healthy)}" if healthy else
                     f"other processors too thin to compare ({', '.join(t[0] for t in paths.thin) or 'none'})")
            if not healthy:
                conf *= s.thin_peer_factor
            seq = (f"; a thin path: sequential evidence {snap.evidence[('issuer', 'processor')][i, snap.code('processor', b.name)]:.1f}"
                   f" over the last ticks" if b.sequential else "")
            out.append(Hypothesis(Cause.ISSUER_DEGRADATION, make_target(issuer=iname, processor=b.name), conf, (
                f"first-attempt {pct(b.now.first_attempt_rate)} vs {pct(b.base.first_attempt_rate)} baseline on "
                f"{b.now.payments} payments (z={b.z:.1f}){seq}", peers)))
    return out


def detect_storms(snap: Snapshot, s: ReasonerSettings) -> list[Hypothesis]:
    """retry_storm: a merchant's attempts per payment up while its first-attempt rate stays flat (more failures
    would explain more retries), or early signs before the average moves."""
    out = []
    if snap.baseline.ticks < s.min_storm_baseline_ticks:
        return out
    for m, mname in enumerate(snap.universe.merchant_names):
        now = snap.window.slice({"merchant": m})
        base = snap.baseline.slice({"merchant": m})
        if now.payments < s.min_storm_payments or base.payments < s.min_baseline_payments:
            continue
        apn, apb = now.attempts_per_payment, base.attempts_per_payment
        first_drop = base.first_attempt_rate - now.first_attempt_rate
        if first_drop > s.storm_max_first_drop or apn <= apb:
            continue
        # early signs: retries past the merchant's usual number of attempts, and retries of hard declines
        # (Visa category 1, never to be retried), which a sane retry policy never makes
        early = _early_z(now.late_retries, base.late_retries, base.payments, now.payments, s)
        hard_now, hard_base = int(snap.window.hard_retries[m]), int(snap.baseline.hard_retries[m])
        early = max(early, _early_z(hard_now, hard_base, base.payments, now.payments, s))
        ratio_rule = apn / apb >= s.storm_ratio and apn - apb >= s.storm_min_increase
        if not (ratio_rule or early >= s.min_z):
            continue
        conf = max(0.6 + 0.4 * min(1.0, max(0.0, apn / apb - s.storm_ratio) / 0.5) if ratio_rule else 0.0,
                   0.6 + 0.3 * min(1.0, (early - s.min_z) / 8) if early >= s.min_z else 0.0)
        out.append(Hypothesis(Cause.RETRY_STORM, make_target(merchant=mname), min(0.99, conf), (
            f"attempts per payment {apn:.2f} vs {apb:.2f} baseline",
            f"retries past attempt 2: {now.late_retries} vs {base.late_retries / base.payments * now.payments:.0f} expected",
            f"hard declines retried: {hard_now} vs {hard_base / base.payments * now.payments:.0f} expected",
            f"first-attempt {pct(now.first_attempt_rate)} vs {pct(base.first_attempt_rate)} (flat)",
            f"approvals per payment {pct(now.approvals_per_payment)} vs {pct(base.approvals_per_payment)}")))
    return out


def heuristic_hypotheses(snap: Snapshot, s: ReasonerSettings = ReasonerSettings()) -> list[Hypothesis]:
    """All heuristic hypotheses for one snapshot, strongest first. Pure."""
    if snap.baseline.ticks < s.min_baseline_ticks:      # warm-up: the first ticks have no retries yet
        return []
    latency, spiking = detect_latency(snap, s)
    found = latency + detect_issuer_paths(snap, s, spiking) + detect_storms(snap, s)
    return sorted(found, key=lambda h: -h.confidence)


def merge_hypotheses(heuristic, llm: tuple[Hypothesis, ...] | None,
                     fallback_reason: str | None = None) -> tuple[Hypothesis, ...]:
    """Heuristic hypotheses always stay; the LLM's may confirm them or stand beside them. Pure.

    llm None: the LLM was wanted but unavailable; each heuristic hypothesis is marked
    heuristic_fallback with the reason. An LLM hypothesis with the same cause and target
    confirms a heuristic one: source gemini, its evidence added and its confidence kept
    beside (llm_confidence), while the confidence the decision reads stays the
    heuristic's: the LLM can neither push an action over the threshold nor veto one.
    Any other LLM hypothesis is added with supported_by_heuristic False, and decision.py
    asks a human for any action it leads to.
    """
    if llm is None:
        return tuple(replace(h, source=Source.HEURISTIC_FALLBACK, fallback_reason=fallback_reason) for h in heuristic)
    by_key = {g.key: g for g in llm}
    out = []
    for h in heuristic:
        g = by_key.pop(h.key, None)
        out.append(h if g is None else replace(
            h, source=Source.GEMINI, llm_confidence=g.confidence, evidence=h.evidence + tuple(f"gemini: {e}" for e in g.evidence)))
    return tuple(out) + tuple(replace(g, source=Source.GEMINI, supported_by_heuristic=False,
                                      llm_confidence=g.confidence) for g in by_key.values())


@dataclass(frozen=True)
class Reasoning:
    hypotheses: tuple[Hypothesis, ...]
    llm_status: dict = field(default_factory=dict)


class Reasoner:
    """Heuristics always run; an LLM reasoner, when given, may add or confirm hypotheses."""

    def __init__(self, settings: ReasonerSettings = ReasonerSettings(), llm=None):
        self.settings = settings
        self.llm = llm

    def reason(self, snap: Snapshot) -> Reasoning:
        heuristic = heuristic_hypotheses(snap, self.settings)
        if self.llm is None:
            return Reasoning(tuple(heuristic), {"enabled": False})
        return self.llm.merge(snap, heuristic)
