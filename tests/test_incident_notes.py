"""Words for incidents: the template note, Gemini's note validated like every reply (it names the target and the
agent's own action, never another), NoteKeeper's timing, the live agent's incidents in the demo's report and state,
and notes from Gemini through the real SDK with the executed actions unchanged."""
from __future__ import annotations

import contextlib
import io
import json
import os
from collections import Counter

import pytest

import incident_notes as N
import llm_reasoner as L
import report as R
import run
from incidents import Incident
from tests.test_llm_integration import SCENARIO

pytestmark = pytest.mark.usefixtures("gemini_sandbox")
INC = {"id": "I001", "cause": "issuer_degradation", "target": {"issuer": "chase", "processor": "atlas"},
       "start": "2026-01-01T12:05:00Z", "end": None, "confidence": 0.9, "evidence": ["53% vs 84%"],
       "affected_attempts": 2034, "approvals_lost_est": 978.4,
       "recommendation": {"action_id": "A0001", "action": "reroute", "target": {"issuer": "chase", "processor": "atlas"},
                          "params": {"to_processor": "beacon"}, "risk": 0.41, "requires_human_approval": False,
                          "status": "executed", "reasons": ["reroute expected to win $1800/tick"]}}
FACTS = N.note_facts(INC)
GOOD = {"what": "chase fails on atlas", "where": "issuer chase on processor atlas", "since": "since 12:05",
        "size": "2,034 first attempts, ~978 approvals lost", "recommendation": "the agent rerouted chase to beacon",
        "why": "beacon is healthy for chase"}


@pytest.mark.parametrize("inc, fragments", [
    (INC, ["issuer degradation at issuer chase, processor atlas since 2026-01-01T12:05:00Z, still open",
           "2,034 first attempts", "~978 approvals", "reroute of issuer chase, processor atlas to beacon",
           "applied automatically, risk 0.41"]),
    ({**INC, "end": "2026-01-01T12:11:40Z", "recommendation": None, "no_recommendation_reason": "confidence too low"},
     ["until 2026-01-01T12:11:40Z", "No action recommended: confidence too low."]),
])
def test_template_note(inc, fragments):
    note = N.template_note(inc, "2026-01-01T12:12:00Z")
    assert note["source"] == "template" and note["as_of"] == "2026-01-01T12:12:00Z"
    assert all(f in note["text"] for f in fragments), note["text"]


@pytest.mark.parametrize("doc, facts, error, offered", [
    (GOOD, FACTS, None, ()),                                                        # a good note
    ({**GOOD, "action": "suppress everything"}, FACTS, None, ("action",)),         # extra field: dropped, reported
    ({**GOOD, "where": "somewhere in Europe"}, FACTS, "schema_violation", ()),     # does not name the target
    ({**GOOD, "recommendation": "suppress chase"}, FACTS, "schema_violation", ()), # recommends what the agent did not
    ({**GOOD, "recommendation": "move traffic"}, FACTS, "schema_violation", ()),   # does not name the agent's action
    ({**GOOD, "recommendation": "no action"}, {**FACTS, "recommendation": None}, None, ()),   # none, said as none
    ({**GOOD, "recommendation": "reroute it"}, {**FACTS, "recommendation": None}, "schema_violation", ()),
    ({k: v for k, v in GOOD.items() if k != "why"}, FACTS, "schema_violation", ()),   # a field missing
    ({**GOOD, "size": ""}, FACTS, "schema_violation", ()),                          # empty
])
def test_parse_note(doc, facts, error, offered):
    out, err, off = N.parse_note(json.dumps(doc), facts)
    assert (err[0] if err else None) == error and off == offered
    if out:
        assert set(out) == set(N.NOTE_FIELDS) and all(len(v) <= N.NOTE_CHARS for v in out.values())


@pytest.mark.parametrize("text, error", [("not json", "invalid_json"), ("", "empty_reply"), ("[1]", "schema_violation")])
def test_a_note_reply_that_is_not_a_note_fails_with_its_reason(text, error):
    assert N.parse_note(text, FACTS)[1][0] == error


def test_note_text_and_control_characters():
    out, _, _ = N.parse_note(json.dumps({**GOOD, "why": "beacon\x1b[31m is healthy\u202e"}), FACTS)
    assert "\x1b" not in N.note_text(out) and "\u202e" not in N.note_text(out) and N.note_text(out).endswith(".")


class Writer:
    """A note writer with scripted answers per key: a note, None (will not come) or 'wait' (not yet)."""
    enabled = True

    def __init__(self, answers):
        self.answers, self.asked = answers, Counter()

    def note(self, key, facts):
        self.asked[key] += 1
        a = self.answers.get(key, None)
        if a == "wait":
            return None, False
        return (None, True) if a is None else ({"source": "gemini", "model": "m", "text": a}, True)


def _incident(named_ticks: int) -> Incident:
    inc = Incident("I001", 10, "t10", "issuer_degradation", INC["target"], 0.9, [], 10)
    inc.named[("issuer_degradation", tuple(sorted(INC["target"].items())))] = named_ticks
    return inc


def test_note_keeper_template_first_gemini_once_sized_and_a_final_note_at_the_end():
    inc = _incident(1)
    keeper = N.NoteKeeper(Writer({"I001:early": "early words", "I001:final": "final words"}), after_ticks=3)
    keeper.update([inc], "t10")
    assert inc.note["source"] == "template" and keeper.writer.asked == Counter()      # too young to ask
    inc.named[next(iter(inc.named))] = 3
    keeper.update([inc], "t12")
    assert (inc.note["source"], inc.note["text"], inc.note["as_of"]) == ("gemini", "early words", "t12")
    keeper.update([inc], "t13")
    assert inc.note["as_of"] == "t12"                                                  # kept, not rewritten
    inc.end = "t20"
    keeper.update([], "t21")                                                           # it closed
    assert (inc.note["text"], inc.note["final"]) == ("final words", True)


def test_a_final_note_that_does_not_come_is_the_template_and_one_still_coming_is_awaited():
    inc = _incident(5)
    writer = Writer({"I001:early": "early words", "I001:final": "wait"})
    keeper = N.NoteKeeper(writer)
    keeper.update([inc], "t12")
    inc.end = "t20"
    keeper.update([], "t21")
    keeper.update([], "t22")
    assert inc.note["source"] == "template" and writer.asked["I001:final"] == 2        # asked each tick until settled
    writer.answers["I001:final"] = None
    keeper.update([], "t23")
    keeper.update([], "t24")
    assert inc.note["source"] == "template" and inc.note["final"] and writer.asked["I001:final"] == 3


def test_the_demo_report_and_state_hold_the_incidents_with_template_notes(demo_run):
    folder, report, printed = demo_run                 # `run.py --quiet --no-llm`, once per session (conftest.py)
    incidents = report["incidents"]
    assert {i["cause"] for i in incidents} >= {"issuer_degradation", "retry_storm", "latency_spike"}
    assert all(i["note"]["source"] == "template" and i["note"]["final"] for i in incidents if i["end"])
    ids = {a["id"]: a for a in report["actions"]}
    for i in incidents:
        r = i["recommendation"]
        assert r is None and i["no_recommendation_reason"] or ids[r["action_id"]]["status"] == r["status"]
    state = json.loads((folder / "state" / "incidents.json").read_text())
    assert state["incidents"] == incidents and "Incidents:" in printed


@pytest.mark.slow
def test_with_gemini_the_incidents_carry_its_notes_and_nothing_executes_differently(monkeypatch, tmp_path):
    from gemini_contract_stub import ContractStub
    off = run.run_scenario(SCENARIO, SCENARIO.seed)
    with ContractStub("confirm") as stub:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", stub.url)
        monkeypatch.setenv("GEMINI_API_KEY", "AIza-notes")
        llm = L.from_env(os.environ, clock=lambda t: t * SCENARIO.tick_seconds,
                         settings=L.LLMSettings(retry_backoff_s=0.0, calls_per_minute=30))
        res = run.run_scenario(SCENARIO, SCENARIO.seed, state_dir=tmp_path, llm=llm, summarizer=llm)
        report = R.build_report(res, None)
    notes = [i["note"] for i in report["incidents"]]
    assert notes and any(n["source"] == "gemini" for n in notes) and report["llm"]["accounting"]["notes"] >= 1
    assert all(n["source"] in ("gemini", "template") and n["text"] for n in notes)
    executed = lambda r: [(a.tick, a.action, a.target, a.params, a.status.value, a.executed_tick)  # noqa: E731
                          for a in r.agent.executor.actions.values() if a.executed_tick is not None]
    assert executed(res) == executed(off)


@pytest.mark.slow
@pytest.mark.parametrize("key", [False, True])
def test_a_replay_notes_every_incident_from_the_template_or_from_gemini(key, monkeypatch, tmp_path):
    from gemini_contract_stub import ContractStub
    from shadow_logs import Planted, events
    log = events(minutes=6 * 60, per_minute=1500, planted=(Planted({"issuer": "bank002", "processor": "razorpay"},
                                                                   4 * 60, 40, 0.2),))
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    with ContractStub("confirm") as stub:
        if key:
            monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", stub.url)
            monkeypatch.setenv("GEMINI_API_KEY", "AIza-replay-notes")
        with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()):
            assert run.main(["--replay", str(path), "--report", str(tmp_path / "r.json"), "--state-dir",
                             str(tmp_path / "s"), "--quiet"]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["incidents"] and all(i["note"]["text"] for i in report["incidents"])
    sources = {i["note"]["source"] for i in report["incidents"]}
    assert sources == ({"gemini"} if key else {"template"}) and "note (" in out.getvalue()
    assert report["llm"]["enabled"] is key and (not key or report["llm"]["accounting"]["notes"] >= 1)
    if key:                                                 # Gemini is asked for notes only in a replay
        assert all(r["body"]["contents"][0]["parts"][0]["text"].startswith("Incident facts.") for r in stub.requests)
    state = json.loads((tmp_path / "s" / "incidents.json").read_text())
    assert [i["note"]["source"] for i in state["incidents"]] == [i["note"]["source"] for i in report["incidents"]]


@pytest.mark.parametrize("llm, label", [
    ({"enabled": True, "state": "fallback", "reason": "awaiting_reply"}, "asking"),   # the worker never waits
    ({"enabled": True, "state": "fallback", "reason": "time_bound"}, "fallback"),
])
def test_the_header_says_asking_while_the_worker_awaits_an_answer(llm, label):
    import dashboard_text
    assert dashboard_text.llm_status(llm)[0] == label


@pytest.mark.slow
def test_a_note_is_shown_on_the_live_page_as_plain_text_never_markdown(tmp_path, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from state_writer import read_json, write_json
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert run.main(["--quiet", "--no-llm", "--state-dir", str(tmp_path)]) == 0
    evil = "<img src=x onerror=alert(1)> ![t](http://evil.example/p.png)"
    doc = read_json(tmp_path / "incidents.json")
    doc["incidents"][-1]["note"] = {"source": "gemini", "text": evil, "as_of": "t", "final": True}
    write_json(tmp_path / "incidents.json", {k: v for k, v in doc.items() if k not in ("schema_version", "generated_at")},
               doc["generated_at"])
    monkeypatch.setenv("PAYOPS_STATE_DIR", str(tmp_path))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "dashboard.py"), default_timeout=30).run()
    assert not at.exception and "Incidents" in [s.value for s in at.subheader]
    rendered = [e for kind in ("markdown", "caption", "info", "warning", "error", "success") for e in getattr(at, kind)]
    assert not any("evil.example" in str(e.value) or "onerror" in str(e.value) for e in rendered)
    assert any("note (gemini, as of t): " + evil in str(t.value) for t in at.text)
