"""End to end: the default demo, seeded, in tmp_path; the behaviours must emerge from the traffic."""
import json
import subprocess
import sys

import pytest

import run
from bench.baselines import POLICIES
from state_writer import STATE_FILES, read_json

ROOT = run.DEFAULT_SCENARIO.parent.parent


@pytest.fixture(scope="module")
def demo(demo_run):
    """The session's demo run (conftest.py): `run.py --quiet --no-llm` into a temporary folder."""
    return demo_run[:2]


def test_report_has_the_documented_shape(demo):
    _, r = demo
    assert {"schema_version", "scenario", "seed", "policy", "universe", "phases", "faults", "hypotheses", "actions",
            "learning", "counterfactual"} <= set(r)
    assert set(r["universe"]) == {"issuers", "processors", "merchants"}
    assert {"name", "start_tick", "end_tick", "payments", "attempts", "success_rate", "first_attempt_success_rate",
            "attempts_per_payment", "p95_latency_ms", "cost_per_approved", "approved_amount"} <= set(r["phases"][0])
    assert {"id", "tick", "action", "target", "params", "risk", "requires_human_approval", "status", "ended_tick",
            "outcome", "explanation"} <= set(r["actions"][0])
    assert {"kind", "target", "severity", "start_tick", "end_tick"} == set(r["faults"][0])
    assert {"tick", "cause", "target", "confidence", "source"} == set(r["hypotheses"][0])


def test_every_demo_behaviour_emerges(demo):
    _, r = demo
    acts = r["actions"]
    def find(**kw):
        return [a for a in acts if all((a[k] == v) if not callable(v) else v(a[k]) for k, v in kw.items())]
    # a reroute that brings an issuer back, then is restored when the old path heals
    assert find(action="reroute", target={"issuer": "chase", "processor": "atlas"}, status="restored", outcome="helped")
    # a reroute during an issuer-wide outage, rolled back because it did not help
    assert find(action="reroute", target=lambda t: t.get("issuer") == "barclays", status="rolled_back")
    # ... and the new path's own numbers show the agent what it could not see before: an issuer-wide outage
    assert any(h["cause"] == "issuer_outage" and h["target"] == {"issuer": "barclays"} for h in r["hypotheses"])
    # a retry storm tightened automatically on a small merchant, and held for a human on a large one
    assert find(action="retry_policy", status="executed", requires_human_approval=False, outcome="helped")
    assert find(status="pending_approval", requires_human_approval=True)
    # traffic moved off a processor whose latency spiked
    assert find(action="reroute", target={"processor": "cobalt"}, outcome="helped")
    # and the agent did better than the same traffic without it
    assert r["counterfactual"]["approvals_saved"] > 0 and r["counterfactual"]["approved_amount_saved"] > 0
    degr = next(p for p in r["phases"] if p["name"] == "issuer degradation")
    none = next(p for p in r["counterfactual"]["phases"] if p["name"] == "issuer degradation")
    assert degr["first_attempt_success_rate"] > none["first_attempt_success_rate"] + 0.05


def test_no_op_with_a_reason_is_recorded(demo):
    d, _ = demo
    actions = read_json(d / "state" / "actions.json")
    no_ops = [x for x in actions["decisions"] if x["action"] == "no_op"]
    assert no_ops and all(x["reason"] for x in no_ops)
    assert any("no anomaly" in x["reason"] for x in no_ops)
    # after the rollback it knows that moving barclays cannot help, and says so instead of trying again
    assert any("barclays" in x["reason"] and ("not measured healthier" in x["reason"] or "needed for reroute" in x["reason"])
               for x in no_ops)


def test_state_files_are_complete_and_stamped(demo):
    d, _ = demo
    for name in STATE_FILES:
        doc = read_json(d / "state" / name)
        assert doc is not None and doc["schema_version"] == 1 and doc["generated_at"].endswith("Z"), name
    assert read_json(d / "state" / "status.json")["state"] == "finished"


@pytest.mark.slow     # the demo twice; tests/test_golden.py pins the bytes too
def test_same_seed_same_bytes(tmp_path, demo):
    _, first = demo
    assert run.main(["--quiet", "--no-llm", "--state-dir", str(tmp_path / "s"), "--report", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text()) == first
    for name in STATE_FILES:
        again, before = (tmp_path / "s" / name).read_bytes(), (demo[0] / "state" / name).read_bytes()
        if name == "control_plane.json":       # the audit head is an HMAC under each folder's own secret.key
            again, before = without_audit_head(again), without_audit_head(before)
        assert again == before, name


def without_audit_head(raw: bytes) -> dict:
    doc = json.loads(raw)
    assert len(doc.pop("audit_head")["hash"]) == 64
    return doc


def test_policy_none_only_observes(tmp_path):
    assert run.main(["--quiet", "--policy", "none", "--state-dir", str(tmp_path), "--report", str(tmp_path / "r.json")]) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["actions"] == [] and r["hypotheses"] and "counterfactual" not in r


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "not valid JSON"),
    ('{"phases": [{"name": "x", "ticks": 5, "faults": [{"kind": "meteor", "severity": 1}]}]}', "unknown fault kind 'meteor'"),
    ('{"phases": [{"name": "x", "ticks": -1}]}', "'ticks' must be at least 1"),
])
def test_bad_scenario_exits_2_with_one_line(tmp_path, content, fragment):
    f = tmp_path / "bad.json"
    f.write_text(content)
    p = subprocess.run([sys.executable, "run.py", "--scenario", str(f), "--state-dir", str(tmp_path / "s")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and fragment in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_missing_scenario_file(tmp_path):
    p = subprocess.run([sys.executable, "run.py", "--scenario", str(tmp_path / "nope.json")], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "not found" in p.stderr


def test_every_policy_runs_through_run_py(tmp_path):
    import run
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"name": "t", "seed": 3, "payments_per_tick": 400, "phases": [
        {"name": "a", "ticks": 12, "faults": [{"kind": "latency_spike", "processor": "cobalt", "severity": 0.7, "start": 6}]}]}))
    for policy in POLICIES:
        assert run.main(["--quiet", "--policy", policy, "--scenario", str(path), "--state-dir", str(tmp_path / policy)]) == 0
