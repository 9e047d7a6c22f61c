"""Shadow mode: a team's payment log replayed through the agent's eyes; it advises and never acts.

Each tick of the log (log_reader) is pooled onto the data's own universe (data_universe),
observed with one view per dimension and per pair and a baseline of a day (observer), read
for segments that fail (localise) as well as latency spikes and retry storms (reasoner),
and each hypothesis is held as an incident (incidents) with the recommendation the decision
engine would make for it, with its usual risk, approval flag and expected effect. Nothing
is applied: there is no executor here and no control plane.

No clock and no files of its own: run.py opens the log and writes the report and state.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from data_universe import DataUniverse
from decision import decide
from decline_codes import CLASS_INDEX, CodeClass
from guardrails import ControlView, PolicyConfig
from incidents import IncidentTracker
from learning_policy import LearningSignal
from localise import LocaliseSettings, detect_segments
from observer import Attempts, Observer, ObserverSettings, Snapshot, pair_views
from reasoner import Cause, ReasonerSettings, detect_latency, detect_storms
from sequential import SequentialSettings

_APPROVED, _UNKNOWN = CLASS_INDEX[CodeClass.APPROVED], CLASS_INDEX[CodeClass.UNKNOWN]


@dataclass(frozen=True)
class ShadowSettings:
    track: int = 40                    # values of each dimension tracked one by one; the rest pooled as "(other)"
    window_seconds: float = 60.0       # "now": the last minute, at least one tick (the live agent's window)
    baseline_seconds: float = 86400.0  # a day, so a quiet night is held against a whole day, not the evening
    baseline_blocks: int = 48          # the baseline moves on in 48 blocks (30 minutes of minute ticks)
    warmup_seconds: float = 6 * 3600.0  # no hypothesis before six hours of baseline ...
    warmup_share: float = 0.1           # ... or a tenth of a shorter log
    close_after_seconds: float = 300.0   # an incident nobody names for five minutes (at least two ticks) has ended
    max_triple_cells: int = 2_000      # the issuer x processor x merchant view, when small enough, prices decisions
    localise: LocaliseSettings = LocaliseSettings()
    sequential: SequentialSettings = SequentialSettings()
    policy: PolicyConfig = PolicyConfig()

    def ticks(self, seconds: float, tick_seconds: float, least: int = 1) -> int:
        return max(least, int(math.ceil(seconds / tick_seconds - 1e-9)))


def observer_settings(universe: DataUniverse, tick_seconds: float, s: ShadowSettings, n_ticks: int) -> ObserverSettings:
    """A window of a minute, a baseline of a day (or the whole log when it is shorter) in at most 48 blocks."""
    window = s.ticks(s.window_seconds, tick_seconds)
    baseline = min(s.ticks(s.baseline_seconds, tick_seconds, least=window), max(n_ticks, window))
    block = max(1, baseline // s.baseline_blocks)
    views = pair_views(universe.dims)
    triple = ("issuer", "processor", "merchant")
    if np.prod([universe.size(d) for d in triple]) <= s.max_triple_cells:
        views = (triple,) + views
    return ObserverSettings(window, (baseline // block) * block, block, views, s.sequential)


def to_attempts(tick, universe: DataUniverse, luts: dict, vocab: dict) -> Attempts:
    """A LogTick as the observer's Attempts: dimension codes pooled onto the universe; a count row becomes an
    approved part and a declined part, each weighted by its attempts."""
    dims = {}
    for d in universe.dims:
        if d in tick.dims:
            dims[d], luts[d] = universe.pool(d, vocab[d], tick.dims[d], luts.get(d))
        else:
            dims[d] = np.zeros(len(tick), dtype=np.int32)       # a dimension the log lacks: "(all)"
    count, approved = tick.count, tick.approved
    declined = count - approved
    cls = np.where(tick.code_class == _APPROVED, _UNKNOWN, tick.code_class).astype(np.int64)
    fee = np.nan_to_num(tick.fee)
    amount = np.nan_to_num(tick.amount)
    latency = tick.latency_ms.astype(np.float64)
    if bool((count == 1).all()):                                  # one row per attempt: no weights needed
        ok = approved == 1
        hard = None if tick.prev_hard is None else tick.prev_hard & (tick.attempt > 1)
        return Attempts(tick.index, dims, tick.attempt, np.where(ok, _APPROVED, cls), fee, amount * ok,
                        None, latency, hard, int((tick.attempt == 1).sum()))
    a, d = approved > 0, declined > 0
    join = lambda x, y: np.concatenate([x[a], y[d]])
    share = np.where(count > 0, approved / np.maximum(count, 1), 0.0)
    return Attempts(tick.index, {k: join(v, v) for k, v in dims.items()}, join(tick.attempt, tick.attempt),
                    np.concatenate([np.full(int(a.sum()), _APPROVED), cls[d]]), join(fee * share, fee * (1 - share)),
                    join(amount, np.zeros(len(amount))), join(approved, declined).astype(float),
                    join(latency, latency), None, int(count[tick.attempt == 1].sum()))


@dataclass
class ShadowRun:
    """The replay's state: universe, observer, incidents, and what it saw per tick for the report and dashboard."""
    universe: DataUniverse
    tick_seconds: float
    n_ticks: int
    settings: ShadowSettings = ShadowSettings()
    has_latency: bool = True
    has_attempts: bool = True
    trend: list = field(default_factory=list)
    first_seen: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.settings
        self.observer = Observer(self.universe, observer_settings(self.universe, self.tick_seconds, s, self.n_ticks))
        self.tracker = IncidentTracker(close_after=s.ticks(s.close_after_seconds, self.tick_seconds, least=2))
        warmup = max(2, min(s.ticks(s.warmup_seconds, self.tick_seconds), int(s.warmup_share * self.n_ticks)))
        self.reasoner = ReasonerSettings(min_baseline_ticks=warmup, min_storm_baseline_ticks=warmup)
        self.warmup = warmup
        self.luts: dict = {}
        self.recent: dict[tuple, int] = {}        # target -> last tick a hypothesis named it
        self.last: Snapshot | None = None
        self.last_hypotheses: tuple = ()

    def hypotheses(self, snap: Snapshot) -> list:
        """Segments that fail, latency spikes and retry storms; a segment on a processor that is spiking is the
        spike's (its timeouts fail everything there)."""
        if snap.baseline.ticks < self.warmup:
            return []
        found = []
        spiking = set()
        if self.has_latency:
            latency, spiking = detect_latency(snap, self.reasoner)
            found += latency
        slow = tuple({"processor": self.universe.processor_names[p]} for p in sorted(spiking))
        # what was named within the window still explains what the window remembers of it
        memory = max(self.observer.settings.window_ticks, self.tracker.close_after)
        recent = tuple(dict(t) for t, k in self.recent.items() if snap.tick - k <= memory)
        found += detect_segments(snap, self.settings.localise, self.settings.sequential.threshold, explained=slow,
                                 recent=recent)
        if self.has_attempts:
            found += detect_storms(snap, self.reasoner)
        return sorted(found, key=lambda h: -h.confidence)

    def recommend(self, h, snap: Snapshot) -> tuple[dict | None, str | None]:
        """What the decision engine would do about this one hypothesis, with nothing applied and no caution learned."""
        if h.cause is Cause.SEGMENT_DEGRADATION and set(h.target_dict) != {"processor"}:
            return None, "no action of the agent addresses a segment of this shape; a person should look"
        d = decide((h,), snap, LearningSignal(), ControlView(), self.settings.policy,
                   self.settings.localise.min_payments, 0.0)
        if d.is_no_op:
            return None, d.reason
        return {"action": d.action.value, "target": dict(d.target), "params": dict(d.params),
                "risk": round(d.risk, 3), "requires_human_approval": d.requires_human_approval,
                "expected": {k: round(v, 4) for k, v in d.expected}, "reasons": [d.reason, *d.guardrails],
                "confidence": round(d.confidence, 3)}, None

    def impact(self, snap: Snapshot):
        def of(target: dict) -> tuple[int, float]:
            codes = {k: self.universe.index(k, v) for k, v in target.items()}
            if snap.last.view_for(tuple(codes)) is None:
                return 0, 0.0
            now, base = snap.last.slice(codes), snap.baseline.slice(codes)
            rate = base.first_attempt_rate
            return now.payments, max(0.0, now.payments * rate - now.first_approvals) if rate is not None else 0.0
        return of

    def step(self, tick, vocab: dict, time_of) -> list:
        """One tick of the log; returns the incidents it opened."""
        snap = self.observer.observe(to_attempts(tick, self.universe, self.luts, vocab))
        hyps = self.hypotheses(snap)
        opened = self.tracker.update(tick.index, hyps, self.impact(snap), time_of)
        for inc in opened:
            h = next(h for h in hyps if (h.cause.value, h.target) in inc.named)
            inc.recommendation, inc.no_recommendation_reason = self.recommend(h, snap)
        for h in hyps:
            self.first_seen.setdefault(h.key, {"tick": tick.index, "time": time_of(tick.index), **h.to_dict()})
            self.recent[h.target] = tick.index
        summary = snap.summary()
        summary["time"] = time_of(tick.index)
        summary["detected"] = [{"cause": h.cause.value, "target": h.target_dict} for h in hyps
                               if h.key not in {x.key for x in self.last_hypotheses}]
        self.trend.append(summary)
        self.last, self.last_hypotheses = snap, tuple(hyps)
        return opened
