"""bench/measures.py: what traces say about detection, mitigation, harm and safety, with bootstrap intervals."""
from __future__ import annotations

import numpy as np
import pytest

from bench.measures import (
    MEASURES,
    detection,
    fault_mask,
    na_reason,
    run_measures,
    scenario_kind,
    share_draws,
    summarise,
)
from bench.trace import run_policy
from merchant_profiles import DEFAULT_UNIVERSE as U
from scenario import parse_scenario

DEG = {"kind": "issuer_degradation", "issuer": "chase", "processor": "atlas", "severity": 0.9}
STORM = {"kind": "retry_storm", "merchant": "glowbox", "severity": 0.8}
KEY_DEG = ("issuer_degradation", (("issuer", "chase"), ("processor", "atlas")))
KEY_STORM = ("retry_storm", (("merchant", "glowbox"),))


def scenario(*faults, ramp=0):
    phases = [{"name": "calm", "ticks": 20},
              {"name": "fault", "ticks": 12, "faults": [{**f, "ramp_ticks": ramp} for f in faults]},
              {"name": "after", "ticks": 8}]
    return parse_scenario({"name": "t", "seed": 3, "payments_per_tick": 600, "phases": phases}, U)


def test_fault_mask_and_kind():
    s = scenario(DEG)
    assert fault_mask(s).tolist() == [False] * 20 + [True] * 12 + [False] * 8
    assert (scenario_kind(scenario()), scenario_kind(s), scenario_kind(scenario(DEG, STORM))) == \
        ("control", "single", "compound")


@pytest.mark.parametrize("hyps, expect", [
    # found 2 ticks in, exactly right: precision, recall, localisation and cause all 1
    ({KEY_DEG: [22, 23]}, {"precision": 1.0, "recall": 1.0, "time_to_detect": 2.0, "localisation": 1.0,
                           "cause_accuracy": 1.0}),
    # a wrong cause on the right entity: localised, not detected, cause wrong
    ({("issuer_outage", (("issuer", "chase"),)): [24]}, {"precision": 0.0, "recall": 0.0, "time_to_detect": None,
                                                          "localisation": 0.0, "cause_accuracy": None}),
    # a hypothesis long after the fault (beyond the grace ticks) is a false one, and the fault was missed
    ({KEY_DEG: [39]}, {"precision": 0.0, "recall": 0.0, "localisation": None}),
    # inside the grace ticks after the fault's end still counts
    ({KEY_DEG: [33]}, {"precision": 1.0, "recall": 1.0, "time_to_detect": 13.0}),
    # nothing raised: precision is undefined, recall 0
    ({}, {"precision": None, "recall": 0.0}),
])
def test_detection_table(hyps, expect):
    got = detection(hyps, scenario(DEG), grace=3)
    assert {k: got[k] for k in expect} == expect


def test_detect_lag_counts_from_full_strength():
    got = detection({KEY_DEG: [25]}, scenario(DEG, ramp=4), grace=3)
    assert got["time_to_detect"] == 5.0 and got["detect_lag_full_strength"] == 2.0     # full strength at tick 23


def test_summarise_gives_a_mean_inside_its_interval_and_drops_none():
    s = summarise([1.0, 2.0, None, 3.0, 4.0])
    assert s["n"] == 4 and s["mean"] == 2.5 and 1.0 <= s["lo"] <= 2.5 <= s["hi"] <= 4.0
    assert summarise([None, None]) == {} and summarise([2.0, 2.0]) == {"mean": 2.0, "lo": 2.0, "hi": 2.0, "n": 2}


def test_share_is_a_ratio_of_means_and_na_when_there_is_nothing_to_recover():
    value, draws = share_draws(np.array([0.01, 0.03]), np.array([0.04, 0.04]))
    assert value == pytest.approx(0.5) and draws.shape[0] > 100 and np.nanmin(draws) >= 0.25 - 1e-9
    assert share_draws(np.array([0.001]), np.array([0.001])) == (None, None)     # under 0.25 pp: n/a


@pytest.mark.parametrize("measure, policy, faults, reason", [
    ("recall", "static", [DEG], "does not form hypotheses"),
    ("time_to_mitigate", "agent", [], "no fault"),
    ("time_to_mitigate", "none", [DEG], "never acts"),
    ("time_to_mitigate", "agent", [DEG], "never addressed"),
    ("precision", "agent", [], "no hypotheses"),
])
def test_na_reasons(measure, policy, faults, reason):
    assert na_reason(measure, policy, scenario(*faults)) == reason


def test_run_measures_on_real_traces_of_the_path_oracle_against_none():
    s = scenario(DEG)
    none, oracle = run_policy(s, 3, "none"), run_policy(s, 3, "oracle_path")
    m = run_measures(oracle, none, s, grace=3)
    assert set(m) == set(MEASURES)
    assert m["time_to_mitigate"] == 0.0 and m["approvals_saved"] > 0 and m["approved_amount_saved"] > 0
    assert m["recall"] is None                                  # the oracle forms no hypotheses
    baseline = run_measures(none, none, s, grace=3)
    assert baseline["approvals_saved"] == 0.0 and baseline["fault_success_rate"] < m["fault_success_rate"]
