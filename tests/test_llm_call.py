"""llm_call.py: one Gemini request at a time with a total deadline (the lane), and a transport that ends a
request's reads at its deadline."""
from __future__ import annotations

import threading
import time

import pytest

import llm_reasoner as L
from llm_call import CallLane, DeadlineExceeded
from reasoner import heuristic_hypotheses
from simulator import Fault, FaultKind
from tests.helpers import snapshot_after

pytestmark = pytest.mark.usefixtures("gemini_sandbox")


@pytest.fixture(scope="module")
def snap():
    s, _, _ = snapshot_after([Fault(FaultKind.ISSUER_DEGRADATION, 0.6, issuer="chase", processor="atlas")])
    return s


def test_the_lane_abandons_a_request_at_its_deadline_and_takes_no_other_while_it_runs():
    lane, gate = CallLane(), threading.Event()
    assert lane.start(gate.wait, "first", deadline_s=0.1)
    lane.wait(0.1)
    assert lane.take() is None and lane.overdue()
    done = lane.abandon()
    assert done.abandoned and isinstance(done.error, DeadlineExceeded) and done.tag == "first"
    assert lane.busy and not lane.start(lambda: 1, "second", 1.0)       # one thread in flight, never two
    assert all(t.daemon for t in threading.enumerate() if t.name == "gemini-request")
    gate.set()
    lane.wait(1.0)
    assert not lane.busy and lane.take() is None                       # the abandoned answer is thrown away
    assert lane.start(lambda: 42, "third", 1.0)
    lane.wait(1.0)
    assert lane.take().value == 42


@pytest.mark.slow
def test_an_endpoint_that_trickles_a_byte_every_second_is_cut_at_the_deadline(monkeypatch, snap):
    from gemini_contract_stub import ContractStub
    with ContractStub("trickle", trickle_s=1.0) as stub:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", stub.url)
        g = L.from_env({"GEMINI_API_KEY": "AIza-trickle"}, clock=lambda t: time.monotonic(),
                       settings=L.LLMSettings(timeout_ms=5000, deadline_s=2.0, max_retries=0))
        started = time.perf_counter()
        r = g.merge(snap, heuristic_hypotheses(snap))
        waited = time.perf_counter() - started
        assert r.llm_status["reason"] == "timeout" and 1.8 < waited < 3.0     # 2 s, though each read took 1 s
        end = time.monotonic() + 5
        while g.lane.busy and time.monotonic() < end:                         # the transport ends the request too
            time.sleep(0.05)
        assert not g.lane.busy and time.perf_counter() - started < 4.5
