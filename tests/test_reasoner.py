"""reasoner.py: the heuristics (a table, one row per detector case), false alarms on calm traffic, merge_hypotheses."""
import pytest

from reasoner import Cause, Hypothesis, Source, heuristic_hypotheses, make_target, merge_hypotheses
from run import run_scenario
from simulator import Fault, FaultKind
from tests.helpers import scenario, snapshot_after


@pytest.mark.parametrize("fault, cause, target", [
    (Fault(FaultKind.ISSUER_DEGRADATION, 0.6, issuer="bofa", processor="atlas"), Cause.ISSUER_DEGRADATION,
     {"issuer": "bofa", "processor": "atlas"}),
    (Fault(FaultKind.LATENCY_SPIKE, 0.6, processor="beacon"), Cause.LATENCY_SPIKE, {"processor": "beacon"}),
    (Fault(FaultKind.RETRY_STORM, 0.8, merchant="dashbite"), Cause.RETRY_STORM, {"merchant": "dashbite"}),
])
def test_each_fault_is_named_with_its_target(fault, cause, target):
    snap, _, _ = snapshot_after([fault], fault_ticks=6)
    top = heuristic_hypotheses(snap)
    assert top and top[0].cause is cause and top[0].target_dict == target
    assert 0 <= top[0].confidence <= 1 and top[0].evidence


def test_outage_is_told_from_a_path_problem_when_peers_are_measured():
    # capital_one splits 85/7.5/7.5 over the processors: at 6000 payments/tick every path is measured
    snap, _, _ = snapshot_after([Fault(FaultKind.ISSUER_OUTAGE, 0.8, issuer="capital_one")], payments_per_tick=6000)
    causes = {(h.cause, tuple(h.target)) for h in heuristic_hypotheses(snap)}
    assert (Cause.ISSUER_OUTAGE, (("issuer", "capital_one"),)) in causes
    assert not any(c is Cause.ISSUER_DEGRADATION for c, _ in causes)


def test_latency_spike_explains_away_issuer_drops_on_that_processor():
    snap, _, _ = snapshot_after([Fault(FaultKind.LATENCY_SPIKE, 0.9, processor="atlas")])
    hs = heuristic_hypotheses(snap)
    assert hs[0].cause is Cause.LATENCY_SPIKE
    assert not any(h.cause is Cause.ISSUER_DEGRADATION and h.target_dict.get("processor") == "atlas" for h in hs)


def test_thin_slices_trigger_nothing():
    # 150 payments per tick: every issuer x processor slice stays under the minimum sample count
    snap, _, _ = snapshot_after([Fault(FaultKind.ISSUER_DEGRADATION, 0.9, issuer="revolut", processor="beacon")],
                                payments_per_tick=150)
    assert heuristic_hypotheses(snap) == []


# one seed per traffic level in the inner loop; the other five seeds (false alarms over many runs) are slow
@pytest.mark.parametrize("seed", [0] + [pytest.param(s, marks=pytest.mark.slow) for s in range(1, 6)])
@pytest.mark.parametrize("ppt", [300, 2000, 8000])
def test_no_action_on_fault_free_traffic(seed, ppt):
    res = run_scenario(scenario(("calm", 150, []), seed=seed, payments_per_tick=ppt), seed)
    assert res.agent.executor.actions == {}
    assert res.agent.first_seen == {}
    assert res.agent.last.decision.is_no_op and "no anomaly" in res.agent.last.decision.reason


# -- the heuristics table: one row per detector case -------------------------------------------------------------

def agent_snapshot(faults=(), calm=40, fault_ticks=6, after=0, seed=4, ppt=2000, cusum=True):
    """A Snapshot read the way the agent reads traffic (its observer settings, so with the per-path CUSUM unless
    cusum is False): `calm` ticks, then `fault_ticks` with the faults, then `after` calm ticks again."""
    from agent import AgentSettings
    from control_plane import ControlPlane
    from merchant_profiles import DEFAULT_UNIVERSE
    from observer import Observer, ObserverSettings
    from simulator import Simulator
    settings = AgentSettings().observer if cusum else ObserverSettings()
    sim, obs = Simulator(DEFAULT_UNIVERSE, seed=seed, payments_per_tick=ppt), Observer(DEFAULT_UNIVERSE, settings)
    snap = None
    for t in range(calm + fault_ticks + after):
        snap = obs.observe(sim.step(ControlPlane(), tuple(faults) if calm <= t < calm + fault_ticks else ()))
    return snap


DEG, OUT, LAT, STORM = (FaultKind.ISSUER_DEGRADATION, FaultKind.ISSUER_OUTAGE, FaultKind.LATENCY_SPIKE,
                        FaultKind.RETRY_STORM)
I_DEG, I_OUT, LATENCY, R_STORM = Cause.ISSUER_DEGRADATION, Cause.ISSUER_OUTAGE, Cause.LATENCY_SPIKE, Cause.RETRY_STORM


@pytest.mark.parametrize("faults, world, expected, sequential", [
    # detect_issuer_paths: chase failing on atlas only (its primary path, ~450 first attempts a tick) while beacon
    # and cobalt stay healthy -> issuer_degradation on that one path, nothing issuer-wide
    pytest.param([Fault(DEG, 0.6, issuer="chase", processor="atlas")], {},
                 {(I_DEG, (("issuer", "chase"), ("processor", "atlas")))}, False, id="degradation-one-path"),
    # detect_issuer_paths: capital_one failing on every processor, each path measured (6000 payments a tick)
    # -> issuer_outage on the issuer, and no per-path degradation beside it
    pytest.param([Fault(OUT, 0.8, issuer="capital_one")], {"ppt": 6000},
                 {(I_OUT, (("issuer", "capital_one"),))}, False, id="outage-every-path"),
    # detect_latency: cobalt's p95 up ~3x -> latency_spike on the processor; its issuers' drops (timeouts)
    # are explained away, not named as degradations
    pytest.param([Fault(LAT, 0.8, processor="cobalt")], {}, {(LATENCY, (("processor", "cobalt"),))}, False,
                 id="latency-spike"),
    # detect_storms: globemart retrying hard with its first-attempt rate flat -> retry_storm on the merchant
    pytest.param([Fault(STORM, 0.8, merchant="globemart")], {}, {(R_STORM, (("merchant", "globemart"),))}, False,
                 id="retry-storm"),
    # detect_issuer_paths via thin_path_fails: revolut on beacon has ~100 first attempts a window, under the 200
    # one window needs; its CUSUM (sequential.py) crosses the threshold -> issuer_degradation marked sequential
    pytest.param([Fault(DEG, 0.9, issuer="revolut", processor="beacon")], {},
                 {(I_DEG, (("issuer", "revolut"), ("processor", "beacon")))}, True, id="thin-path-cusum"),
    # the same thin path without the CUSUM: too thin for one window, so nothing (the row above needs the CUSUM)
    pytest.param([Fault(DEG, 0.9, issuer="revolut", processor="beacon")], {"cusum": False}, set(), False,
                 id="thin-path-no-cusum"),
    # no fault: calm traffic names nothing
    pytest.param([], {}, set(), False, id="no-fault"),
    # below threshold: a 4% failure share on chase/atlas drops its first-attempt rate ~3.5 pp, under min_drop (5 pp)
    pytest.param([Fault(DEG, 0.04, issuer="chase", processor="atlas")], {}, set(), False, id="degradation-below-min-drop"),
    # below threshold: latency x1.15 on cobalt is under latency_ratio (x1.5)
    pytest.param([Fault(LAT, 0.05, processor="cobalt")], {}, set(), False, id="latency-below-ratio"),
    # warm-up: a hard fault after 4 ticks, before min_baseline_ticks (12) of baseline -> nothing yet
    pytest.param([Fault(DEG, 0.9, issuer="chase", processor="atlas")], {"calm": 4}, set(), False, id="warm-up"),
    # a storm before min_storm_baseline_ticks (30): the baseline still holds the start, before retries came back
    pytest.param([Fault(STORM, 0.8, merchant="dashbite")], {"calm": 25}, set(), False, id="storm-short-baseline"),
    # a fault that has passed: chase/atlas healthy again for 8 ticks -> the window no longer names it
    pytest.param([Fault(DEG, 0.6, issuer="chase", processor="atlas")], {"fault_ticks": 10, "after": 8}, set(), False,
                 id="fault-passed"),
    # ... and healthy again in the latest tick only: the window still remembers the drop, the latest tick overrules it
    pytest.param([Fault(DEG, 0.6, issuer="chase", processor="atlas")], {"fault_ticks": 10, "after": 1}, set(), False,
                 id="fault-passed-latest-tick"),
])
def test_heuristics_table(faults, world, expected, sequential):
    snap = agent_snapshot(faults, **world)
    hs = heuristic_hypotheses(snap)
    assert {(h.cause, h.target) for h in hs} == expected
    assert hs == sorted(hs, key=lambda h: -h.confidence)                  # strongest first
    for h in hs:
        assert 0 < h.confidence <= 0.99 and h.evidence
        assert ("sequential evidence" in " ".join(h.evidence)) is sequential


# -- merge_hypotheses (from test_llm_reasoner.py): heuristics always stay; the LLM confirms or stands beside -----

H = Hypothesis(Cause.ISSUER_DEGRADATION, make_target(issuer="chase", processor="atlas"), 0.7, ("heuristic evidence",))
G_HI = Hypothesis(Cause.ISSUER_DEGRADATION, H.target, 0.95, ("llm says so",), Source.GEMINI)
G_LO = Hypothesis(Cause.ISSUER_DEGRADATION, H.target, 0.3, (), Source.GEMINI)
G_OTHER = Hypothesis(Cause.LATENCY_SPIKE, make_target(processor="cobalt"), 0.9, (), Source.GEMINI)


@pytest.mark.parametrize("llm, reason, expect", [
    (None, "timeout", [("heuristic_fallback", 0.7, True, "timeout")]),       # unavailable: fallback, with why
    ((), None, [("heuristic", 0.7, True, None)]),                             # answered, named nothing
    ((G_HI,), None, [("gemini", 0.7, True, None)]),                           # agreement never raises confidence
    ((G_LO,), None, [("gemini", 0.7, True, None)]),                           # nor can doubt veto an action
    ((G_OTHER,), None, [("heuristic", 0.7, True, None), ("gemini", 0.9, False, None)]),  # LLM only: unsupported
])
def test_merge_hypotheses(llm, reason, expect):
    out = merge_hypotheses([H], llm, reason)
    assert [(h.source.value, round(h.confidence, 3), h.supported_by_heuristic, h.fallback_reason) for h in out] == expect


def test_confirmed_hypothesis_keeps_both_confidences_and_evidence():
    h = merge_hypotheses([H], (G_HI,))[0]
    assert h.to_dict()["llm_confidence"] == 0.95 and h.to_dict()["confidence"] == 0.7
    assert h.evidence == ("heuristic evidence", "gemini: llm says so")
