"""Bounds on LLM calls: settings, the per-minute call budget, the circuit breaker, error classes, accounting.

llm_reasoner.py consults these before and after every Gemini request. Time is passed
in as seconds, so a run can bound calls in simulated or in wall time (run.py: simulated,
so a seed replays; worker.py: wall). The wall time a run may spend waiting for Gemini
(wait_bound_s) and each request's total deadline (deadline_s) are wall seconds everywhere.

No network and no clock of its own; never decides or acts.
"""
from __future__ import annotations

import importlib
from collections import Counter, deque
from dataclasses import dataclass, field

from llm_contract import ContractSettings, FallbackReason


@dataclass(frozen=True)
class LLMSettings:
    model: str = "gemini-2.5-flash"
    timeout_ms: int = 8_000              # HttpOptions.timeout, in ms: per read (connect, each chunk), not per call
    deadline_s: float = 10.0             # a request's total wall time, whatever the endpoint does; then it is abandoned
    wait_bound_s: float = 30.0           # run.py: wall seconds one run may spend waiting for Gemini in all; then heuristics
    max_retries: int = 1                 # one retry, for timeouts and 5xx only; a 429 is not retried
    retry_backoff_s: float = 0.5
    calls_per_minute: int = 4            # our own budget, well under the API's per-minute quotas
    breaker_failures: int = 3            # consecutive failed consultations that open the circuit
    breaker_cooldown_s: float = 300.0    # no call at all for 5 minutes, then one trial call ...
    breaker_max_cooldown_s: float = 3600.0   # ... and each failed trial doubles the pause, up to an hour
    retry_failed_after_s: float = 30.0   # an unchanged picture whose consultation failed is asked again after this
    max_output_tokens: int = 512         # 4 hypotheses with 3 short evidence strings fit in ~300
    thinking_budget: int | None = 0      # 2.5 Flash thinks by default and bills it as output; off here. None: model default
    cache_size: int = 64                 # pictures remembered with their answer
    price_in_per_m: float = 0.30         # USD per 1M input tokens, Gemini 2.5 Flash paid tier: an assumption
    price_out_per_m: float = 2.50        # USD per 1M output tokens (thinking included): an assumption
    contract: ContractSettings = ContractSettings()


def _timeout_types() -> tuple[type, ...]:
    """The HTTP client's timeout exceptions (the SDK runs on httpx or httpx2) and Python's own."""
    out: list[type] = [TimeoutError]
    for mod in ("httpx", "httpx2"):
        try:
            out.append(importlib.import_module(mod).TimeoutException)
        except (ImportError, AttributeError):
            pass
    return tuple(out)


def classify(exc: BaseException) -> FallbackReason:
    """An exception from generate_content -> a fallback reason. A timeout is not an APIError."""
    from google.genai import errors
    if isinstance(exc, errors.APIError):
        code = exc.code or 0
        if code == 429:
            return FallbackReason.RATE_LIMITED
        if code in (408, 504):
            return FallbackReason.TIMEOUT
        return FallbackReason.SERVER_ERROR if code >= 500 else FallbackReason.REQUEST_REJECTED
    if isinstance(exc, _timeout_types()):
        return FallbackReason.TIMEOUT
    if type(exc).__name__ in ("ConnectError", "RemoteProtocolError", "ReadError", "WriteError", "NetworkError"):
        return FallbackReason.SERVER_ERROR     # the endpoint could not be reached or hung up
    return FallbackReason.SDK_ERROR


@dataclass
class CircuitBreaker:
    """Opens after `failures_to_open` failures in a row; after the cooldown one trial call may go. A failed trial
    re-opens it at once, for twice the last cooldown up to `max_cooldown_s` (None: the cooldown never grows), so
    an endpoint that hangs is tried ever more rarely. A success closes it and forgets the growth."""
    failures_to_open: int
    cooldown_s: float
    max_cooldown_s: float | None = None
    consecutive: int = 0
    open_until: float | None = None
    trips: int = 0

    def allow(self, now: float) -> bool:
        return self.open_until is None or now >= self.open_until

    def state(self, now: float) -> str:
        return "closed" if self.open_until is None else ("open" if now < self.open_until else "half_open")

    def record(self, ok: bool, now: float) -> None:
        if ok:
            self.consecutive, self.open_until, self.trips = 0, None, 0
            return
        self.consecutive += 1
        if self.consecutive >= self.failures_to_open:   # a failed trial call re-opens at once
            self.trips += 1
            grown = self.cooldown_s * 2 ** (self.trips - 1)
            self.open_until = now + (self.cooldown_s if self.max_cooldown_s is None else min(grown, self.max_cooldown_s))


@dataclass
class CallBudget:
    per_minute: int
    times: deque = field(default_factory=deque)

    def available(self, now: float) -> bool:
        while self.times and self.times[0] <= now - 60.0:
            self.times.popleft()
        return len(self.times) < self.per_minute

    def left(self, now: float) -> int:
        self.available(now)
        return self.per_minute - len(self.times)

    def take(self, now: float) -> bool:
        if not self.available(now):
            return False
        self.times.append(now)
        return True


@dataclass
class Accounting:
    consults: int = 0          # ticks with an anomaly picture: the LLM was wanted
    answered: int = 0          # consultations answered by a fresh, valid reply
    replies: int = 0           # reasoning replies received (valid or not)
    replies_with_hypotheses: int = 0   # ... that left at least one accepted hypothesis
    stale: int = 0             # answers that came after their picture had changed: dropped (worker.py)
    abandoned: int = 0         # requests still running at their deadline: no longer waited for
    notes: int = 0             # incident notes Gemini wrote that were accepted
    waited_s: float = 0.0      # wall time spent waiting for Gemini (run.py; the worker never waits)
    wait_bound_spent_tick: int | None = None   # run.py: the tick from which the run's wait bound was spent
    cache_hits: int = 0
    calls: int = 0             # HTTP requests, retries included
    retries: int = 0
    summaries: int = 0
    tokens_in: int = 0         # from usage_metadata
    tokens_out: int = 0        # candidates + thinking
    prompt_tokens_est_max: int = 0
    prompt_tokens_est_sum: int = 0
    prompts: int = 0
    failures: Counter = field(default_factory=Counter)    # per failed call, by reason
    fallbacks: Counter = field(default_factory=Counter)   # per tick that fell back to the heuristics, by reason
    rejected: Counter = field(default_factory=Counter)    # reply items discarded, by reason
    offered: Counter = field(default_factory=Counter)     # fields outside the schema that were dropped
    narrowed: Counter = field(default_factory=Counter)    # extra target keys: "kept" as evidence, or "dropped"
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=500))
    started_at: float | None = None
    now: float | None = None

    def note_prompt(self, est_tokens: int) -> None:
        self.prompts += 1
        self.prompt_tokens_est_sum += est_tokens
        self.prompt_tokens_est_max = max(self.prompt_tokens_est_max, est_tokens)

    def to_dict(self, s: LLMSettings) -> dict:
        hours = (self.now - self.started_at) / 3600 if self.now is not None and self.started_at is not None else 0.0
        cost = (self.tokens_in * s.price_in_per_m + self.tokens_out * s.price_out_per_m) / 1e6
        lat = sorted(self.latencies_ms)
        q = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None
        return {
            "consults": self.consults, "answered": self.answered, "cache_hits": self.cache_hits,
            "calls": self.calls, "retries": self.retries, "summaries": self.summaries,
            "failures": dict(sorted(self.failures.items())), "fallbacks": dict(sorted(self.fallbacks.items())),
            "fallback_share": round(sum(self.fallbacks.values()) / self.consults, 4) if self.consults else 0.0,
            "rejected_items": dict(sorted(self.rejected.items())), "offered_fields": dict(sorted(self.offered.items())),
            "replies": self.replies, "replies_with_hypotheses": self.replies_with_hypotheses,
            "narrowed_keys": dict(sorted(self.narrowed.items())), "stale_dropped": self.stale,
            "abandoned": self.abandoned, "notes": self.notes,
            "wait_bound_s": s.wait_bound_s, "wait_bound_spent_tick": self.wait_bound_spent_tick,
            "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
            "tokens_in_per_call": round(self.tokens_in / self.calls, 1) if self.calls else None,
            "prompt_tokens_est_max": self.prompt_tokens_est_max, "prompt_token_budget": s.contract.max_prompt_tokens,
            "prompt_tokens_est_mean": round(self.prompt_tokens_est_sum / self.prompts) if self.prompts else None,
            # wall-clock figures, the ones a seeded replay cannot repeat; `waited`: all the time run.py waited
            "latency_ms": {"p50": q(0.5), "p95": q(0.95), "max": q(1.0), "waited": round(1000 * self.waited_s)},
            "hours": round(hours, 4), "calls_per_hour": round(self.calls / hours, 1) if hours > 0 else None,
            "cost_usd": round(cost, 6), "cost_per_hour_usd": round(cost / hours, 4) if hours > 0 else None,
            "price_assumption": f"${s.price_in_per_m}/1M in, ${s.price_out_per_m}/1M out (assumed, not billed figures)",
        }


def describe_llm(status: dict, summary: dict | None = None) -> list[str]:
    """Lines for run.py's analysis: mode, calls, failures, tokens, latency, cost; then the learner summary."""
    if not status.get("enabled"):
        return [f"  off ({status.get('reason', 'no llm')}): heuristics only"]
    a = status["accounting"]
    n = lambda d: ", ".join(f"{k} {v}" for k, v in d.items()) or "none"
    lat = a["latency_ms"]
    lines = [
        f"  {status['model']}: {a['consults']} ticks wanted it; {a['answered']} fresh answers, {a['cache_hits']} from "
        f"cache; fallback share {100 * a['fallback_share']:.1f}% (fallbacks: {n(a['fallbacks'])})",
        f"  calls {a['calls']} (retries {a['retries']}, summaries {a['summaries']}); failed calls: {n(a['failures'])}",
        f"  tokens in {a['tokens_in']:,}, out {a['tokens_out']:,}; estimated input per request at most "
        f"{a['prompt_tokens_est_max']:,} (budget {a['prompt_token_budget']:,}); latency p50 {lat['p50']} ms, p95 {lat['p95']} ms"
        + (f"; waited {lat['waited'] / 1000:.1f} s in all (bound {a['wait_bound_s']:g} s)" if lat.get("waited") else ""),
    ]
    if a["offered_fields"] or a["rejected_items"]:
        lines.append(f"  dropped fields offered: {n(a['offered_fields'])}; discarded hypotheses: {n(a['rejected_items'])}")
    if a["replies"] or a["narrowed_keys"] or a["stale_dropped"] or a["notes"]:
        lines.append(f"  replies {a['replies']}, {a['replies_with_hypotheses']} with accepted hypotheses; narrower targets: "
                     f"{n(a['narrowed_keys'])}; stale answers dropped {a['stale_dropped']}; incident notes {a['notes']}")
    if a["wait_bound_spent_tick"] is not None or a["abandoned"]:
        spent = a["wait_bound_spent_tick"]
        lines.append(f"  requests abandoned at their deadline: {a['abandoned']}"
                     + (f"; the run's {a['wait_bound_s']:g} s bound on waiting for Gemini was spent at tick {spent}: "
                        "heuristics only from there" if spent is not None else ""))
    if a["calls_per_hour"] is not None:
        lines.append(f"  {a['calls_per_hour']:.1f} calls per hour of traffic, ~${a['cost_per_hour_usd']:.4f} per hour "
                     f"at {a['price_assumption']}")
    if summary:
        for key in ("helped", "hurt", "watch"):
            lines.append(f"  learner summary, {key} (never applied): " + ("; ".join(summary.get(key, [])) or "-"))
    return lines
