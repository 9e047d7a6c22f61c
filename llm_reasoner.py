"""Reason (LLM): ask Gemini 2.5 Flash what the anomaly picture means; bounded, untrusted, never in charge.

GeminiReasoner is the Reasoner's optional `llm`. merge(snapshot, heuristic) builds the
bounded picture (reasoner.picture), asks Gemini only when the picture's signature changes
(answers are cached by it), validates the reply as untrusted input, and hands both
lists to reasoner.merge_hypotheses, which records where each hypothesis came from.
Calls are bounded: an HTTP timeout, at most one retry (timeouts and 5xx only), a
per-minute call budget, and a circuit breaker that stops calling for a cool-down
after consecutive failures. Any failure falls back to the heuristics, with its
reason. summarize(memory, stats) writes the learner's summary of outcomes for
people; it is never applied to policy.

The key comes from GEMINI_API_KEY (else GOOGLE_API_KEY), stays inside the SDK client,
and is redacted from every message kept or logged. The endpoint is the SDK's own:
GOOGLE_GEMINI_BASE_URL or HttpOptions.base_url. Time comes in as `clock(tick)` and
latency as `timer()`, so tests and run.py can use simulated time.

Never imports or calls decision or executor; never proposes or chooses an action.
"""
from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from typing import Callable, Mapping

from llm_bounds import Accounting, CallBudget, CircuitBreaker, LLMSettings, classify
from llm_contract import (
    SUMMARY_INSTRUCTION,
    SYSTEM_INSTRUCTION,
    FallbackReason,
    clean_text,
    is_quiet,
    parse_reply,
    parse_summary,
    picture,
    render_prompt,
    response_schema,
    signature,
    summary_prompt,
    summary_schema,
)
from observer import Snapshot
from reasoner import Hypothesis, Reasoning, merge_hypotheses

log = logging.getLogger("llm_reasoner")


class GeminiReasoner:
    """The LLM half of the Reasoner; with client None it is off and merge() returns the heuristics unchanged."""

    def __init__(self, client, settings: LLMSettings = LLMSettings(), clock: Callable[[int], float] = lambda t: float(t),
                 timer: Callable[[], float] | None = time.perf_counter, sleep: Callable[[float], None] = time.sleep,
                 off_reason: FallbackReason | None = None, secret: str | None = None):
        self.client = client
        self.settings = settings
        self.clock, self.timer, self.sleep = clock, timer, sleep
        self.off_reason = off_reason if client is None else None
        self._secret = secret
        self.acct = Accounting()
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s)
        self.budget = CallBudget(settings.calls_per_minute)
        self.cache: OrderedDict[str, tuple[Hypothesis, ...]] = OrderedDict()
        self.failed: dict[str, tuple[float, FallbackReason, str]] = {}
        self._schema: dict | None = None
        self._tick = 0
        self._summary: dict | None = None
        self._summary_sig: str | None = None

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def redact(self, text: str) -> str:
        """A message fit to keep: the key replaced, control characters gone, at most 300 characters."""
        return clean_text(text if not self._secret else text.replace(self._secret, "[redacted]"), 300)

    # -- reasoning ----------------------------------------------------------------------
    def merge(self, snap: Snapshot, heuristic: list[Hypothesis]) -> Reasoning:
        self._tick = snap.tick
        if not self.enabled:
            return Reasoning(tuple(heuristic), self.status("off", self.off_reason))
        now = self._now(snap.tick)
        pic = picture(snap, heuristic, self.settings.contract)
        if is_quiet(pic):                                  # nothing to interpret: no call
            return Reasoning(tuple(heuristic), self.status("quiet"))
        self.acct.consults += 1
        if self._schema is None:
            self._schema = response_schema(snap.universe, self.settings.contract)
        sig = signature(pic)
        if sig in self.cache:
            self.cache.move_to_end(sig)
            self.acct.cache_hits += 1
            return Reasoning(merge_hypotheses(heuristic, self.cache[sig]), self.status("cached"))
        answer, reason, detail = self._consult(sig, pic, now, snap)
        if answer is None:
            self.acct.fallbacks[reason.value] += 1
            return Reasoning(merge_hypotheses(heuristic, None, reason.value), self.status("fallback", reason, detail))
        return Reasoning(merge_hypotheses(heuristic, answer), self.status("answered"))

    def _consult(self, sig: str, pic: dict, now: float, snap: Snapshot):
        """-> (hypotheses, None, "") or (None, reason, detail); calls only if nothing forbids it."""
        seen = self.failed.get(sig)
        if seen and now - seen[0] < self.settings.retry_failed_after_s:
            return None, seen[1], f"unchanged picture; asked at {seen[0]:.0f} s: {seen[2]}"
        if not self.breaker.allow(now):
            return None, FallbackReason.CIRCUIT_OPEN, (f"{self.breaker.consecutive} consecutive failures; "
                                          f"next trial call at {self.breaker.open_until:.0f} s")
        if not self.budget.available(now):
            return None, FallbackReason.BUDGET_EXHAUSTED, f"{self.settings.calls_per_minute} calls per minute spent"
        prompt, est = render_prompt(pic, self._schema, self.settings.contract)
        self.acct.note_prompt(est)
        text, err = self._ask(now, prompt, SYSTEM_INSTRUCTION, self._schema)
        if err is None:
            parsed = parse_reply(text, snap.universe, self.settings.contract)
            self._note_offered(parsed.offered)
            for reason, detail in parsed.rejected:
                self.acct.rejected[reason] += 1
                log.warning("gemini hypothesis discarded (%s): %s", reason, detail)
            if parsed.failed:
                err = (FallbackReason(parsed.error[0]), parsed.error[1])
                self.acct.failures[err[0].value] += 1
        if err is not None and err[0] is not FallbackReason.BUDGET_EXHAUSTED:
            self.breaker.record(False, now)
            self.failed = {k: v for k, v in self.failed.items() if now - v[0] < self.settings.retry_failed_after_s}
            self.failed[sig] = (now, err[0], err[1])
        if err is not None:
            return None, err[0], err[1]
        self.breaker.record(True, now)
        self.failed.pop(sig, None)
        self.acct.answered += 1
        self.cache[sig] = parsed.hypotheses
        while len(self.cache) > self.settings.cache_size:
            self.cache.popitem(last=False)
        return parsed.hypotheses, None, ""

    def _note_offered(self, offered: tuple[str, ...]) -> None:
        for name in offered:
            self.acct.offered[name] += 1
        if offered:
            log.warning("gemini offered fields outside the schema, dropped: %s", ", ".join(offered))

    # -- one bounded request ---------------------------------------------------------------
    def _ask(self, now: float, prompt: str, instruction: str, schema: dict) -> tuple[str | None, tuple | None]:
        """-> (reply text, None) or (None, (reason, detail)). At most 1 + max_retries calls, each within budget."""
        from google.genai import types
        config = types.GenerateContentConfig(
            system_instruction=instruction, response_mime_type="application/json", response_schema=schema,
            temperature=0.0, max_output_tokens=self.settings.max_output_tokens,
            thinking_config=None if self.settings.thinking_budget is None
            else types.ThinkingConfig(thinking_budget=self.settings.thinking_budget))
        err: tuple | None = None
        for attempt in range(1 + self.settings.max_retries):
            if not self.budget.take(now):
                return None, err or (FallbackReason.BUDGET_EXHAUSTED, f"{self.settings.calls_per_minute} calls per minute spent")
            if attempt:
                self.acct.retries += 1
                self.sleep(self.settings.retry_backoff_s)
            self.acct.calls += 1
            started = self.timer() if self.timer else None
            try:
                resp = self.client.models.generate_content(model=self.settings.model, contents=prompt, config=config)
            except Exception as e:            # the SDK's, the HTTP client's, or anything else: all fall back
                reason = classify(e)
                err = (reason, self.redact(f"{type(e).__name__}: {e}"))
                self._record_latency(started)
                self.acct.failures[reason.value] += 1
                log.warning("gemini call failed (%s): %s", reason.value, err[1])
                if reason in (FallbackReason.TIMEOUT, FallbackReason.SERVER_ERROR):
                    continue
                return None, err
            self._record_latency(started)
            self._record_usage(resp)
            text, why = _reply_text(resp)
            if text is None:
                self.acct.failures[FallbackReason.EMPTY_REPLY.value] += 1
                return None, (FallbackReason.EMPTY_REPLY, why)
            return text, None
        return None, err

    def _record_latency(self, started: float | None) -> None:
        if started is not None:
            self.acct.latencies_ms.append(1000.0 * (self.timer() - started))

    def _record_usage(self, resp) -> None:
        u = getattr(resp, "usage_metadata", None)
        if u is not None:
            self.acct.tokens_in += int(getattr(u, "prompt_token_count", 0) or 0)
            self.acct.tokens_out += int(getattr(u, "candidates_token_count", 0) or 0) + int(getattr(u, "thoughts_token_count", 0) or 0)

    def _now(self, tick: int) -> float:
        now = self.clock(tick)
        if self.acct.started_at is None:
            self.acct.started_at = now
        self.acct.now = now
        return now

    # -- learner summary ------------------------------------------------------------------
    def summarize(self, memory: list[dict], stats: dict) -> dict | None:
        """What helped, what hurt, what to watch, for people; asked once per new set of outcomes.

        On failure the last good summary (or None) stays; it is never applied to policy.
        """
        if not self.enabled or not memory:
            return self._summary
        sig = json.dumps([(m["id"], m["outcome"], m["status"]) for m in memory])
        now = self._now(self._tick)
        if sig == self._summary_sig or not self.breaker.allow(now):
            return self._summary
        prompt, est = summary_prompt(memory, stats, self.settings.contract)
        self.acct.note_prompt(est)
        text, err = self._ask(now, prompt, SUMMARY_INSTRUCTION, summary_schema())
        if err is None:
            out, bad, offered = parse_summary(text, self.settings.contract)
            self._note_offered(offered)
            if bad:
                err = (FallbackReason(bad[0]), bad[1])
                self.acct.failures[err[0].value] += 1
        if err is not None:
            if err[0] is not FallbackReason.BUDGET_EXHAUSTED:
                self.breaker.record(False, now)
            log.warning("gemini summary unavailable (%s): %s", err[0].value, err[1])
            return self._summary
        self.breaker.record(True, now)
        self.acct.summaries += 1
        self._summary_sig = sig
        self._summary = {"source": "gemini", "model": self.settings.model, **out, "outcomes": len(memory),
                         "tick": self._tick, "applied_to_policy": False}
        return self._summary

    # -- state ----------------------------------------------------------------------------
    def accounting(self) -> dict:
        return self.acct.to_dict(self.settings)

    def status(self, state: str, reason: FallbackReason | None = None, detail: str = "") -> dict:
        """The 'llm' section of hypotheses.json and of the report. Never holds the key."""
        now = self.acct.now if self.acct.now is not None else 0.0
        d = {"enabled": self.enabled, "model": self.settings.model, "state": state, "tick": self._tick,
             "circuit": self.breaker.state(now), "accounting": self.accounting()}
        if reason is not None:
            d["reason"] = reason.value
        if detail:
            d["detail"] = self.redact(detail)
        return d


def _reply_text(resp) -> tuple[str | None, str]:
    """The reply's text, or None with why (blocked, empty, cut off)."""
    feedback = getattr(resp, "prompt_feedback", None)
    blocked = getattr(feedback, "block_reason", None) if feedback is not None else None
    cands = getattr(resp, "candidates", None) or []
    finish = getattr(cands[0], "finish_reason", None) if cands else None
    try:
        text = resp.text
    except Exception:                         # an odd envelope counts as no text
        text = None
    if text and text.strip():
        return text, ""
    name = lambda x: getattr(x, "value", None) or str(x)
    if blocked:
        return None, f"prompt blocked ({name(blocked)})"
    return None, f"no text (finish reason {name(finish) if finish else 'none'})"


def from_env(environ: Mapping[str, str], disabled: bool = False, clock: Callable[[int], float] = lambda t: float(t),
             timer: Callable[[], float] | None = time.perf_counter, sleep: Callable[[float], None] = time.sleep,
             settings: LLMSettings | None = None) -> GeminiReasoner:
    """The reasoner run.py and worker.py use: off with --no-llm or without a key, else on the SDK.

    GEMINI_MODEL overrides the model. The endpoint is left to the SDK (GOOGLE_GEMINI_BASE_URL).
    """
    settings = settings or LLMSettings(model=environ.get("GEMINI_MODEL") or LLMSettings.model)
    if disabled:
        return GeminiReasoner(None, settings, clock, timer, sleep, off_reason=FallbackReason.DISABLED)
    key = environ.get("GEMINI_API_KEY") or environ.get("GOOGLE_API_KEY")
    if not key:
        return GeminiReasoner(None, settings, clock, timer, sleep, off_reason=FallbackReason.NO_KEY)
    from google import genai
    from google.genai import types
    try:
        client = genai.Client(api_key=key, vertexai=False, http_options=types.HttpOptions(timeout=settings.timeout_ms))
    except Exception as e:
        log.warning("gemini client not created: %s", str(e).replace(key, "[redacted]")[:300])
        return GeminiReasoner(None, settings, clock, timer, sleep, off_reason=FallbackReason.SDK_ERROR)
    return GeminiReasoner(client, settings, clock, timer, sleep, secret=key)
