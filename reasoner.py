"""Reason: turn a Snapshot into hypotheses about what is wrong, with evidence.

The heuristics compare each slice with its own baseline and with its peers:
bad on one processor but fine on the others -> issuer_degradation on that path;
bad on every measured processor -> issuer_outage; attempts per payment up while
the first-attempt rate is flat -> retry_storm; p95 up on one processor ->
latency_spike. Issuer and processor health is read on first attempts only, so
a merchant's retries cannot make an issuer look sick.

An optional LLM reasoner may add or confirm hypotheses (see llm_reasoner.py);
this module records where each came from. Never decides or acts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from observer import SliceStats, Snapshot


class Cause(str, Enum):
    ISSUER_DEGRADATION = "issuer_degradation"
    ISSUER_OUTAGE = "issuer_outage"
    RETRY_STORM = "retry_storm"
    LATENCY_SPIKE = "latency_spike"
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
        return d


def make_target(**names: str | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in names.items() if v is not None))


@dataclass(frozen=True)
class ReasonerSettings:
    min_payments: int = 200          # first attempts in the window below which a slice is too thin to judge
    min_baseline_payments: int = 400
    min_drop: float = 0.05           # absolute first-attempt rate drop that matters to payment ops (5 pp)
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


def _z_drop(now: SliceStats, base: SliceStats) -> tuple[float, float]:
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


def _pool(parts: list[SliceStats]) -> SliceStats:
    return SliceStats(*(sum(getattr(p, f) for p in parts) for f in SliceStats.__dataclass_fields__))


def _confidence(drop: float, z: float, s: ReasonerSettings, full_drop: float = 0.15) -> float:
    return min(0.99, 0.4 + 0.3 * min(1.0, drop / full_drop) + 0.3 * min(1.0, max(0.0, z - s.min_z) / 8))


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def heuristic_hypotheses(snap: Snapshot, s: ReasonerSettings = ReasonerSettings()) -> list[Hypothesis]:
    """All heuristic hypotheses for one snapshot, strongest first. Pure."""
    u = snap.universe
    out: list[Hypothesis] = []
    spiking: set[int] = set()

    for p, pname in enumerate(u.processor_names):
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
            timeouts = int(snap.window.counts[:, p, ..., 5].sum())
            conf = min(0.99, 0.55 + 0.45 * min(1.0, (ratio - s.latency_ratio) / 1.5))
            out.append(Hypothesis(Cause.LATENCY_SPIKE, make_target(processor=pname), conf, (
                f"p95 {now:.0f} ms vs baseline {base:.0f} ms (x{now / base:.1f}), p50 x{p50 / base_p50:.1f}",
                f"{timeouts} timeouts in the last {snap.window.ticks} ticks")))

    for i, iname in enumerate(u.issuer_names):
        bad, healthy, thin = [], [], []
        for p, pname in enumerate(u.processor_names):
            now = snap.window.slice({"issuer": i, "processor": p})
            base = snap.baseline.slice({"issuer": i, "processor": p})
            if now.payments < s.min_payments or base.payments < s.min_baseline_payments:
                thin.append((pname, now, base, p in spiking))
                continue
            drop, z = _z_drop(now, base)
            if drop >= s.min_drop and z >= s.min_z and p not in spiking:
                last = snap.last.slice({"issuer": i, "processor": p})
                if last.payments >= s.min_recent_payments and base.first_attempt_rate - last.first_attempt_rate < s.healthy_drop:
                    continue          # healthy again in the latest tick: the window still remembers a fault that has passed
                bad.append((pname, drop, z, now, base))
            elif drop < s.healthy_drop:
                healthy.append(pname)
        if not bad:
            continue
        # paths too thin alone are judged together: bad too means the issuer, not the path
        peers = [t for t in thin if not t[3]]
        pooled_bad = False
        if peers:
            now, base = _pool([t[1] for t in peers]), _pool([t[2] for t in peers])
            if now.payments >= s.min_peer_payments and base.payments >= s.min_peer_baseline_payments:
                drop, z = _z_drop(now, base)
                name = "+".join(t[0] for t in peers) + " pooled"
                if drop >= s.min_drop and z >= s.min_z:
                    pooled_bad = True
                    bad_peers = [(name, drop, z, now, base)]
                elif drop < s.healthy_drop:
                    healthy.append(name)
                    thin = []
        if not healthy and len(bad) + pooled_bad >= 2:
            every = bad + (bad_peers if pooled_bad else [])
            drop = min(b[1] for b in every)
            z = min(b[2] for b in every)
            out.append(Hypothesis(Cause.ISSUER_OUTAGE, make_target(issuer=iname), _confidence(drop, z, s), tuple(
                f"{iname} on {b[0]}: first-attempt {_pct(b[3].first_attempt_rate)} vs {_pct(b[4].first_attempt_rate)} baseline"
                for b in every) + ("bad on every measured processor",)))
            continue
        for pname, drop, z, now, base in bad:
            conf = _confidence(drop, z, s)
            peers = (f"healthy on {', '.join(healthy)}" if healthy else
                     f"other processors too thin to compare ({', '.join(t[0] for t in thin) or 'none'})")
            if not healthy:
                conf *= s.thin_peer_factor
            out.append(Hypothesis(Cause.ISSUER_DEGRADATION, make_target(issuer=iname, processor=pname), conf, (
                f"first-attempt {_pct(now.first_attempt_rate)} vs {_pct(base.first_attempt_rate)} baseline on {now.payments} payments (z={z:.1f})",
                peers)))

    for m, mname in enumerate(u.merchant_names):
        now = snap.window.slice({"merchant": m})
        base = snap.baseline.slice({"merchant": m})
        if (now.payments < s.min_storm_payments or base.payments < s.min_baseline_payments
                or snap.baseline.ticks < s.min_storm_baseline_ticks):
            continue
        apn, apb = now.attempts_per_payment, base.attempts_per_payment
        first_drop = base.first_attempt_rate - now.first_attempt_rate
        if first_drop > s.storm_max_first_drop or apn <= apb:      # more failures explain more retries
            continue
        # an early sign, before the average moves: retries past the merchant's usual number of attempts. (Retried
        # hard declines are not one: a technical failure's retry meets the issuer's hard decline too.)
        early = _early_z(now.late_retries, base.late_retries, base.payments, now.payments, s)
        ratio_rule = apn / apb >= s.storm_ratio and apn - apb >= s.storm_min_increase
        if ratio_rule or early >= s.min_z:
            conf = max(0.6 + 0.4 * min(1.0, max(0.0, apn / apb - s.storm_ratio) / 0.5) if ratio_rule else 0.0,
                       0.6 + 0.3 * min(1.0, (early - s.min_z) / 8) if early >= s.min_z else 0.0)
            out.append(Hypothesis(Cause.RETRY_STORM, make_target(merchant=mname), min(0.99, conf), (
                f"attempts per payment {apn:.2f} vs {apb:.2f} baseline",
                f"retries past attempt 2: {now.late_retries} vs {base.late_retries / base.payments * now.payments:.0f} expected",
                f"first-attempt {_pct(now.first_attempt_rate)} vs {_pct(base.first_attempt_rate)} (flat)",
                f"approvals per payment {_pct(now.approvals_per_payment)} vs {_pct(base.approvals_per_payment)}")))

    return sorted(out, key=lambda h: -h.confidence)


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
