"""One benchmark run: a policy on a scenario and seed, and the trace it leaves for the measures.

run_policy drives the simulator with the policy's control plane, injects the scenario's
faults, and records per arrival tick: payments, approvals (on any attempt), approved
amount, attempts, fees, first-attempt approvals; the latency histogram; whether the
control plane in use addressed each fault (ground truth, from the schedule); the
hypotheses raised; and for the agent its actions, approval requests, rollbacks and
approval violations.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from actions import Status
from agent import Agent, AgentSettings
from bench.baselines import SuccessRateRouter, make_policy
from control_plane import ControlPlane, apply_action
from guardrails import approval_reasons
from merchant_profiles import DEFAULT_UNIVERSE, Universe
from scenario import Scenario
from simulator import Fault, FaultKind, Simulator
from slice_stats import LAT_EDGES


def route_shares(control: ControlPlane, u: Universe) -> np.ndarray:
    """[issuer, processor] expected share of first attempts each path gets under a control plane."""
    split = np.diff(u.route_cdf if control.route_split is None else control.route_split.cdf, axis=1, prepend=0.0)
    for ov in control.route_overrides:
        to = u.index("processor", ov.to_processor)
        rows = [u.index("issuer", ov.issuer)] if ov.issuer else range(len(u.issuers))
        srcs = [u.index("processor", ov.from_processor)] if ov.from_processor else [q for q in range(split.shape[1]) if q != to]
        share = (1 - ov.holdout) * (u.merchant_share[u.index("merchant", ov.merchant)] if ov.merchant else 1.0)
        for i in rows:
            for q in srcs:
                moved = split[i, q] * share
                split[i, q] -= moved
                split[i, to] += moved
    return split


def addresses(fault: Fault, control: ControlPlane, u: Universe) -> bool:
    """Does this control plane address the fault? Half or more of the bad path's default traffic moved off it;
    the storming merchant capped at its own normal attempts or its retries stopped; the issuer's retries stopped."""
    if fault.kind is FaultKind.RETRY_STORM:
        policy = control.retry_policy(fault.merchant)
        normal = u.merchants[u.index("merchant", fault.merchant)].max_attempts
        return (policy is not None and policy.max_attempts <= normal) or any(
            s.merchant == fault.merchant and s.issuer is None for s in control.suppressions)
    if fault.kind is FaultKind.ISSUER_OUTAGE:
        return any(s.issuer == fault.issuer and s.merchant is None for s in control.suppressions)
    now, default = route_shares(control, u), u.route_share
    p = u.index("processor", fault.processor)
    if fault.kind is FaultKind.ISSUER_DEGRADATION:
        i = u.index("issuer", fault.issuer)
        return bool(now[i, p] <= 0.5 * default[i, p])
    return bool(u.issuer_share @ now[:, p] <= 0.5 * (u.issuer_share @ default[:, p]))


def fault_share(fault: Fault, u: Universe) -> float:
    """The share of first attempts a fault touches under the default routing (its blast radius)."""
    if fault.kind is FaultKind.RETRY_STORM:
        return float(u.merchant_share[u.index("merchant", fault.merchant)])
    if fault.kind is FaultKind.ISSUER_OUTAGE:
        return float(u.issuer_share[u.index("issuer", fault.issuer)])
    p = u.index("processor", fault.processor)
    if fault.kind is FaultKind.ISSUER_DEGRADATION:
        i = u.index("issuer", fault.issuer)
        return float(u.issuer_share[i] * u.route_share[i, p])
    return float(u.issuer_share @ u.route_share[:, p])


def effect(rec) -> ControlPlane:
    """The control plane an agent action alone would make."""
    return apply_action(ControlPlane(), rec.action, rec.target, rec.params, rec.id)


@dataclass
class Trace:
    """What one (scenario, seed, policy) run leaves for the measures; plain values, picklable.
    Payment columns are indexed by the tick a payment arrived, whatever tick its attempts ran."""
    scenario: str
    seed: int
    policy: str
    payments: np.ndarray
    approved: np.ndarray       # payments approved on any attempt
    amount: np.ndarray         # their approved amount
    attempts: np.ndarray
    fees: np.ndarray
    first_ok: np.ndarray       # payments approved on their first attempt
    latency_hist: np.ndarray   # every attempt, in the observer's log bins
    mitigated: np.ndarray      # [fault, tick] the control plane used at that tick addresses the fault
    hypotheses: dict = field(default_factory=dict)   # (cause, target) -> ticks it was raised
    actions: int = 0
    approval_requests: int = 0
    rollbacks: list | None = None                    # one bool per rollback: spurious?
    violations: int | None = None
    seconds: float = 0.0


def run_policy(scenario: Scenario, seed: int, policy: str, universe: Universe = DEFAULT_UNIVERSE,
               settings: AgentSettings = AgentSettings()) -> Trace:
    started = time.perf_counter()
    sim = Simulator(universe, seed, scenario.payments_per_tick, scenario.tick_seconds, scenario.start_hour)
    pol = make_policy(policy, universe, settings, scenario)
    T, F = scenario.total_ticks, len(scenario.faults)
    starts = np.zeros(T + 1, dtype=np.int64)
    cols = np.zeros((6, T))
    hist = np.zeros(len(LAT_EDGES) - 1, dtype=np.int64)
    mitigated = np.zeros((F, T), dtype=bool)
    hyps: dict = {}
    for t in range(T):
        control = pol.control
        for k, f in enumerate(scenario.faults):
            mitigated[k, t] = f.start_tick <= t < f.end_tick and addresses(f.fault, control, universe)
        batch = sim.step(control, scenario.faults_at(t))
        starts[t + 1] = starts[t] + batch.new_payments
        arrival = np.searchsorted(starts[:t + 2], batch.payment_id, side="right") - 1
        ok = batch.approved
        cols[0, t] = batch.new_payments
        cols[1] += np.bincount(arrival[ok], minlength=T)
        cols[2] += np.bincount(arrival[ok], weights=batch.amount[ok], minlength=T)
        cols[3] += np.bincount(arrival, minlength=T)
        cols[4] += np.bincount(arrival, weights=batch.fee, minlength=T)
        cols[5, t] = np.count_nonzero(ok & (batch.attempt == 1))
        lb = np.clip(np.searchsorted(LAT_EDGES, batch.latency_ms, side="right") - 1, 0, len(hist) - 1)
        hist += np.bincount(lb, minlength=len(hist))
        for h in pol.step(batch).hypotheses:
            hyps.setdefault(h.key, []).append(t)
    trace = Trace(scenario.name, seed, policy, *cols, hist, mitigated, hyps)
    if pol.controller is not None:
        trace.actions = len(pol.controller.changes)
        trace.rollbacks = None if isinstance(pol.controller, SuccessRateRouter) else []
    else:
        records = list(pol.executor.actions.values())
        executed = [a for a in records if a.executed_tick is not None]
        trace.actions = len(executed)
        trace.approval_requests = sum(a.requires_human_approval for a in records)
        trace.rollbacks = [any(f.start_tick <= a.ended_tick < f.end_tick and addresses(f.fault, effect(a), universe)
                               for f in scenario.faults)
                           for a in records if a.status is Status.ROLLED_BACK]
        trace.violations = sum(1 for a in executed if _needed_approval(pol, a) and not _approved(a))
    trace.seconds = time.perf_counter() - started
    return trace


def _needed_approval(agent: Agent, rec) -> bool:
    """Re-check the guardrails' gate, independently of the flag the record carries."""
    return rec.requires_human_approval or bool(approval_reasons(rec.action, rec.params, rec.risk, rec.traffic_share,
                                                                agent.executor.config))


def _approved(rec) -> bool:
    return rec.approval is not None and rec.approval.get("params_hash") == rec.params_hash
