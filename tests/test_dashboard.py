"""The dashboard on fixture state, through streamlit.testing.v1.AppTest (no browser, no network).

The fixture is real: the demo scenario run in memory up to the tick where the agent
holds its first action for a human (the globemart retry policy), written the way
worker.py writes it. The same Agent then plays the worker's part, so a click on
Approve is followed through the command file to the executor.
"""
from __future__ import annotations

import ast
import copy
import getpass
import json
import os
import re
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import dashboard_charts as charts
import dashboard_text as explain
from command_auth import dashboard_token, load_or_create_key
from commands import CommandLog, process_commands
from formatting import pct
from state_writer import COMMANDS_DIR, StateWriter, read_json, write_json

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ["Approval queue", "Traffic", "Hypotheses", "Current decision", "Incidents", "Action history", "Learning"]
HEADER = ["Success rate", "First-attempt success", "Attempts per payment", "p95 latency", "Cost per approved payment",
          "Payments per minute", "Agent", "LLM"]
LIVE = {"state": "running", "mode": "live", "tick_seconds": 1.0, "paused": False}


@pytest.fixture(scope="module")
def world(tmp_path_factory, pending_agent):
    """(state folder, agent) at the tick the demo's first high-risk action waits for approval."""
    agent = copy.deepcopy(pending_agent[0])
    folder = tmp_path_factory.mktemp("fixture")
    writer = StateWriter(folder, lambda: "2026-01-01T12:00:00Z")
    writer.write_all(agent.state_documents(LIVE))
    return folder, agent


@pytest.fixture
def state(world, tmp_path, monkeypatch):
    """A fresh copy of the fixture state (new modification times), and the dashboard pointed at it."""
    folder = tmp_path / "state"
    shutil.copytree(world[0], folder, copy_function=shutil.copy)
    monkeypatch.setenv("PAYOPS_STATE_DIR", str(folder))
    return folder


def app(state: Path | None = None) -> AppTest:
    """The page; given the state folder, opened with the token the dashboard prints (the operator's link)."""
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=30)
    if state is not None:
        at.query_params["token"] = dashboard_token(load_or_create_key(state))
    return at


def texts(at: AppTest) -> str:
    """The page's text as shown: Markdown sources with their backslash escapes resolved."""
    return re.sub(r"\\(.)", r"\1", "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning",
                                                                     "error", "success") for e in getattr(at, kind)))


def test_every_section_renders_with_its_charts(state):
    at = app().run()
    assert not at.exception
    assert [s.value for s in at.subheader] == SECTIONS
    assert [m.label for m in at.metric][:8] == HEADER
    assert len(at.get("vega_lite_chart")) == 4            # trend, issuers, latency, error mix
    assert not at.warning and not at.error                 # fresh, complete state: nothing to warn about
    metrics = {m.label: m.value for m in at.metric}
    summary = read_json(state / "metrics.json")["summary"]
    assert metrics["Success rate"] == pct(summary["success_rate"])
    assert metrics["Agent"] == "running" and metrics["LLM"] == "off"
    assert len(at.dataframe) >= 2                          # hypotheses and action history
    assert "retry storm at merchant globemart" in texts(at)  # "what is wrong" names the fault the agent sees


def test_explanation_matches_the_decision(state):
    actions = read_json(state / "actions.json")
    decision, exp = actions["decision"], actions["explanation"]
    assert not decision["requires_human_approval"] and decision["guardrails"]    # mitigated now, the rest escalated
    at = app().run()
    page = texts(at)
    verdict = explain.decision_verdict(decision)
    assert verdict.startswith("Acted: retry policy merchant pixelforge (retry_storm")
    assert "waits for a human" in decision["guardrails"][0]
    assert verdict in page
    assert exp["decision"] in page
    for line in exp["guardrails"] + exp["tradeoffs"]:
        assert line in page


@pytest.mark.parametrize("kind", ["approve", "reject"])
def test_a_click_writes_the_right_command_and_the_worker_applies_it_once(state, world, kind):
    pending = read_json(state / "actions.json")["pending"]
    action = pending[0]
    at = app(state).run()
    at.button(key=f"{kind}-{action['id']}").click().run()
    assert not at.exception
    files = list((state / COMMANDS_DIR).glob("*.json"))
    assert len(files) == 1
    cmd = json.loads(files[0].read_text())
    assert cmd["command"] == kind and cmd["action_id"] == action["id"] and cmd["by"] == getpass.getuser()
    assert cmd["id"] == files[0].stem
    assert ("params_hash" in cmd) == (kind == "approve")
    if kind == "approve":
        assert cmd["params_hash"] == action["params_hash"]
    issued = datetime.fromisoformat(cmd["issued_at"].replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - issued).total_seconds()) < 60
    assert f"Sent {kind} {action['id']}" in texts(at)
    assert at.button(key=f"approve-{action['id']}").disabled   # no second click while the worker has not answered

    agent = copy.deepcopy(world[1])                         # the worker's turn, on its own copy of the agent
    log = CommandLog(key=load_or_create_key(state))
    done = process_commands(state, agent, 200, datetime.now(timezone.utc), log)
    assert [e["result"] for e in done] == ["accepted"]
    rec = agent.executor.actions[action["id"]]
    assert rec.status.value == ("executed" if kind == "approve" else "rejected")
    assert (rec.approval.get("by") or rec.approval.get("rejected_by")) == getpass.getuser()
    assert not list((state / COMMANDS_DIR).glob("*.json"))  # processed files are removed
    write_json(files[0], cmd, cmd["issued_at"])             # the same command again: refused, applied once only
    again = process_commands(state, agent, 201, datetime.now(timezone.utc), log)
    assert again[0]["result"] == "refused" and "replayed" in again[0]["message"]


def test_pause_switch_writes_pause_and_a_paused_agent_is_shown(state):
    at = app(state).run()
    at.button(key="pause-switch").click().run()
    cmd = read_json(next((state / COMMANDS_DIR).glob("*.json")))
    assert cmd["command"] == "pause" and cmd["by"] == getpass.getuser() and cmd["sig"]
    write_json(state / "status.json", {**read_json(state / "status.json"), "state": "paused", "paused": True}, "x")
    at = app(state).run()
    assert at.button(key="pause-switch").label == "Resume automation"
    assert any("Automation is paused" in w.value for w in at.warning)
    assert {m.label: m.value for m in at.metric}["Agent"] == "paused"


@pytest.mark.parametrize("damage", [
    "{\"tick\": 14",            # half-written
    "not json at all",          # corrupt
    "[1, 2, 3]",                # JSON, but not a document
])
def test_a_broken_file_keeps_the_last_good_copy_with_a_warning(state, damage):
    at = app().run()
    before = {m.label: m.value for m in at.metric}
    (state / "metrics.json").write_text(damage)
    at.run()
    assert not at.exception
    assert any("metrics.json" in w.value and "last good copy" in w.value for w in at.warning)
    assert {m.label: m.value for m in at.metric}["Success rate"] == before["Success rate"]
    assert len(at.get("vega_lite_chart")) == 4


def test_a_missing_file_shows_a_warning_and_the_rest_of_the_page(state):
    (state / "actions.json").unlink()
    at = app().run()
    assert not at.exception
    assert any("actions.json" in w.value and "missing" in w.value for w in at.warning)
    assert [s.value for s in at.subheader] == SECTIONS
    assert "Nothing waits for approval." in texts(at)


def test_no_state_yet_says_how_to_start(tmp_path, monkeypatch):
    monkeypatch.setenv("PAYOPS_STATE_DIR", str(tmp_path / "empty"))
    at = app().run()
    assert not at.exception
    assert not at.subheader and not at.warning
    assert any("No agent state yet" in i.value for i in at.info)
    assert {c.value for c in at.code} == {"python worker.py", "python run.py"}


def test_stale_state_shows_that_the_worker_is_not_running(state):
    old = time.time() - 60
    for f in state.iterdir():
        os.utime(f, (old, old))
    at = app(state).run()
    assert any("worker is not running" in e.value for e in at.error)
    assert {m.label: m.value for m in at.metric}["Agent"] == "stale"
    assert at.button and all(b.disabled for b in at.button)          # commands would reach no worker


@pytest.mark.parametrize("status, age, label", [
    (None, None, "waiting"),                                       # no status.json yet
    ({"state": "running", "tick": 5}, 1.0, "running"),
    ({"state": "running", "tick": 5}, 11.0, "stale"),              # over the 10 s limit
    ({"state": "paused", "paused": True}, 1.0, "paused"),
    ({"state": "finished", "mode": "run", "tick": 227}, 500.0, "finished"),  # run.py's end state says so
])
def test_agent_status(status, age, label):
    assert explain.agent_status(status, age)[0] == label


@pytest.mark.parametrize("llm, latest, label, detail", [
    (None, [], "off", "heuristics only"),
    ({"enabled": False}, [], "off", "heuristics only"),
    ({"enabled": True, "model": "gemini-2.5-flash"}, [], "on", "gemini-2.5-flash"),
    ({"enabled": True, "fallback": True, "fallback_reason": "timeout after 5 s"}, [], "fallback", "timeout after 5 s"),
    ({"enabled": True}, [{"source": "heuristic_fallback", "fallback_reason": "quota"}], "fallback", "quota"),
])
def test_llm_status(llm, latest, label, detail):
    assert explain.llm_status(llm, latest) == (label, detail)


def test_markers_show_detections_and_actions_inside_the_trend(state):
    m, a = read_json(state / "metrics.json"), read_json(state / "actions.json")
    marks = charts.markers(m["trend"], a["actions"])
    events = set(zip(marks["tick"], marks["event"]))
    first_fault = next(t["tick"] for t in m["trend"] if t["detected"])
    assert (first_fault, "detected") in events
    for act in a["actions"]:
        if act["executed_tick"] is not None:
            assert (act["executed_tick"], "executed") in events
        if act["status"] in ("rolled_back", "restored"):
            assert (act["ended_tick"], act["status"]) in events
    assert (a["pending"][0]["tick"], "pending_approval") in events


def _imports(path: Path) -> set[str]:
    """Imports that run: those under `if TYPE_CHECKING:` are for type checkers only."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}


def test_the_dashboard_never_reaches_the_executor():
    """dashboard.py and everything it imports from this repository: no executor, agent, worker or decision."""
    seen, todo = set(), ["dashboard"]
    while todo:
        mod = todo.pop()
        if mod in seen or not (ROOT / f"{mod}.py").exists():
            continue
        seen.add(mod)
        todo += _imports(ROOT / f"{mod}.py")
    assert seen == {"dashboard", "dashboard_text", "dashboard_charts", "dashboard_access", "dashboard_gate",
                    "formatting", "state_writer", "safe_json", "command_auth"}
