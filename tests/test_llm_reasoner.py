"""llm_reasoner.py with a fake client (no network, frozen time): an LLM-only hypothesis needs a human, the bounded
caller (off reasons, cache, failures, retries, budget, breaker), the key kept out of logs, summaries, accounting.
The contract it applies is in test_llm_contract.py; reasoner.merge_hypotheses in test_reasoner.py."""
from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import httpx2
import pytest
from google.genai import errors, types

import llm_contract as C
import llm_reasoner as L
from decision import decide
from guardrails import ControlView
from learning_policy import LearningSignal
from llm_bounds import describe_llm
from merchant_profiles import DEFAULT_UNIVERSE as U
from reasoner import (
    Cause,
    Hypothesis,
    Source,
    heuristic_hypotheses,
    make_target,
    merge_hypotheses,
)

ROOT = Path(__file__).resolve().parent.parent
KEY = "AIza-test-key-0123456789"


pytestmark = pytest.mark.usefixtures("gemini_sandbox")   # no network, no Gemini variables


def reply(text: str | None, blocked: bool = False, prompt_tokens: int = 700, out_tokens: int = 90):
    usage = types.GenerateContentResponseUsageMetadata(prompt_token_count=prompt_tokens, candidates_token_count=out_tokens)
    if blocked:
        return types.GenerateContentResponse(prompt_feedback=types.GenerateContentResponsePromptFeedback(
            block_reason=types.BlockedReason.SAFETY), usage_metadata=usage)
    parts = [types.Part(text=text)] if text is not None else []
    return types.GenerateContentResponse(candidates=[types.Candidate(content=types.Content(role="model", parts=parts),
                                                                     finish_reason=types.FinishReason.STOP)],
                                         usage_metadata=usage)


class FakeClient:
    """Stands in for genai.Client: a queue of replies or exceptions, the last one repeating."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.requests: list[dict] = []
        self.models = self

    def generate_content(self, model, contents, config):
        self.requests.append({"model": model, "contents": contents, "config": config})
        r = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(r, BaseException):
            raise r
        return r


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self, tick: int) -> float:
        return self.t


def gemini(client, clock=None, **settings) -> L.GeminiReasoner:
    return L.GeminiReasoner(client, L.LLMSettings(**{"retry_backoff_s": 0.0, **settings}), clock or Clock(),
                            sleep=lambda s: None, secret=KEY)


def item(cause="issuer_degradation", target=None, confidence=0.9, evidence=("rate down",), **extra) -> dict:
    return {"cause": cause, "target": {"issuer": "chase", "processor": "atlas"} if target is None else target,
            "confidence": confidence, "evidence": list(evidence), **extra}


def good_text(*items) -> str:
    return json.dumps({"hypotheses": list(items) or [item()]})


# -- the contract: replies are untrusted ------------------------------------------------------


# -- the picture: bounded, and its signature ignores the numbers ----------------------------------


def test_an_llm_only_hypothesis_leads_only_to_actions_a_human_must_approve(snaps):
    _, bad = snaps
    heur = heuristic_hypotheses(bad)
    assert not decide(tuple(heur), bad, LearningSignal(), ControlView()).requires_human_approval   # heuristics: automatic
    g = Hypothesis(Cause.ISSUER_DEGRADATION, make_target(issuer="chase", processor="atlas"), 0.95, (), Source.GEMINI)
    d = decide(merge_hypotheses([], (g,)), bad, LearningSignal(), ControlView())    # the same claim, LLM alone
    assert not d.is_no_op and d.requires_human_approval
    assert "only the LLM supports this hypothesis" in d.guardrails


# -- the bounded caller -----------------------------------------------------------------------

def test_off_without_key_or_with_no_llm():
    no_key = L.from_env({})
    disabled = L.from_env({"GEMINI_API_KEY": KEY}, disabled=True)
    assert not no_key.enabled and no_key.off_reason is C.FallbackReason.NO_KEY
    assert not disabled.enabled and disabled.off_reason is C.FallbackReason.DISABLED


def test_from_env_reads_either_key_and_the_model():
    on = L.from_env({"GOOGLE_API_KEY": KEY, "GEMINI_MODEL": "gemini-2.5-flash-lite"})
    assert on.enabled and on.settings.model == "gemini-2.5-flash-lite"
    assert L.from_env({"GEMINI_API_KEY": KEY}).settings.model == "gemini-2.5-flash"
    assert KEY not in json.dumps(on.status("quiet"))


def test_off_reasoner_returns_heuristics_untouched(snaps):
    _, bad = snaps
    heur = heuristic_hypotheses(bad)
    r = L.from_env({}).merge(bad, heur)
    assert r.hypotheses == tuple(heur) and r.llm_status["reason"] == "no_key" and not r.llm_status["enabled"]


def test_quiet_tick_makes_no_call(snaps):
    quiet, _ = snaps
    client = FakeClient(reply(good_text()))
    r = gemini(client).merge(quiet, heuristic_hypotheses(quiet))
    assert client.requests == [] and r.llm_status["state"] == "quiet"


def test_a_good_reply_confirms_and_the_request_is_structured(snaps):
    _, bad = snaps
    client = FakeClient(reply(good_text()))
    g = gemini(client)
    r = g.merge(bad, heuristic_hypotheses(bad))
    assert r.hypotheses[0].source is Source.GEMINI and r.hypotheses[0].supported_by_heuristic
    req = client.requests[0]
    cfg = req["config"]
    assert req["model"] == "gemini-2.5-flash" and cfg.response_mime_type == "application/json"
    assert cfg.response_schema is not None and cfg.temperature == 0.0 and "never propose" in cfg.system_instruction
    assert cfg.thinking_config.thinking_budget == 0 and cfg.max_output_tokens == 512
    assert '"heuristic_candidates"' in req["contents"] and '"counts"' not in req["contents"]
    a = r.llm_status["accounting"]
    assert (a["calls"], a["answered"], a["tokens_in"], a["tokens_out"]) == (1, 1, 700, 90)


def test_an_unchanged_picture_is_answered_from_cache(snaps):
    _, bad = snaps
    client = FakeClient(reply(good_text()))
    g = gemini(client)
    heur = heuristic_hypotheses(bad)
    g.merge(bad, heur)
    r = g.merge(bad, heur)
    assert len(client.requests) == 1 and r.llm_status["state"] == "cached"
    assert r.hypotheses[0].source is Source.GEMINI


@pytest.mark.parametrize("exc, reason, calls", [
    (errors.ClientError(429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}), "rate_limited", 1),  # not retried
    (errors.ServerError(500, {"error": {"code": 500, "status": "INTERNAL"}}), "server_error", 2),           # one retry
    (errors.ServerError(503, {"error": {"code": 503, "status": "UNAVAILABLE"}}), "server_error", 2),
    (httpx2.ReadTimeout("timed out"), "timeout", 2),                     # the HTTP client's, not an APIError
    (httpx2.ConnectError("connection refused"), "server_error", 2),
    (errors.ClientError(403, {"error": {"code": 403, "status": "PERMISSION_DENIED"}}), "request_rejected", 1),
    (RuntimeError("pydantic choked"), "sdk_error", 1),
])
def test_call_failures_fall_back_with_their_reason(snaps, exc, reason, calls):
    _, bad = snaps
    client = FakeClient(exc)
    heur = heuristic_hypotheses(bad)
    r = gemini(client).merge(bad, heur)
    assert len(client.requests) == calls
    assert all(h.source is Source.HEURISTIC_FALLBACK and h.fallback_reason == reason for h in r.hypotheses)
    assert [h.confidence for h in r.hypotheses] == [h.confidence for h in heur]
    assert r.llm_status["reason"] == reason and r.llm_status["accounting"]["failures"] == {reason: calls}


@pytest.mark.parametrize("text, blocked, reason", [
    (None, True, "empty_reply"), (None, False, "empty_reply"), ("not json", False, "invalid_json"),
    (good_text(item(cause="cosmic_rays", action="x")), False, "schema_violation"),
])
def test_bad_replies_fall_back_with_their_reason(snaps, text, blocked, reason):
    _, bad = snaps
    r = gemini(FakeClient(reply(text, blocked))).merge(bad, heuristic_hypotheses(bad))
    assert r.llm_status["reason"] == reason and r.hypotheses[0].fallback_reason == reason


def test_one_retry_then_success(snaps):
    _, bad = snaps
    client = FakeClient(httpx2.ReadTimeout("timed out"), reply(good_text()))
    r = gemini(client).merge(bad, heuristic_hypotheses(bad))
    a = r.llm_status["accounting"]
    assert r.llm_status["state"] == "answered" and (a["calls"], a["retries"]) == (2, 1)


def _pictures(snap, n):
    """n heuristic lists that give n different signatures on one snapshot."""
    return [[Hypothesis(Cause.RETRY_STORM, make_target(merchant=m), 0.7)] for m in U.merchant_names[:n]]


def test_per_minute_call_budget(snaps):
    _, bad = snaps
    clock = Clock()
    client = FakeClient(reply(good_text()))
    g = gemini(client, clock, calls_per_minute=2)
    states = [g.merge(bad, h).llm_status for h in _pictures(bad, 3)]
    assert [s["state"] for s in states] == ["answered", "answered", "fallback"]
    assert states[-1]["reason"] == "budget_exhausted" and len(client.requests) == 2
    clock.t += 61
    assert g.merge(bad, _pictures(bad, 4)[3]).llm_status["state"] == "answered"


def test_circuit_breaker_opens_after_consecutive_failures_then_tries_again(snaps):
    _, bad = snaps
    clock = Clock()
    client = FakeClient(errors.ClientError(429, {"error": {"code": 429}}))
    g = gemini(client, clock, breaker_failures=3, breaker_cooldown_s=300, calls_per_minute=100)
    pics = _pictures(bad, 6)
    reasons = [g.merge(bad, h).llm_status.get("reason") for h in pics[:5]]
    assert reasons == ["rate_limited"] * 3 + ["circuit_open"] * 2 and len(client.requests) == 3
    clock.t += 299
    assert g.merge(bad, pics[5]).llm_status["reason"] == "circuit_open"
    clock.t += 2
    client.replies = [reply(good_text())]
    s = g.merge(bad, pics[5]).llm_status                      # half open: one trial call, and it succeeds
    assert s["state"] == "answered" and s["circuit"] == "closed" and len(client.requests) == 4


def test_a_failed_picture_is_not_asked_again_at_once(snaps):
    _, bad = snaps
    clock = Clock()
    client = FakeClient(reply("not json"), reply(good_text()))
    g = gemini(client, clock, retry_failed_after_s=30)
    heur = heuristic_hypotheses(bad)
    assert g.merge(bad, heur).llm_status["reason"] == "invalid_json"
    clock.t += 10
    assert g.merge(bad, heur).llm_status["reason"] == "invalid_json" and len(client.requests) == 1
    clock.t += 30
    assert g.merge(bad, heur).llm_status["state"] == "answered" and len(client.requests) == 2


def test_the_key_never_reaches_status_or_logs(snaps, caplog):
    _, bad = snaps
    caplog.set_level(logging.DEBUG)
    leak = errors.ClientError(400, {"error": {"code": 400, "message": f"API key {KEY} not valid"}})
    r = gemini(FakeClient(leak)).merge(bad, heuristic_hypotheses(bad))
    assert r.llm_status["reason"] == "request_rejected" and "[redacted]" in r.llm_status["detail"]
    assert KEY not in json.dumps(r.llm_status) and KEY not in caplog.text
    assert "[redacted]" in caplog.text


def test_offered_fields_are_logged_and_counted(snaps, caplog):
    _, bad = snaps
    r = gemini(FakeClient(reply(good_text(item(action="reroute chase to beacon"))))).merge(bad, heuristic_hypotheses(bad))
    assert r.llm_status["state"] == "answered"
    assert r.llm_status["accounting"]["offered_fields"] == {"hypotheses[].action": 1}
    assert "hypotheses[].action" in caplog.text


def test_summary_is_asked_once_per_outcome_set_and_kept_on_failure():
    memory = [{"id": "A0001", "tick": 30, "action": "reroute", "target": {"issuer": "chase"}, "cause": "issuer_degradation",
               "outcome": "helped", "status": "restored", "success_gain": 0.53, "cost_ratio": 0.9}]
    ok = reply(json.dumps({"helped": ["reroute of chase helped"], "hurt": [], "watch": [], "action": "loosen rules"}))
    client = FakeClient(ok, errors.ServerError(503, {"error": {"code": 503}}))
    g = gemini(client)
    s = g.summarize(memory, {"reroute": {"count": 1}})
    assert s["helped"] == ["reroute of chase helped"] and s["applied_to_policy"] is False and "action" not in s
    assert g.summarize(memory, {}) is s and len(client.requests) == 1          # unchanged outcomes: no call
    changed = memory + [{**memory[0], "id": "A0002", "outcome": "hurt"}]
    assert g.summarize(changed, {}) is s and len(client.requests) == 3          # failed (with its retry): last good kept
    assert L.from_env({}).summarize(memory, {}) is None


def test_describe_reports_accounting_and_off_mode(snaps):
    _, bad = snaps
    g = gemini(FakeClient(reply(good_text())))
    lines = describe_llm(g.merge(bad, heuristic_hypotheses(bad)).llm_status)
    assert "1 fresh answers" in lines[0] and "tokens in 700" in lines[2]
    assert describe_llm(L.from_env({}).merge(bad, []).llm_status) == ["  off (no_key): heuristics only"]


# -- layering ---------------------------------------------------------------------------------

def _imports(module: str) -> set[str]:
    tree = ast.parse((ROOT / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _reach(module: str) -> set[str]:
    """Project modules reachable from `module` through imports."""
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m in seen or not (ROOT / f"{m}.py").exists():
            continue
        seen.add(m)
        todo += [n.split(".")[0] for n in _imports(m)]
    return seen


def test_layering():
    assert "llm_reasoner" not in _reach("decision")
    assert not {"decision", "executor", "state_writer"} & _reach("llm_reasoner")
    assert not any(n.startswith("google") for n in _imports("reasoner"))   # the contract is pure
