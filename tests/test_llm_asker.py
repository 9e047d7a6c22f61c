"""llm_asker.py: a loop that never waits for Gemini: the worker's background questions (late answers merged if
their picture still holds, else dropped as stale), notes and the summary behind them, run.py's bound on waiting,
and, through the real SDK against local stubs, a run.py and a worker whose every call hangs. The lane itself is in
test_llm_call.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import llm_reasoner as L
from reasoner import Cause, Hypothesis, heuristic_hypotheses, make_target
from simulator import Fault, FaultKind
from state_writer import read_json
from tests.helpers import snapshot_after
from tests.test_llm_reasoner import good_text, reply

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("gemini_sandbox")


class HeldClient:
    """A client whose every request waits for `release` (or `delay_s`), then answers good_text()."""

    def __init__(self, delay_s: float | None = None):
        self.release, self.delay_s = threading.Event(), delay_s
        self.requests = 0
        self.models = self

    def generate_content(self, model, contents, config):
        self.requests += 1
        if self.delay_s is not None:
            time.sleep(self.delay_s)
        else:
            self.release.wait()
        return reply(good_text())


@pytest.fixture(scope="module")
def snap():
    s, _, _ = snapshot_after([Fault(FaultKind.ISSUER_DEGRADATION, 0.6, issuer="chase", processor="atlas")])
    return s


def pictures(n):
    """n heuristic lists with n different signatures."""
    names = ["globemart", "skyways", "pixelforge", "streamly", "dashbite", "urbanwear"]
    return [[Hypothesis(Cause.RETRY_STORM, make_target(merchant=m), 0.7)] for m in names[:n]]


def reasoner(client, **kw):
    settings = L.LLMSettings(**{"retry_backoff_s": 0.0, "calls_per_minute": 100, **kw.pop("settings", {})})
    return L.GeminiReasoner(client, settings, lambda t: time.monotonic(), sleep=lambda s: None, **kw)


def settle(g, timeout=5.0):
    end = time.monotonic() + timeout
    while g.lane.in_flight is not None and time.monotonic() < end:
        time.sleep(0.01)


# -- the worker's way: never wait --------------------------------------------------------------------------

def test_a_background_question_never_holds_up_a_tick_and_its_answer_is_merged_when_it_comes(snap):
    client = HeldClient()
    g = reasoner(client, background=True)
    heur = heuristic_hypotheses(snap)
    started = time.perf_counter()
    first = g.merge(snap, heur)
    again = g.merge(snap, heur)
    assert time.perf_counter() - started < 0.5                           # the request is still held
    assert first.llm_status["reason"] == again.llm_status["reason"] == "awaiting_reply"
    assert all(h.source.value == "heuristic_fallback" for h in first.hypotheses) and client.requests == 1
    client.release.set()
    settle(g)
    merged = g.merge(snap, heur)                                          # the first tick after it arrived
    assert merged.llm_status["state"] == "answered" and merged.hypotheses[0].source.value == "gemini"
    assert merged.llm_status["accounting"]["stale_dropped"] == 0


def test_an_answer_to_a_picture_that_has_changed_is_dropped_as_stale_and_counted(snap):
    client = HeldClient()
    g = reasoner(client, background=True)
    a, b = pictures(2)
    assert g.merge(snap, a).llm_status["reason"] == "awaiting_reply"
    client.release.set()
    settle(g)
    r = g.merge(snap, b)                                                  # the picture moved on meanwhile
    acct = r.llm_status["accounting"]
    assert acct["stale_dropped"] == 1 and acct["answered"] == 0 and r.llm_status["reason"] == "awaiting_reply"
    settle(g)
    assert g.merge(snap, b).llm_status["state"] == "answered"             # b was asked next, and merged


def test_a_request_past_its_deadline_is_abandoned_and_counted_and_nothing_piles_up(snap):
    client = HeldClient()
    g = reasoner(client, background=True, settings={"deadline_s": 0.1, "retry_failed_after_s": 0})
    pics = pictures(4)
    g.merge(snap, pics[0])
    time.sleep(0.2)
    reasons = [g.merge(snap, p).llm_status["reason"] for p in pics[1:]]
    assert g.acct.abandoned == 1 and g.acct.failures["timeout"] == 1
    assert reasons == ["awaiting_reply"] * 3 and client.requests == 1      # the hung request still holds the lane
    assert sum(t.name == "gemini-request" for t in threading.enumerate()) <= 1
    client.release.set()


def test_notes_and_the_summary_wait_for_the_lane_in_the_background(snap):
    client = HeldClient(delay_s=0.05)
    client.generate_content = lambda model, contents, config: reply(json.dumps({
        "what": "a degradation", "where": "issuer chase on processor atlas", "since": "12:05", "size": "2,000",
        "recommendation": "the agent recommends reroute", "why": "peers healthy"}))
    g = reasoner(client, background=True)
    facts = {"target": {"issuer": "chase", "processor": "atlas"}, "recommendation": {"action": "reroute"}}
    assert g.note("I001:early", facts) == (None, False)
    settle(g)
    g.merge(snap, [])                                                    # a tick: the answer is collected
    note, settled = g.note("I001:early", facts)
    assert settled and note["source"] == "gemini" and "reroute" in note["text"]


# -- run.py's way: wait, within a bound ---------------------------------------------------------------------

@pytest.mark.slow     # waits on the lane in wall time
def test_run_py_waits_for_answers_but_never_past_its_bound(snap):
    client = HeldClient(delay_s=0.3)
    g = reasoner(client, settings={"deadline_s": 1.0, "wait_bound_s": 1.0})
    started = time.perf_counter()
    reasons = [g.merge(snap, p).llm_status.get("reason") for p in pictures(6)]
    assert time.perf_counter() - started < 1.5
    # three answers; the fourth gets only what is left of the bound and times out; then heuristics, not waiting
    assert reasons == [None] * 3 + ["timeout"] + ["time_bound"] * 2
    assert g.acct.wait_bound_spent_tick is not None and client.requests == 4


# -- through the real SDK against local stubs ----------------------------------------------------------------


def _demo(tmp_path, name, env, extra=()):
    started = time.perf_counter()
    p = subprocess.run([sys.executable, "run.py", "--quiet", "--state-dir", str(tmp_path / name), "--report",
                        str(tmp_path / f"{name}.json"), *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    return time.perf_counter() - started, json.loads((tmp_path / f"{name}.json").read_text()), p.stdout


@pytest.mark.slow
def test_run_py_against_an_endpoint_that_hangs_30_s_ends_within_its_heuristics_time_plus_the_bound(tmp_path):
    from gemini_contract_stub import ContractStub
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI", "GOOGLE"))}
    heuristics_s, off, _ = _demo(tmp_path, "off", env, ["--no-llm"])
    with ContractStub("hang", slow_s=30.0) as stub:
        env_on = {**env, "GEMINI_API_KEY": "AIza-hang", "GOOGLE_GEMINI_BASE_URL": stub.url}
        took, on, out = _demo(tmp_path, "on", env_on)
    acct = on["llm"]["accounting"]
    assert stub.requests and took <= heuristics_s + acct["wait_bound_s"] + 10      # slack for a loaded machine
    assert acct["abandoned"] >= 1 and acct["latency_ms"]["waited"] <= 1000 * (acct["wait_bound_s"] + 1)
    assert on["actions"] == off["actions"]                             # nothing executes differently
    print(f"\nrun.py heuristics only {heuristics_s:.1f} s; every call hanging 30 s {took:.1f} s "
          f"(waited {acct['latency_ms']['waited'] / 1000:.1f} s, {acct['calls']} calls, {acct['abandoned']} abandoned)")


@pytest.mark.slow
def test_the_worker_keeps_its_cadence_while_every_call_hangs_and_stops_at_sigterm(tmp_path):
    from gemini_contract_stub import ContractStub
    scenario = tmp_path / "s.json"
    scenario.write_text(json.dumps({"name": "hang", "seed": 4, "payments_per_tick": 2000, "phases": [
        {"name": "calm", "ticks": 14},
        {"name": "fault", "ticks": 600, "faults": [{"kind": "issuer_degradation", "issuer": "chase",
                                                     "processor": "atlas", "severity": 0.7}]}]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI", "GOOGLE"))}
    with ContractStub("hang", slow_s=30.0) as stub:
        env.update(GEMINI_API_KEY="AIza-worker-hang", GOOGLE_GEMINI_BASE_URL=stub.url)
        state = tmp_path / "state"
        p = subprocess.Popen([sys.executable, "worker.py", "--state-dir", str(state), "--tick-seconds", "1",
                              "--tps", "2000", "--scenario", str(scenario)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            tick = lambda: (read_json(state / "status.json") or {}).get("tick", -1)   # noqa: E731
            end = time.monotonic() + 60
            while tick() < 16 and time.monotonic() < end:       # warm-up, then the fault: Gemini is asked
                time.sleep(0.2)
            t0, k0 = time.monotonic(), tick()
            time.sleep(15)
            rate = (tick() - k0) / (time.monotonic() - t0)
            sent = time.monotonic()
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=5) == 0 and time.monotonic() - sent < 5
        finally:
            if p.poll() is None:
                p.kill()
    llm = read_json(state / "hypotheses.json")["llm"]
    acct = llm["accounting"]
    assert stub.requests and rate >= 0.9, rate
    assert acct["failures"].get("timeout", 0) >= 1 and acct["fallbacks"].get("awaiting_reply", 0) >= 1
    assert read_json(state / "status.json")["state"] == "stopped"
    print(f"\nworker: {rate:.2f} ticks/s at 1 s ticks while every call hangs; {acct['calls']} calls, "
          f"failures {acct['failures']}, {acct['abandoned']} abandoned; fallbacks {acct['fallbacks']}")
