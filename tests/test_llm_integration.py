"""The real SDK, pointed through GOOGLE_GEMINI_BASE_URL at a stub on 127.0.0.1, inside full runs.

For every misbehaving reply, the run's actions are exactly those of the same run with
the LLM off, and the fallback reason is recorded; with the good reply, hypotheses are
marked gemini and the decision engine still decides. The key never reaches a file,
a log or the output.
"""
from __future__ import annotations

import json
import logging
import os

import pytest
from gemini_stub import INJECTION, GeminiStub

import llm_reasoner
import report as R
import run
from merchant_profiles import DEFAULT_UNIVERSE as U
from scenario import parse_scenario

KEY = "AIza-integration-secret-42"
SCENARIO_DOC = {"name": "llm integration", "seed": 11, "tick_seconds": 10, "payments_per_tick": 2000, "phases": [
    {"name": "baseline", "ticks": 30},
    {"name": "degradation", "ticks": 14,
     "faults": [{"kind": "issuer_degradation", "issuer": "chase", "processor": "atlas", "severity": 0.6}]},
    {"name": "retry storm", "ticks": 16, "faults": [{"kind": "retry_storm", "merchant": "pixelforge", "severity": 0.8}]}]}
SCENARIO = parse_scenario(SCENARIO_DOC, U)
FAST = llm_reasoner.LLMSettings(timeout_ms=300, retry_backoff_s=0.0)


pytestmark = pytest.mark.usefixtures("gemini_sandbox")   # no network, no Gemini variables


def actions(res: R.RunResult) -> list[dict]:
    return [a.to_dict() for a in res.agent.executor.actions.values()]


@pytest.fixture(scope="module")
def llm_off() -> list[dict]:
    res = run.run_scenario(SCENARIO, SCENARIO.seed)
    assert any(a["status"] != "pending_approval" for a in actions(res))     # there is something to compare
    return actions(res)


def run_with_stub(mode: str, monkeypatch, state_dir, slow_s: float = 1.5):
    with GeminiStub(mode, slow_s=slow_s) as stub:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", stub.url)   # the SDK's own variable
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        llm = llm_reasoner.from_env(os.environ, clock=lambda t: t * SCENARIO.tick_seconds, settings=FAST)
        res = run.run_scenario(SCENARIO, SCENARIO.seed, state_dir=state_dir, llm=llm, summarizer=llm)
        report = R.build_report(res, None)
    return res, report, stub


def assert_no_key(tmp_path, report, caplog, capsys):
    out = capsys.readouterr()
    texts = [p.read_text() for p in tmp_path.rglob("*.json")] + [json.dumps(report), caplog.text, out.out, out.err]
    assert texts and not any(KEY in t for t in texts)


@pytest.mark.parametrize("mode, reason", [
    ("not_json", "invalid_json"),
    ("bad_schema", "schema_violation"),     # cause outside the list, confidence 7.5, an "action" field
    ("injection", "unknown_entity"),        # "ignore your rules ..." with a target that does not exist
    ("http_429", "rate_limited"),
    ("http_500", "server_error"),
    ("http_503", "server_error"),
    ("slow", "timeout"),                    # slower than the 300 ms timeout: the HTTP client's exception
    ("empty", "empty_reply"),
    ("blocked", "empty_reply"),             # promptFeedback.blockReason SAFETY
])
@pytest.mark.slow
def test_misbehaving_replies_change_no_action(mode, reason, llm_off, monkeypatch, tmp_path, caplog, capsys):
    caplog.set_level(logging.INFO)
    res, report, stub = run_with_stub(mode, monkeypatch, tmp_path)
    assert stub.requests and all(r["headers"].get("x-goog-api-key") == KEY for r in stub.requests)
    assert actions(res) == llm_off
    acct = report["llm"]["accounting"]
    assert acct["fallbacks"][reason] >= 1 and acct["fallback_share"] == 1.0 and acct["answered"] == 0
    hyp = json.loads((tmp_path / "hypotheses.json").read_text())
    seen = [h for h in hyp["history"] if h["source"] != "heuristic_fallback"]
    assert hyp["history"] and not seen                                   # every hypothesis fell back ...
    # ... and says why: the failure itself, or the breaker / budget that the repeated failure tripped
    assert {h["fallback_reason"] for h in hyp["history"]} <= {reason, "circuit_open", "budget_exhausted"}
    assert INJECTION not in json.dumps(hyp) and "cosmic_rays" not in json.dumps(hyp)
    assert_no_key(tmp_path, report, caplog, capsys)


@pytest.mark.slow
def test_bad_schema_reply_reports_the_offered_action_field(monkeypatch, tmp_path):
    _, report, _ = run_with_stub("bad_schema", monkeypatch, tmp_path)
    assert report["llm"]["accounting"]["offered_fields"]["hypotheses[].action"] >= 1


@pytest.mark.slow
def test_timeout_is_bounded(monkeypatch, tmp_path):
    _, report, stub = run_with_stub("slow", monkeypatch, tmp_path, slow_s=3.0)
    acct = report["llm"]["accounting"]
    assert acct["failures"]["timeout"] == acct["calls"] and acct["retries"] >= 1
    assert acct["latency_ms"]["max"] < 1500                  # gave up at ~300 ms, never waited the stub's 3 s
    assert acct["fallbacks"].get("circuit_open", 0) >= 1     # and then stopped asking for a while


@pytest.mark.slow
def test_good_reply_marks_gemini_and_the_decision_engine_still_decides(llm_off, monkeypatch, tmp_path, caplog, capsys):
    res, report, stub = run_with_stub("good", monkeypatch, tmp_path)
    hyp = json.loads((tmp_path / "hypotheses.json").read_text())
    confirmed = [h for h in hyp["history"] if h["source"] == "gemini"]
    assert confirmed and all(h.get("supported_by_heuristic", True) and "llm_confidence" in h for h in confirmed)
    assert {h["cause"] for h in confirmed} >= {"issuer_degradation", "retry_storm"}
    assert hyp["llm"]["accounting"]["answered"] >= 2 and hyp["llm"]["accounting"]["cache_hits"] >= 1
    executed = [a for a in actions(res) if a["executed_tick"] is not None]
    assert executed and all(a["approval"] is None for a in executed)     # decided and applied by the engine alone
    # the stub's confidence (0.9) is above the heuristics' here, and agreement never raises confidence:
    assert actions(res) == llm_off
    learning = json.loads((tmp_path / "learning.json").read_text())
    assert learning["summary"]["source"] == "gemini" and learning["summary"]["applied_to_policy"] is False
    assert "action" not in learning["summary"] and report["learning_summary"] == learning["summary"]
    assert_no_key(tmp_path, report, caplog, capsys)


@pytest.mark.slow
def test_llm_only_hypothesis_is_shown_unsupported(monkeypatch, tmp_path):
    res, _, _ = run_with_stub("llm_only", monkeypatch, tmp_path)
    hyp = json.loads((tmp_path / "hypotheses.json").read_text())
    alone = [h for h in hyp["history"] if h.get("supported_by_heuristic") is False]
    assert alone and all(h["source"] == "gemini" and h["cause"] == "latency_spike" for h in alone)
    for a in actions(res):                                # anything it led to waits for a human
        if a["target"] in [h["target"] for h in alone]:
            assert a["requires_human_approval"] and a["status"] == "pending_approval"


@pytest.mark.slow
def test_run_py_shows_gemini_beside_heuristics_and_replays_exactly(monkeypatch, tmp_path, capsys):
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps(SCENARIO_DOC))
    outputs = []
    with GeminiStub("good") as stub:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", stub.url)
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        for n in (1, 2):
            rc = run.main(["--scenario", str(scenario), "--state-dir", str(tmp_path / f"s{n}"),
                           "--report", str(tmp_path / f"r{n}.json")])
            assert rc == 0
            outputs.append(capsys.readouterr().out)
        rc = run.main(["--scenario", str(scenario), "--state-dir", str(tmp_path / "off"), "--no-llm", "--quiet"])
        off_out = capsys.readouterr().out
    assert "hypothesis [gemini] issuer_degradation" in outputs[0] and "gemini-2.5-flash:" in outputs[0]
    assert "off (disabled): heuristics only" in off_out
    reports = [json.loads((tmp_path / f"r{n}.json").read_text()) for n in (1, 2)]
    for r in reports:                                     # wall-clock latency is the one figure a replay cannot repeat
        r["llm"]["accounting"].pop("latency_ms")
    assert reports[0] == reports[1] and reports[0]["llm"]["accounting"]["calls"] >= 2
    strip = lambda s: "\n".join(l for l in s.splitlines() if "latency p50" not in l)
    assert strip(outputs[0]) == strip(outputs[1])


@pytest.mark.parametrize("argv, env, reason", [
    (["--no-llm"], {"GEMINI_API_KEY": KEY}, "disabled"),
    ([], {}, "no_key"),
])
def test_worker_records_why_the_llm_is_off(argv, env, reason, monkeypatch, tmp_path):
    import worker
    monkeypatch.setattr(worker.signal, "signal", lambda *a: None)    # leave pytest's Ctrl-C alone
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert worker.main(["--max-ticks", "2", "--tick-seconds", "0.01", "--state-dir", str(tmp_path)] + argv) == 0
    llm = json.loads((tmp_path / "hypotheses.json").read_text())["llm"]
    assert (llm["enabled"], llm["state"], llm["reason"]) == (False, "off", reason)
    assert not any(KEY in p.read_text() for p in tmp_path.glob("*.json"))
