"""Reason (LLM): ask Gemini 2.5 Flash what the anomaly picture means; bounded, untrusted, never in charge.

GeminiReasoner is the Reasoner's optional `llm`. merge(snapshot, heuristic) builds the
bounded picture (llm_contract.picture), asks Gemini only when the picture's signature
changes (answers are cached by it), validates the reply as untrusted input, and hands both
lists to reasoner.merge_hypotheses, which records where each hypothesis came from. It also
writes, for people only, the learner's summary of outcomes (summarize) and incident notes
(note, under incident_notes' contract); neither is ever applied to policy.

Requests go through llm_asker.GeminiAsker (its base): llm_call's lane, one in flight with a
total deadline. Two ways to wait:
- run.py (background False) waits for each answer, so a seed replays exactly, but the wall
  time a run spends waiting is bounded (LLMSettings.wait_bound_s); past it the run goes on
  on heuristics and says so once.
- worker.py (background True) never waits: a question goes out on the lane and the tick goes
  on with the heuristics (reason awaiting_reply); an answer is merged on the first tick after
  it arrives if the picture it was asked about still holds (same signature), else dropped as
  stale and counted. Notes and the summary use the lane when reasoning does not.
Calls are also bounded by at most one retry (timeouts and 5xx only), a per-minute budget and
a circuit breaker; their clock is `clock(tick)` (simulated in run.py, wall in worker.py).

The key comes from GEMINI_API_KEY (else GOOGLE_API_KEY), stays inside the SDK client, and is
redacted from every message kept or logged. The endpoint is the SDK's own: GOOGLE_GEMINI_BASE_URL.

Never imports or calls decision or executor; never proposes or chooses an action. All
bookkeeping happens on the caller's thread; the lane's thread only makes the request.
"""
from __future__ import annotations

import time
from typing import Callable, Mapping

from llm_asker import Consultation, GeminiAsker, Kind, log
from llm_bounds import LLMSettings
from llm_call import deadline_transport, http_module
from llm_contract import (
    SYSTEM_INSTRUCTION,
    FallbackReason,
    is_quiet,
    parse_reply,
    picture,
    render_prompt,
    response_schema,
    signature,
)
from observer import Snapshot
from reasoner import Hypothesis, Reasoning, merge_hypotheses

__all__ = ["GeminiReasoner", "LLMSettings", "from_env"]


class GeminiReasoner(GeminiAsker):
    """The LLM half of the Reasoner; with client None it is off and merge() returns the heuristics unchanged."""

    # -- reasoning ----------------------------------------------------------------------
    def merge(self, snap: Snapshot, heuristic: list[Hypothesis]) -> Reasoning:
        self._tick = snap.tick
        if not self.enabled:
            return Reasoning(tuple(heuristic), self.status("off", self.off_reason))
        now = self._now(snap.tick)
        arrived = self._collect(now)
        pic = picture(snap, heuristic, self.settings.contract)
        sig = None if is_quiet(pic) else signature(pic)
        if self._schema is None:
            self._schema = response_schema(snap.universe, self.settings.contract)
        fresh = arrived is not None and self._arrived(arrived, sig, snap, now)
        if sig is None:                                    # nothing to interpret: no call
            self._pump(now, sig)
            return Reasoning(tuple(heuristic), self.status("quiet"))
        self.acct.consults += 1
        if sig in self.cache:
            self.cache.move_to_end(sig)
            self.acct.cache_hits += not fresh
            self._pump(now, sig)
            return Reasoning(merge_hypotheses(heuristic, self.cache[sig]), self.status("answered" if fresh else "cached"))
        answer, reason, detail = self._consult(sig, pic, now, snap)
        self._pump(now, sig)
        if answer is None:
            self.acct.fallbacks[reason.value] += 1
            return Reasoning(merge_hypotheses(heuristic, None, reason.value), self.status("fallback", reason, detail))
        return Reasoning(merge_hypotheses(heuristic, answer), self.status("answered"))

    def _consult(self, sig: str, pic: dict, now: float, snap: Snapshot):
        """-> (hypotheses, None, "") or (None, reason, detail); asks only if nothing forbids it."""
        seen = self.failed.get(sig)
        if seen and now - seen[0] < self.settings.retry_failed_after_s:
            return None, seen[1], f"unchanged picture; asked at {seen[0]:.0f} s: {seen[2]}"
        asking = self.lane.in_flight
        if self.background and (asking is not None and asking.key == sig or self._retry is not None and self._retry.key == sig):
            return None, FallbackReason.AWAITING_REPLY, "asked in the background; the answer is not in yet"
        blocked = self._blocked(now)
        if blocked is not None:
            return None, *blocked
        if self.background and self.lane.busy:
            return None, FallbackReason.AWAITING_REPLY, "an earlier question is still out; this picture is asked next"
        prompt, est = render_prompt(pic, self._schema, self.settings.contract)
        self.acct.note_prompt(est)
        c = Consultation(Kind.HYPOTHESES, sig, prompt, SYSTEM_INSTRUCTION, self._schema)
        if self.background:
            err = self._start(c, now)
            return (None, *err) if err else (None, FallbackReason.AWAITING_REPLY, "asked in the background just now")
        text, err = self._ask_now(c, now)
        return self._answer(c, text, err, snap, now)

    def _answer(self, c: Consultation, text: str | None, err: tuple | None, snap: Snapshot, now: float):
        """A reasoning reply (or its failure) judged: cache, breaker, failed pictures. -> (hyps | None, reason, detail)."""
        if err is None:
            self.acct.replies += 1
            parsed = parse_reply(text, snap.universe, self.settings.contract, snap)
            self._note_offered(parsed.offered)
            for reason, detail in parsed.rejected:
                self.acct.rejected[reason] += 1
                log.warning("gemini hypothesis discarded (%s): %s", reason, detail)
            for kept, why in parsed.narrowed:
                self.acct.narrowed["kept" if kept else "dropped"] += 1
                log.info("gemini named a narrower target: %s", why) if kept else log.warning("gemini target key %s", why)
            if parsed.failed:
                err = (FallbackReason(parsed.error[0]), parsed.error[1])
                self.acct.failures[err[0].value] += 1
        if err is not None:
            self._failed(c, err, now)
            return None, err[0], err[1]
        self.breaker.record(True, now)
        self.failed.pop(c.key, None)
        self.acct.answered += 1
        self.acct.replies_with_hypotheses += bool(parsed.hypotheses)
        self.cache[c.key] = parsed.hypotheses
        while len(self.cache) > self.settings.cache_size:
            self.cache.popitem(last=False)
        return parsed.hypotheses, None, ""

    def _arrived(self, done: tuple, sig: str | None, snap: Snapshot, now: float) -> bool:
        """Background: an answer to an earlier picture, merged if that picture still holds (True), else dropped
        as stale; a failure counts whatever the picture."""
        c, text, err = done
        if err is None and c.key != sig:
            self.acct.stale += 1
            self.breaker.record(True, now)                   # the endpoint answered; the world moved on
            log.info("gemini answer dropped as stale: the picture it was asked about has changed")
            return False
        return self._answer(c, text, err, snap, now)[0] is not None


def from_env(environ: Mapping[str, str], disabled: bool = False, clock: Callable[[int], float] = lambda t: float(t),
             timer: Callable[[], float] | None = time.perf_counter, sleep: Callable[[float], None] = time.sleep,
             settings: LLMSettings | None = None, background: bool = False) -> GeminiReasoner:
    """The reasoner run.py and worker.py use: off with --no-llm or without a key, else on the SDK.

    GEMINI_MODEL overrides the model. The endpoint is left to the SDK (GOOGLE_GEMINI_BASE_URL). Requests go
    through llm_call's transport, which holds each to its total deadline.
    """
    settings = settings or LLMSettings(model=environ.get("GEMINI_MODEL") or LLMSettings.model)
    make = lambda client, **kw: GeminiReasoner(client, settings, clock, timer, sleep, background=background, **kw)  # noqa: E731
    if disabled:
        return make(None, off_reason=FallbackReason.DISABLED)
    key = environ.get("GEMINI_API_KEY") or environ.get("GOOGLE_API_KEY")
    if not key:
        return make(None, off_reason=FallbackReason.NO_KEY)
    from google import genai
    from google.genai import types
    try:
        options = types.HttpOptions(timeout=settings.timeout_ms,
                                    client_args={"transport": deadline_transport(http_module())})
        client = genai.Client(api_key=key, vertexai=False, http_options=options)
    except Exception as e:
        log.warning("gemini client not created: %s", str(e).replace(key, "[redacted]")[:300])
        return make(None, off_reason=FallbackReason.SDK_ERROR)
    return make(client, secret=key)
