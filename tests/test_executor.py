import pytest

from actions import Status
from control_plane import ActionType
from decision import Decision
from executor import ApprovalError, Executor
from merchant_profiles import DEFAULT_UNIVERSE as U
from observer import Observer
from simulator import Fault, FaultKind, Simulator
from tests.helpers import snapshot_after


def reroute(requires=False, to="beacon", issuer="chase", src="atlas", action=ActionType.REROUTE, risk=0.3):
    return Decision(action, "test", (("issuer", issuer), ("processor", src)),
                    (("from_processor", src), ("holdout", 0.1), ("to_processor", to)), "issuer_degradation",
                    0.9, risk, requires)


@pytest.fixture(scope="module")
def snap():
    return snapshot_after()[0]


def test_pending_action_is_never_applied_without_approval(snap):
    ex = Executor(U)
    rec = ex.submit(reroute(requires=True), 10, snap)
    assert rec.status is Status.PENDING_APPROVAL and ex.control.route_overrides == () and not ex.applied
    with pytest.raises(ApprovalError):
        ex._apply(rec, 11)
    assert ex.control.route_overrides == ()


def test_approval_applies_exactly_once_and_is_recorded(snap):
    ex = Executor(U)
    rec = ex.submit(reroute(requires=True), 10, snap)
    assert ex.approve(rec.id, "ops@example", 12, "2026-01-01T00:00:00Z", "wrong-hash").startswith("refused")
    assert ex.approve(rec.id, "ops@example", 12, "2026-01-01T00:00:00Z", rec.params_hash).startswith("approved")
    assert rec.status is Status.EXECUTED and rec.approval["by"] == "ops@example" and len(ex.control.route_overrides) == 1
    assert ex.approve(rec.id, "ops@example", 13, "2026-01-01T00:00:01Z").startswith("refused")
    assert ex.reject(rec.id, "x", 13, "t").startswith("refused")
    with pytest.raises(ApprovalError):
        ex._apply(rec, 14)
    assert len(ex.control.route_overrides) == 1


@pytest.mark.parametrize("decision, why", [
    (reroute(action=ActionType.SUPPRESS), "suppress always needs a human"),      # a type that always needs one
    (reroute(risk=0.9), "risk 0.900 above 0.50"),                                # over the risk threshold
    (Decision(ActionType.RETRY_POLICY, "t", (("merchant", "globemart"),), (("max_attempts", 6),), "retry_storm", 0.9,
              0.2), "allows more than 3 attempts"),                             # too many attempts for automation
])
def test_executor_gate_does_not_trust_the_caller(snap, decision, why):
    events = []
    ex = Executor(U, audit=events.append)
    rec = ex.submit(decision, 5, snap)               # the decision did not flag it: the executor holds it on its own
    assert rec.status is Status.PENDING_APPROVAL and rec.requires_human_approval
    held = [e for e in events if e["event"] == "action_pending_approval"]
    assert len(held) == 1 and why in held[0]["reason"] and "flagged by the decision" not in held[0]["reason"]


@pytest.mark.parametrize("target", [(), (("merchant", "all"),), (("issuer", "nobank"),), (("merchant", ""),)])
def test_empty_all_or_unknown_targets_are_refused(snap, target):
    ex = Executor(U)
    rec = ex.submit(Decision(ActionType.RETRY_POLICY, "t", target, (("max_attempts", 2),), "retry_storm", 0.9, 0.2), 5, snap)
    assert rec.status is Status.REJECTED and rec.end_reason.startswith("refused")
    assert ex.control.retry_policies == () and not ex.applied


def test_reject_is_final(snap):
    ex = Executor(U)
    rec = ex.submit(reroute(requires=True), 10, snap)
    assert ex.reject(rec.id, "ops", 11, "t").startswith("rejected")
    assert rec.status is Status.REJECTED and ex.approve(rec.id, "ops", 12, "t").startswith("refused")


def drive(ex, faults_before, faults_after, ticks, seed=3):
    """40 calm ticks, 6 with `faults_before`, the reroute, then `ticks` ticks with `faults_after`."""
    sim, obs = Simulator(U, seed=seed), Observer(U)
    for t in range(46):
        snap = obs.observe(sim.step(ex.control, faults_before if t >= 40 else ()))
    rec = ex.submit(reroute(), 46, snap)
    for t in range(47, 47 + ticks):
        snap = obs.observe(sim.step(ex.control, faults_after))
        ex.review(t, snap.last)
    return rec


def test_rollback_on_a_real_regression():
    # the new path breaks right after the reroute: the guard window must catch it
    ex = Executor(U)
    rec = drive(ex, (), (Fault(FaultKind.ISSUER_DEGRADATION, 0.5, issuer="chase", processor="beacon"),), 8)
    assert rec.status is Status.ROLLED_BACK and rec.outcome == "hurt" and ex.control.route_overrides == ()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_reroute_that_helps_stays_through_noise(seed):
    fault = (Fault(FaultKind.ISSUER_DEGRADATION, 0.5, issuer="chase", processor="atlas"),)
    ex = Executor(U)
    rec = drive(ex, fault, fault, 36, seed)       # six guard windows while the fault lasts
    assert rec.status is Status.EXECUTED and rec.outcome == "helped"
    assert len(rec.verdicts) == 6 and all(v["outcome"] == "helped" for v in rec.verdicts)


def test_restore_when_the_old_path_heals():
    fault = (Fault(FaultKind.ISSUER_DEGRADATION, 0.5, issuer="chase", processor="atlas"),)
    ex = Executor(U)
    sim, obs = Simulator(U, seed=9), Observer(U)
    for t in range(60):
        snap = obs.observe(sim.step(ex.control, fault if t >= 40 else ()))
    rec = ex.submit(reroute(), 60, snap)
    for t in range(61, 100):
        snap = obs.observe(sim.step(ex.control, fault if t < 72 else ()))
        ex.review(t, snap.last)
    assert rec.status is Status.RESTORED and rec.outcome == "helped" and ex.control.route_overrides == ()


