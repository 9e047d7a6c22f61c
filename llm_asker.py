"""Asking Gemini: requests on llm_call's lane, waited for (run.py) or not (worker.py), and the words it writes
for people (the learner's summary, incident notes).

GeminiAsker holds what every question shares: the lane (one request in flight, each with a
total deadline), the per-minute budget, the circuit breaker, the run's wait bound, the
accounting, and the key's redaction. A question is a Consultation (its kind, key, prompt,
instruction and schema); its attempts are one request each, at most one retry for timeouts
and 5xx. Waiting (background False): each attempt is waited for within its deadline and what
is left of LLMSettings.wait_bound_s; past the bound the run goes on without Gemini and the
accounting says from which tick. Background (True): _collect takes a finished (or overdue)
attempt at the start of a tick and _pump puts the next question on a free lane: a retry,
then a note, then the summary; reasoning (llm_reasoner.py) asks first.

summarize() and note() validate their replies (llm_contract.parse_summary, incident_notes.parse_note);
neither is ever applied to policy. Never imports decision or executor; never proposes an action.
All bookkeeping happens on the caller's thread: the lane's thread only makes the request.
"""
from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

from incident_notes import NOTE_INSTRUCTION, note_prompt, note_schema, note_text, parse_note
from llm_bounds import Accounting, CallBudget, CircuitBreaker, LLMSettings, classify
from llm_call import CallLane, Finished
from llm_contract import (
    SUMMARY_INSTRUCTION,
    FallbackReason,
    clean_text,
    parse_summary,
    summary_prompt,
    summary_schema,
)

log = logging.getLogger("llm_reasoner")
RETRYABLE = (FallbackReason.TIMEOUT, FallbackReason.SERVER_ERROR)
# Failures of the endpoint itself open the breaker; a reply that parses but fails the contract does not (README).
CONTENT = (FallbackReason.SCHEMA_VIOLATION.value, FallbackReason.UNKNOWN_ENTITY.value)


class Kind(str, Enum):
    HYPOTHESES = "hypotheses"
    NOTE = "note"
    SUMMARY = "summary"


@dataclass
class Consultation:
    """One question, over its attempts (a retry is the same consultation)."""
    kind: Kind
    key: str                      # the picture's signature, the note's key, the outcomes' signature
    prompt: str
    instruction: str
    schema: dict
    payload: Any = None           # a note's facts; a summary's outcome count
    attempt: int = 0
    not_before: float = 0.0       # a retry waits for this (llm clock)
    err: tuple | None = None


class GeminiAsker:
    """Questions to Gemini, bounded; with client None it is off and asks nothing."""

    def __init__(self, client, settings: LLMSettings = LLMSettings(), clock: Callable[[int], float] = lambda t: float(t),
                 timer: Callable[[], float] | None = time.perf_counter, sleep: Callable[[float], None] = time.sleep,
                 off_reason: FallbackReason | None = None, secret: str | None = None, background: bool = False):
        self.client = client
        self.settings = settings
        self.clock, self.timer, self.sleep = clock, timer, sleep
        self.background = background
        self.off_reason = off_reason if client is None else None
        self._secret = secret
        self.acct = Accounting()
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s, settings.breaker_max_cooldown_s)
        self.budget = CallBudget(settings.calls_per_minute)
        self.lane = CallLane()
        self.cache: OrderedDict[str, tuple] = OrderedDict()        # picture signature -> hypotheses (llm_reasoner)
        self.failed: dict[str, tuple[float, FallbackReason, str]] = {}
        self._schema: dict | None = None
        self._tick = 0
        self._retry: Consultation | None = None
        self._notes: OrderedDict[str, dict | None] = OrderedDict()     # note key -> note, or None: will not come
        self._wanted: OrderedDict[str, Consultation] = OrderedDict()   # notes waiting for the lane (background)
        self._summary: dict | None = None
        self._summary_sig: str | None = None
        self._summary_wanted: Consultation | None = None

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def redact(self, text: str) -> str:
        """A message fit to keep: the key replaced, control characters gone, at most 300 characters."""
        return clean_text(text if not self._secret else text.replace(self._secret, "[redacted]"), 300)

    def _blocked(self, now: float) -> tuple[FallbackReason, str] | None:
        if not self.background and self.acct.waited_s >= self.settings.wait_bound_s:
            self._spend_bound()
        if self.acct.wait_bound_spent_tick is not None:
            return FallbackReason.TIME_BOUND, (f"this run's {self.settings.wait_bound_s:g} s of waiting for Gemini was "
                                               f"spent at tick {self.acct.wait_bound_spent_tick}")
        if not self.breaker.allow(now):
            return FallbackReason.CIRCUIT_OPEN, (f"{self.breaker.consecutive} consecutive failures; "
                                                 f"next trial call at {self.breaker.open_until:.0f} s")
        if not self.budget.available(now):
            return FallbackReason.BUDGET_EXHAUSTED, f"{self.settings.calls_per_minute} calls per minute spent"
        return None

    def _failed(self, c: Consultation, err: tuple, now: float) -> None:
        if err[0] not in (FallbackReason.BUDGET_EXHAUSTED, FallbackReason.TIME_BOUND) and err[0].value not in CONTENT:
            self.breaker.record(False, now)
        if c.kind is Kind.HYPOTHESES:
            self.failed = {k: v for k, v in self.failed.items() if now - v[0] < self.settings.retry_failed_after_s}
            self.failed[c.key] = (now, err[0], err[1])

    def _note_offered(self, offered: tuple[str, ...]) -> None:
        for name in offered:
            self.acct.offered[name] += 1
        if offered:
            log.warning("gemini offered fields outside the schema, dropped: %s", ", ".join(offered))

    # -- requests on the lane ------------------------------------------------------------
    def _request(self, c: Consultation):
        """The call the lane's thread makes; nothing else happens there."""
        from google.genai import types
        config = types.GenerateContentConfig(
            system_instruction=c.instruction, response_mime_type="application/json", response_schema=c.schema,
            temperature=0.0, max_output_tokens=self.settings.max_output_tokens,
            thinking_config=None if self.settings.thinking_budget is None
            else types.ThinkingConfig(thinking_budget=self.settings.thinking_budget))
        client, model, prompt = self.client, self.settings.model, c.prompt
        return lambda: client.models.generate_content(model=model, contents=prompt, config=config)

    def _start(self, c: Consultation, now: float, deadline_s: float | None = None) -> tuple | None:
        """Put one attempt on the lane -> None, or (reason, detail) when it could not go."""
        if not self.budget.take(now):
            return c.err or (FallbackReason.BUDGET_EXHAUSTED, f"{self.settings.calls_per_minute} calls per minute spent")
        if not self.lane.start(self._request(c), c, deadline_s or self.settings.deadline_s):
            return c.err or (FallbackReason.TIMEOUT, "the previous request passed its deadline and has not ended yet")
        self.acct.calls += 1
        if c.attempt:
            self.acct.retries += 1
        return None

    def _ask_now(self, c: Consultation, now: float) -> tuple[str | None, tuple | None]:
        """run.py: each attempt waited for, within its deadline and the run's wait bound."""
        wall = time.monotonic
        for attempt in range(1 + self.settings.max_retries):
            left = self.settings.wait_bound_s - self.acct.waited_s
            if left <= 0:
                self._spend_bound()
                return None, c.err or (FallbackReason.TIME_BOUND, "this run's wait bound is spent")
            started = wall()
            if attempt:
                self.sleep(min(self.settings.retry_backoff_s, left))
            c.attempt = attempt
            err = self._start(c, now, min(self.settings.deadline_s, left))
            if err is not None:
                self.acct.waited_s += wall() - started
                return None, err
            self.lane.wait(min(self.settings.deadline_s, left))
            done = self.lane.take() or self._abandon()
            self.acct.waited_s += wall() - started
            text, c.err = self._outcome(done)
            if c.err is None or c.err[0] not in RETRYABLE:
                return text, c.err
        return None, c.err

    def _spend_bound(self) -> None:
        if self.acct.wait_bound_spent_tick is None:
            self.acct.wait_bound_spent_tick = self._tick
            log.warning("gemini: this run's %g s of waiting is spent at tick %d; the rest of the run is on heuristics",
                        self.settings.wait_bound_s, self._tick)

    def _abandon(self) -> Finished:
        self.acct.abandoned += 1
        return self.lane.abandon()

    def _outcome(self, done: Finished) -> tuple[str | None, tuple | None]:
        """A finished attempt -> (reply text, None) or (None, (reason, detail)); counted and logged."""
        if self.timer is not None:
            self.acct.latencies_ms.append(1000.0 * done.elapsed_s)
        if done.error is not None:
            reason = classify(done.error)
            detail = self.redact(f"{type(done.error).__name__}: {done.error}")
            self.acct.failures[reason.value] += 1
            log.warning("gemini call failed (%s): %s", reason.value, detail)
            return None, (reason, detail)
        self._record_usage(done.value)
        text, why = _reply_text(done.value)
        if text is None:
            self.acct.failures[FallbackReason.EMPTY_REPLY.value] += 1
            return None, (FallbackReason.EMPTY_REPLY, why)
        return text, None

    def _collect(self, now: float) -> tuple | None:
        """Background: the lane's finished (or overdue) attempt, routed; a reasoning answer is returned."""
        if not self.background:
            return None
        done = self.lane.take()
        if done is None and self.lane.overdue():
            done = self._abandon()
        if done is None:
            return None
        c: Consultation = done.tag
        text, c.err = self._outcome(done)
        if c.err is not None and c.err[0] in RETRYABLE and c.attempt < self.settings.max_retries:
            c.attempt += 1
            c.not_before = now + self.settings.retry_backoff_s
            self._retry = c
            return None
        if c.kind is Kind.HYPOTHESES:
            return c, text, c.err
        self._settle(c, text, c.err, now)
        return None

    def _pump(self, now: float, sig: str | None) -> None:
        """Background: if the lane is free, start what waits: a retry, then a note, then the summary."""
        if not self.background or self.lane.busy:
            return
        c, self._retry = self._retry, None
        if c is not None and c.kind is Kind.HYPOTHESES and c.key != sig:
            self._failed(c, c.err, now)                       # its picture is gone: the failure stands, no retry
            c = None
        if c is not None and now < c.not_before:
            self._retry = c
            return
        if c is None and self._blocked(now) is not None:
            return
        if c is None and self._wanted and self.budget.left(now) >= 2:   # the last call of a minute is reasoning's
            c = self._wanted.popitem(last=False)[1]
        if c is None and self._summary_wanted is not None:
            c, self._summary_wanted = self._summary_wanted, None
        if c is None:
            return
        err = self._start(c, now)
        if err is not None:
            if c.kind is Kind.HYPOTHESES:
                self._failed(c, err, now)
            else:
                self._settle(c, None, err, now)

    # -- notes and the summary: words for people ------------------------------------------
    def note(self, key: str, facts: dict) -> tuple[dict | None, bool]:
        """An incident note from Gemini -> (note, True), (None, False) while it may still come, (None, True) if not."""
        if not self.enabled:
            return None, True
        if key in self._notes:
            return self._notes[key], True
        if key in self._wanted or (self.lane.in_flight is not None and self.lane.in_flight.key == key) or (
                self._retry is not None and self._retry.key == key):
            return None, False
        now = self._now(self._tick)
        blocked = self._blocked(now)
        if blocked is None and self.budget.left(now) < 2 or blocked is not None and blocked[0] is \
                FallbackReason.BUDGET_EXHAUSTED:
            return None, False                  # asked on a later tick: the last call of a minute is reasoning's
        if blocked is not None:
            self._keep_note(key, None)
            log.info("gemini note %s not asked (%s)", key, blocked[0].value)
            return None, True
        prompt, est = note_prompt(facts, self.settings.contract)
        self.acct.note_prompt(est)
        c = Consultation(Kind.NOTE, key, prompt, NOTE_INSTRUCTION, note_schema(), payload=facts)
        if self.background:
            self._wanted[key] = c
            self._pump(now, None)
            return None, False
        text, err = self._ask_now(c, now)
        self._settle(c, text, err, now)
        return self._notes[key], True

    def summarize(self, memory: list[dict], stats: dict) -> dict | None:
        """What helped, what hurt, what to watch, for people; asked once per new set of outcomes.

        On failure the last good summary (or None) stays; it is never applied to policy.
        """
        if not self.enabled or not memory:
            return self._summary
        sig = json.dumps([(m["id"], m["outcome"], m["status"]) for m in memory])
        now = self._now(self._tick)
        if sig == self._summary_sig or self._blocked(now) is not None:
            return self._summary
        pending = [self._summary_wanted, self.lane.in_flight, self._retry]
        if any(c is not None and c.kind is Kind.SUMMARY for c in pending):
            return self._summary
        prompt, est = summary_prompt(memory, stats, self.settings.contract)
        self.acct.note_prompt(est)
        c = Consultation(Kind.SUMMARY, sig, prompt, SUMMARY_INSTRUCTION, summary_schema(), payload=len(memory))
        if self.background:
            self._summary_wanted = c
            self._pump(now, None)
            return self._summary
        text, err = self._ask_now(c, now)
        self._settle(c, text, err, now)
        return self._summary

    def _settle(self, c: Consultation, text: str | None, err: tuple | None, now: float) -> None:
        """A note's or the summary's reply (or failure), validated and kept."""
        out = None
        if err is None:
            if c.kind is Kind.NOTE:
                out, bad, offered = parse_note(text, c.payload)
            else:
                out, bad, offered = parse_summary(text, self.settings.contract)
            self._note_offered(offered)
            if bad:
                err = (FallbackReason(bad[0]), bad[1])
                self.acct.failures[err[0].value] += 1
        if err is not None:
            self._failed(c, err, now)
            log.warning("gemini %s unavailable (%s): %s", c.kind.value, err[0].value, err[1])
            if c.kind is Kind.NOTE:
                self._keep_note(c.key, None)
            return
        self.breaker.record(True, now)
        if c.kind is Kind.NOTE:
            self.acct.notes += 1
            self._keep_note(c.key, {"source": "gemini", "model": self.settings.model, "text": note_text(out)})
            return
        self.acct.summaries += 1
        self._summary_sig = c.key
        self._summary = {"source": "gemini", "model": self.settings.model, **out, "outcomes": c.payload,
                         "tick": self._tick, "applied_to_policy": False}

    def _keep_note(self, key: str, note: dict | None) -> None:
        self._notes[key] = note
        while len(self._notes) > 500:                         # bounded in endless runs
            self._notes.popitem(last=False)

    # -- state ----------------------------------------------------------------------------
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
