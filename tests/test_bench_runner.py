"""bench/runner.py: every scenario x seed x policy in worker processes, then the measures per scenario."""
from __future__ import annotations

import pytest

from bench.baselines import POLICIES
from bench.runner import load_dir, pick_quick
from merchant_profiles import DEFAULT_UNIVERSE as U
from scenario import ScenarioError, parse_scenario


def sc(*kinds, ramp=0):
    targets = {"issuer_degradation": {"issuer": "chase", "processor": "atlas"},
               "latency_spike": {"processor": "cobalt"}, "retry_storm": {"merchant": "glowbox"},
               "issuer_outage": {"issuer": "bofa"}}
    faults = [{"kind": k, **targets[k], "severity": 0.5, "ramp_ticks": ramp} for k in kinds]
    return parse_scenario({"phases": [{"name": "p", "ticks": 5, "faults": faults}]}, U)


def test_pick_quick_takes_a_control_and_one_plain_fault_of_three_kinds_by_content():
    scenarios = {"z_ctrl": sc(), "a_ramped_degradation": sc("issuer_degradation", ramp=3), "b_degradation":
                 sc("issuer_degradation"), "c_outage": sc("issuer_outage"), "d_latency": sc("latency_spike"),
                 "e_two": sc("retry_storm", "latency_spike"), "f_storm": sc("retry_storm")}
    assert set(pick_quick(scenarios)) == {"z_ctrl", "b_degradation", "d_latency", "f_storm"}
    only_outages = {"x": sc("issuer_outage"), "y": sc("issuer_outage"), "z": sc("issuer_outage")}
    assert list(pick_quick(only_outages)) == ["x", "y"]                  # nothing fits: the first two


def test_load_dir_reads_every_json_and_refuses_an_empty_folder(tmp_path, tiny_bench):
    assert [p.rsplit("/", 1)[1] for p in load_dir(tiny_bench[0])] == ["a_control.json", "b_degradation.json"]
    with pytest.raises(ScenarioError, match="no scenario files"):
        load_dir(tmp_path)


def test_run_benchmark_runs_every_policy_on_every_scenario_and_measures_them(tiny_bench):
    folder, bench = tiny_bench
    assert bench["runs"] == 2 * len(POLICIES) and bench["approval_violations_total"] == 0
    kinds = {r["file"]: r["kind"] for r in bench["scenarios"].values()}
    assert kinds == {"a_control.json": "control", "b_degradation.json": "single"}
    for r in bench["scenarios"].values():
        assert set(r["policies"]) == set(POLICIES) and r["seeds"] == [3]
    fault = next(r for r in bench["scenarios"].values() if r["kind"] == "single")
    assert fault["faults"][0]["kind"] == "issuer_degradation" and fault["faults"][0]["start_tick"] == 20
    # the path oracle acts the tick the fault starts; doing nothing never mitigates
    assert fault["policies"]["oracle_path"]["time_to_mitigate"]["mean"] == 0.0
    assert fault["policies"]["none"]["time_to_mitigate"] == {"na": "never acts"}
    # the agent's detection lag is recorded per fault and seed, with the fault's traffic share
    (lag,) = bench["detection_lags"]
    assert lag[0] == "b_degradation.json" and lag[1] == 20 and 0 < lag[3] < 1
