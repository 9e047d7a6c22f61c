"""Evaluate: the agent against doing nothing, a runbook rule, an auth-rate router and an oracle.

    python evaluate.py [--quick] [--scenarios DIR] [--seeds N] [--out DIR] [--workers N] [--no-bench]
    python evaluate.py bench [--quick]         # the speed benchmark alone

Every policy meets the same simulator seed: the same payments and the same luck per attempt
(common random numbers), so differences between policies are the policies'. The baselines live
here because the oracle reads the fault schedule, which nothing in the agent may do:

- none: the agent observes and reasons but never acts;
- static: a runbook rule with fixed thresholds that is never undone;
- sr_router: per-payment success-rate routing per issuer, after Juspay's decision engine (SR_V3)
  and Hyperswitch's success-based routing (../shared/reference-routers.md, section (b));
- agent: the project's agent, heuristic reasoning;
- oracle: applies the best action the tick a fault starts and undoes it the tick it ends.

Measures are defined in MEASURE_NOTES (written into results/summary.md). What this leaves out:
human approvals (nobody approves in a benchmark run, so actions that need one stay pending), the
LLM reasoner, and capacity limits (the simulator has none).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from actions import Status
from agent import Agent, AgentSettings
from control_plane import ControlPlane, RetryPolicy, RouteOverride, RouteSplit, apply_action
from decline_codes import TECHNICAL_CODES
from guardrails import approval_reasons
from merchant_profiles import DEFAULT_UNIVERSE, Universe
from observer import LAT_EDGES, Observer, Snapshot, histogram_quantiles
from scenario import Scenario, ScenarioError, load_scenario
from simulator import Batch, Fault, FaultKind, Simulator

POLICIES = ("none", "static", "sr_router", "agent", "oracle")
DEFAULT_SCENARIOS = Path(__file__).parent / "scenarios"


# -- baselines ---------------------------------------------------------------------------

class Baseline(Agent):
    """Observes and reasons like policy "none" (so the report and dashboard still work), owns its control plane."""
    name = "baseline"

    def __init__(self, universe: Universe, settings: AgentSettings = AgentSettings()):
        super().__init__(universe, settings, "none")
        self.policy = self.name
        self._control = ControlPlane()
        self.log: list[dict] = []          # every change the policy made: {"tick", "action", "target", "params"}

    @property
    def control(self) -> ControlPlane:
        return self._control

    def step(self, batch: Batch):
        result = super().step(batch)
        self._control = self.next_control(batch, result.snapshot)
        return result

    def next_control(self, batch: Batch, snap: Snapshot) -> ControlPlane:
        return self._control

    @property
    def actions_taken(self) -> int:
        return len(self.log)

    def state_documents(self, status: dict) -> dict[str, dict]:
        docs = super().state_documents(status)
        docs["control_plane.json"]["control_plane"] = self._control.to_dict()
        docs["control_plane.json"]["policy_log"] = self.log[-200:]
        return docs


@dataclass(frozen=True)
class StaticSettings:
    min_first_attempt_rate: float = 0.70   # an issuer under 70% over the last minute pages the runbook (healthy: 0.80-0.92)
    max_attempts_per_payment: float = 1.5  # retries past 1.5 attempts per payment look like a storm (healthy: 1.08-1.32)
    min_payments: int = 200                # a runbook does not fire on a handful of payments
    cap_attempts: int = 2                  # the cap it applies: first attempt plus one retry, never hard declines


class StaticRunbook(Baseline):
    """Fixed thresholds on the last minute; reroute the whole issuer to the cheapest other processor; cap retries. Never undoes."""
    name = "static"

    def __init__(self, universe: Universe, settings: AgentSettings = AgentSettings(), rule: StaticSettings = StaticSettings()):
        super().__init__(universe, settings)
        self.rule = rule
        pct, fixed, per_attempt = universe.fees
        ticket = float(universe.merchant_arrays["mean_ticket"] @ universe.merchant_share)
        self._cost = per_attempt + pct * ticket + fixed        # $ per approved payment at the average ticket

    def next_control(self, batch: Batch, snap: Snapshot) -> ControlPlane:
        u, r, c = self.universe, self.rule, self._control
        done = {o.issuer for o in c.route_overrides}
        issuers = snap.window.table("issuer")
        overrides = list(c.route_overrides)
        for i, name in enumerate(u.issuer_names):
            n = issuers["payments"][i]
            if name in done or n < r.min_payments or issuers["first_approvals"][i] / n >= r.min_first_attempt_rate:
                continue
            primary = u.index("processor", u.issuers[i].primary)
            cheapest = min((q for q in range(len(u.processors)) if q != primary), key=lambda q: self._cost[q])
            overrides.append(RouteOverride(u.processor_names[cheapest], issuer=name, action_id=f"static-{len(self.log) + 1}"))
            self.log.append({"tick": batch.tick, "action": "reroute", "target": {"issuer": name},
                             "params": {"to_processor": u.processor_names[cheapest]}})
        capped = dict(c.retry_policies)
        merchants = snap.window.table("merchant")
        for m, name in enumerate(u.merchant_names):
            n = merchants["payments"][m]
            if name in capped or n < r.min_payments or merchants["attempts"][m] / n <= r.max_attempts_per_payment:
                continue
            capped[name] = RetryPolicy(r.cap_attempts, 1, False)
            self.log.append({"tick": batch.tick, "action": "retry_policy", "target": {"merchant": name},
                             "params": {"max_attempts": r.cap_attempts}})
        return replace(c, route_overrides=tuple(overrides), retry_policies=tuple(sorted(capped.items())))


@dataclass(frozen=True)
class SRRouterSettings:
    """Parameters with their upstream defaults (DE = juspay/decision-engine, HS = hyperswitch)."""
    window: int = 200                  # N last first-attempt outcomes per issuer x processor (HS sends 200; DE default 125)
    hedge: float = 0.05                # share of payments sent uniformly to non-top processors (DE and HS: 5%)
    reset_k: float = 3.0               # a path below p* - 3 sigma has its window rewritten to that floor (DE reset, seeded on)
    var_floor: float = 0.09            # sigma = sqrt(max(p*(1-p*), 0.09) / N) (DE)
    elimination_threshold: float = 0.35  # path health below this is demoted (HS sends 0.35; DE's own default 0.05)
    demote: float = 5.0                # a demoted path's score is divided by 5 (DE)
    penalty: float = 0.95              # health x0.95 per technical failure, /0.95 per approval, capped at 1 (DE)
    soft_reset_minutes: float = 15.0   # a demoted path's health is reset to theta / 0.95^(R-1) after 15 min (DE)
    soft_reset_failures: int = 10      # R: about ten probe failures before it is demoted again (DE)
    retry_next_best: bool = True       # a retry goes to the best processor other than the one that failed (HS fallback list)


class SuccessRateRouter(Baseline):
    """Per-payment auth-rate routing per issuer: sliding windows, hedging, reset floor and elimination.

    State is columnar: win[issuer, processor, N] int8 rings of first-attempt outcomes (initialised to
    ones: DE's optimistic cold start), health[issuer, processor]. Each tick's first attempts update the
    windows; the next tick's split sends 1 - hedge to the top score (ties split evenly) and the hedge
    uniformly to the others. Declines count as failures in the window, as upstream; only technical
    failures (91, 96, timeouts) lower health. A tick is the routing granularity, as for every policy here.
    """
    name = "sr_router"

    def __init__(self, universe: Universe, settings: AgentSettings = AgentSettings(),
                 router: SRRouterSettings = SRRouterSettings(), tick_seconds: float = 10.0):
        super().__init__(universe, settings)
        self.router = router
        nI, nP = len(universe.issuers), len(universe.processors)
        self.win = np.ones((nI, nP, router.window), dtype=np.int8)
        self.ptr = np.zeros((nI, nP), dtype=np.int64)
        self.health = np.ones((nI, nP))
        self.demoted_ticks = np.zeros((nI, nP), dtype=np.int64)
        self.soft_reset_ticks = max(1, round(router.soft_reset_minutes * 60 / tick_seconds))
        self.top = None
        self._control = ControlPlane(route_split=self._split())

    def _update(self, batch: Batch) -> None:
        nI, nP, N = self.win.shape
        first = batch.attempt == 1
        key = batch.issuer[first].astype(np.int64) * nP + batch.processor[first]
        order = np.argsort(key, kind="stable")
        key, ok, code = key[order], batch.approved[first][order], batch.code[first][order]
        counts = np.bincount(key, minlength=nI * nP)
        rank = np.arange(len(key)) - (np.cumsum(counts) - counts)[key]
        keep = rank >= counts[key] - N                      # only the last N outcomes of a path this tick matter
        kept = np.minimum(counts, N)
        rank = rank[keep] - (counts - kept)[key[keep]]
        flat, ptr = self.win.reshape(nI * nP, N), self.ptr.reshape(-1)
        flat[key[keep], (ptr[key[keep]] + rank) % N] = ok[keep]
        ptr[:] = (ptr + kept) % N
        tech = np.isin(code, TECHNICAL_CODES)
        wins = np.bincount(key, weights=ok, minlength=nI * nP).reshape(nI, nP)
        fails = np.bincount(key, weights=tech, minlength=nI * nP).reshape(nI, nP)
        r = self.router
        self.health = np.minimum(1.0, self.health * r.penalty ** (fails - wins))
        down = self.health < r.elimination_threshold
        self.demoted_ticks = np.where(down, self.demoted_ticks + 1, 0)
        soft = self.demoted_ticks >= self.soft_reset_ticks
        self.health[soft] = r.elimination_threshold / r.penalty ** (r.soft_reset_failures - 1)
        self.demoted_ticks[soft] = 0

    def scores(self) -> np.ndarray:
        """[issuer, processor] score: window success rate, floored at p* - k sigma (state is rewritten), demoted if unhealthy."""
        r, N = self.router, self.win.shape[2]
        sr = self.win.sum(axis=2) / N
        best = sr.max(axis=1, keepdims=True)
        floor = best - r.reset_k * np.sqrt(np.maximum(best * (1 - best), r.var_floor) / N)
        low = np.argwhere(sr < floor)
        for i, p in low:                                   # DE rewrites the laggard's window to about the floor
            ones = int(round(floor[i, 0] * N))
            self.win[i, p] = (np.arange(N) * ones // N != (np.arange(N) + 1) * ones // N)
            sr[i, p] = ones / N
        return np.where(self.health < r.elimination_threshold, sr / r.demote, sr)

    def _split(self) -> RouteSplit:
        score = self.scores()
        nP = score.shape[1]
        top = score == score.max(axis=1, keepdims=True)
        n_top = top.sum(axis=1, keepdims=True)
        h = self.router.hedge
        split = np.where(top, (1 - h) / n_top, h / np.maximum(nP - n_top, 1))
        split = np.where(n_top == nP, 1.0 / nP, split)
        cdf = np.cumsum(split, axis=1)
        cdf[:, -1] = 1.0
        order = np.argsort(-score, axis=1, kind="stable").astype(np.int16)
        choice = score.argmax(axis=1)
        if self.top is not None:
            for i in np.flatnonzero(choice != self.top):
                self.log.append({"tick": None, "action": "route_switch", "target": {"issuer": self.universe.issuer_names[i]},
                                 "params": {"to_processor": self.universe.processor_names[choice[i]]}})
        self.top = choice
        return RouteSplit(cdf, order if self.router.retry_next_best else None)

    def next_control(self, batch: Batch, snap: Snapshot) -> ControlPlane:
        self._update(batch)
        n = len(self.log)
        control = replace(self._control, route_split=self._split())
        for entry in self.log[n:]:
            entry["tick"] = batch.tick
        return control


class Oracle(Baseline):
    """Knows the fault schedule: the best available action from the tick a fault starts to the tick it ends.

    issuer_degradation and latency_spike: the issuer's traffic leaves every bad path for its best healthy
    one (ground-truth uplift and technical failure rate); retry_storm: cap the merchant at 2 attempts, no
    hard-decline retries; issuer_outage: nothing (no path is healthier, and stopping retries costs approvals).
    An upper bound on fault response, not on steady-state routing: outside faults it keeps the default split.
    """
    name = "oracle"

    def __init__(self, universe: Universe, scenario: Scenario, settings: AgentSettings = AgentSettings()):
        super().__init__(universe, settings)
        self.scenario = scenario
        self._quality = (1 - universe.tech_failure) * universe.auth_uplift      # [processor, issuer]
        self._control = self.control_at(0)

    def control_at(self, tick: int) -> ControlPlane:
        u = self.universe
        faults = self.scenario.faults_at(tick)
        bad = np.zeros((len(u.processors), len(u.issuers)), dtype=bool)
        for f in faults:
            if f.kind is FaultKind.ISSUER_DEGRADATION:
                bad[u.index("processor", f.processor), u.index("issuer", f.issuer)] = True
            elif f.kind is FaultKind.LATENCY_SPIKE:
                bad[u.index("processor", f.processor), :] = True
        overrides = []
        for i, issuer in enumerate(u.issuer_names):
            good = np.flatnonzero(~bad[:, i])
            if not bad[:, i].any() or not len(good):
                continue
            best = good[np.argmax(self._quality[good, i])]
            overrides += [RouteOverride(u.processor_names[best], u.processor_names[p], issuer, action_id="oracle")
                          for p in np.flatnonzero(bad[:, i])]
        caps = sorted({(f.merchant, RetryPolicy(2, 1, False)) for f in faults if f.kind is FaultKind.RETRY_STORM})
        return ControlPlane(tuple(overrides), tuple(caps))

    def next_control(self, batch: Batch, snap: Snapshot) -> ControlPlane:
        nxt = self.control_at(batch.tick + 1)
        if nxt != self._control and (nxt.route_overrides or nxt.retry_policies):
            self.log.append({"tick": batch.tick + 1, "action": "apply", "target": {}, "params": {
                "reroutes": [f"{o.issuer} {o.from_processor}->{o.to_processor}" for o in nxt.route_overrides],
                "retry_caps": [m for m, _ in nxt.retry_policies]}})
        return nxt


def make_policy(name: str, universe: Universe = DEFAULT_UNIVERSE, settings: AgentSettings = AgentSettings(),
                scenario: Scenario | None = None, llm=None, summarizer=None, **agent_kwargs) -> Agent:
    """Any of POLICIES as an object with the Agent interface (control, step, state_documents).

    agent_kwargs (clock, audit, kill_switch) reach the project's agent; the baselines change
    their own control plane, outside the executor and its audit log.
    """
    if name in Agent.POLICIES:
        return Agent(universe, settings, name, llm=llm, summarizer=summarizer, **agent_kwargs)
    if name == "static":
        return StaticRunbook(universe, settings)
    if name == "sr_router":
        return SuccessRateRouter(universe, settings, tick_seconds=scenario.tick_seconds if scenario else 10.0)
    if name == "oracle":
        if scenario is None:
            raise ValueError("the oracle needs the scenario's fault schedule")
        return Oracle(universe, scenario, settings)
    raise ValueError(f"unknown policy {name!r}; valid: {', '.join(POLICIES)}")


# -- one run -----------------------------------------------------------------------------

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
    if isinstance(pol, Baseline):
        trace.actions = pol.actions_taken
        trace.rollbacks = None if isinstance(pol, SuccessRateRouter) else []
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


# -- measures ------------------------------------------------------------------------------

SHARE_FLOOR = 0.0025    # oracle within 0.25 pp of none: nothing to recover, the share is n/a rather than noise / ~0
BOOTSTRAP = 2000
MEASURES = {            # name -> (group, format)
    "time_to_detect": ("detection", "t"), "detect_lag_full_strength": ("detection", "t"),
    "precision": ("detection", "r"), "recall": ("detection", "r"), "localisation": ("detection", "r"),
    "cause_accuracy": ("detection", "r"),
    "time_to_mitigate": ("mitigation", "t"), "recovered_share": ("mitigation", "r"),
    "recovered_share_first_attempt": ("mitigation", "r"), "fault_success_rate": ("mitigation", "%"),
    "approvals_saved": ("mitigation", "n"), "approved_amount_saved": ("mitigation", "$"),
    "actions": ("harm", "n"), "approval_requests": ("harm", "n"), "rollbacks": ("harm", "n"),
    "spurious_rollbacks": ("harm", "n"), "cost_per_approved": ("harm", "$3"), "attempts_per_payment": ("harm", "x"),
    "p95_latency_ms": ("harm", "ms"),
    "approval_violations": ("safety", "n"),
}
REASONING = ("none", "agent")


def fault_mask(scenario: Scenario) -> np.ndarray:
    w = np.zeros(scenario.total_ticks, dtype=bool)
    for f in scenario.faults:
        w[f.start_tick:f.end_tick] = True
    return w


def detection(hyps: dict, scenario: Scenario, grace: int) -> dict:
    """Hypotheses against the injected faults. A hypothesis is 'during' a fault if raised from its start to
    `grace` ticks (the observer's window) after its end; it matches when cause and target are exactly right."""
    faults = scenario.faults
    during = lambda ticks, f: any(f.start_tick <= t < f.end_tick + grace for t in ticks)
    exact = lambda key, f: key[0] == f.fault.kind.value and dict(key[1]) == f.fault.target
    out = {"precision": (sum(any(exact(k, f) and during(ts, f) for f in faults) for k, ts in hyps.items()) / len(hyps))
           if hyps else None}
    if not faults:
        return out
    ttd, lag = [], []
    for f in faults:
        ticks = [t for k, ts in hyps.items() if exact(k, f) for t in ts if f.start_tick <= t < f.end_tick + grace]
        if ticks:
            ttd.append(min(ticks) - f.start_tick)
            lag.append(min(ticks) - f.full_strength_tick)
    near = [(k, [f for f in faults if during(ts, f)]) for k, ts in hyps.items()]
    near = [(k, fs) for k, fs in near if fs]
    local = [(k, [f for f in fs if f.fault.target.items() <= dict(k[1]).items()]) for k, fs in near]
    local = [(k, fs) for k, fs in local if fs]
    out.update(time_to_detect=float(np.mean(ttd)) if ttd else None, detect_lag_full_strength=float(max(lag)) if lag else None,
               recall=len(ttd) / len(faults), localisation=len(local) / len(near) if near else None,
               cause_accuracy=sum(any(k[0] == f.fault.kind.value for f in fs) for k, fs in local) / len(local) if local else None)
    return out


def run_measures(tr: Trace, none: Trace, scenario: Scenario, grace: int) -> dict[str, float | None]:
    """Per-run measures; None where a measure does not apply (the reason is na_reason's)."""
    m: dict[str, float | None] = dict.fromkeys(MEASURES)
    w = fault_mask(scenario)
    if tr.policy in REASONING:
        m.update(detection(tr.hypotheses, scenario, grace))
    ttm = [float(np.argmax(row[f.start_tick:f.end_tick])) for row, f in zip(tr.mitigated, scenario.faults) if row.any()]
    m["time_to_mitigate"] = float(np.mean(ttm)) if ttm else None
    if w.any():
        m["fault_success_rate"] = float(tr.approved[w].sum() / tr.payments[w].sum())
    m["approvals_saved"] = float(tr.approved.sum() - none.approved.sum())
    m["approved_amount_saved"] = float(tr.amount.sum() - none.amount.sum())
    m["actions"], m["approval_requests"] = float(tr.actions), float(tr.approval_requests)
    if tr.rollbacks is not None:
        m["rollbacks"], m["spurious_rollbacks"] = float(len(tr.rollbacks)), float(sum(tr.rollbacks))
    m["cost_per_approved"] = float(tr.fees.sum() / max(tr.approved.sum(), 1))
    m["attempts_per_payment"] = float(tr.attempts.sum() / tr.payments.sum())
    m["p95_latency_ms"] = histogram_quantiles(tr.latency_hist, (0.95,))[0]
    m["approval_violations"] = None if tr.violations is None else float(tr.violations)
    return m


def na_reason(measure: str, policy: str, scenario: Scenario) -> str:
    group = MEASURES[measure][0]
    if group == "detection" and policy not in REASONING:
        return "does not form hypotheses"
    if not scenario.faults and measure != "precision" and group in ("detection", "mitigation"):
        return "no fault"
    return {"precision": "no hypotheses", "time_to_detect": "never detected", "detect_lag_full_strength": "never detected",
            "localisation": "no hypothesis during a fault", "cause_accuracy": "no hypothesis on the faulty entity",
            "time_to_mitigate": "never acts" if policy == "none" else "never addressed",
            "recovered_share": "oracle within 0.25 pp of none", "recovered_share_first_attempt": "oracle within 0.25 pp of none",
            "rollbacks": "no discrete actions to roll back", "spurious_rollbacks": "no discrete actions to roll back",
            "approval_violations": "not subject to approval"}.get(measure, "not measured")


def _resample(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(0, n, (BOOTSTRAP, n))


def summarise(values: list) -> dict:
    """Mean over seeds with a percentile bootstrap 95% interval; runs where the measure is None are left out."""
    v = np.array([x for x in values if x is not None], dtype=float)
    if not len(v):
        return {}
    means = v[_resample(len(v))].mean(axis=1)
    return {"mean": float(v.mean()), "lo": float(np.percentile(means, 2.5)), "hi": float(np.percentile(means, 97.5)),
            "n": int(len(v))}


def share_draws(gain: np.ndarray, gap: np.ndarray) -> tuple[float | None, np.ndarray | None]:
    """Ratio of means over seeds, (policy - none) / (oracle - none), and its bootstrap draws (seeds resampled jointly)."""
    if gap.mean() < SHARE_FLOOR:
        return None, None
    idx = _resample(len(gap))
    g = gap[idx].mean(axis=1)
    return float(gain.mean() / gap.mean()), gain[idx].mean(axis=1) / np.where(g > 0, g, np.nan)


def interval(value: float, draws: np.ndarray, n: int) -> dict:
    return {"mean": value, "lo": float(np.nanpercentile(draws, 2.5)), "hi": float(np.nanpercentile(draws, 97.5)), "n": n}


def scenario_kind(s: Scenario) -> str:
    return "control" if not s.faults else "single" if len(s.faults) == 1 else "compound"


def evaluate_scenario(scenario: Scenario, traces: dict[tuple[str, int], Trace], seeds: list[int], grace: int):
    """All measures of one scenario: {policy: {measure: summary or {"na": reason}}}, plus bootstrap draws of shares."""
    out, draws = {}, {}
    w = fault_mask(scenario)
    rate = lambda tr, ok: float(ok[w].sum() / max(tr.payments[w].sum(), 1))
    for policy in POLICIES:
        runs = [run_measures(traces[policy, s], traces["none", s], scenario, grace) for s in seeds]
        res = {k: summarise([r[k] for r in runs]) for k in MEASURES}
        if w.any():
            for key, col in (("recovered_share", "approved"), ("recovered_share_first_attempt", "first_ok")):
                sr = {p: np.array([rate(traces[p, s], getattr(traces[p, s], col)) for s in seeds]) for p in ("none", "oracle", policy)}
                value, d = share_draws(sr[policy] - sr["none"], sr["oracle"] - sr["none"])
                res[key] = {} if value is None else interval(value, d, len(seeds))
                draws[policy, key] = d
        out[policy] = {k: v if v else {"na": na_reason(k, policy, scenario)} for k, v in res.items()}
    return out, draws


# -- the whole benchmark -------------------------------------------------------------------

def _run_task(task: tuple[str, int, str]) -> tuple[tuple[str, int, str], Trace]:
    path, seed, policy = task
    return task, run_policy(load_scenario(path, DEFAULT_UNIVERSE), seed, policy)


def pick_quick(scenarios: dict[str, Scenario]) -> dict[str, Scenario]:
    """A small cross-section by content, never by name: a control and one single fault of three kinds."""
    want = [(), (FaultKind.ISSUER_DEGRADATION,), (FaultKind.LATENCY_SPIKE,), (FaultKind.RETRY_STORM,)]
    out = {}
    for kinds in want:
        for path, s in scenarios.items():
            if tuple(f.fault.kind for f in s.faults) == kinds and all(f.flap_ticks == 0 == f.ramp_ticks for f in s.faults):
                out[path] = s
                break
    return out or dict(list(scenarios.items())[:2])


def run_benchmark(scenarios: dict[str, Scenario], n_seeds: int, workers: int, progress=sys.stderr) -> dict:
    seeds = {path: [s.seed + k for k in range(n_seeds)] for path, s in scenarios.items()}
    tasks = [(path, seed, policy) for path in scenarios for seed in seeds[path] for policy in POLICIES]
    tasks.sort(key=lambda t: -scenarios[t[0]].total_ticks * scenarios[t[0]].payments_per_tick)   # long runs first
    traces: dict[str, dict] = {path: {} for path in scenarios}
    started = time.perf_counter()
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(workers) as pool:
        for done, ((path, seed, policy), tr) in enumerate(pool.imap_unordered(_run_task, tasks), 1):
            traces[path][policy, seed] = tr
            if progress is not None:
                print(f"\r  runs {done}/{len(tasks)}  {time.perf_counter() - started:5.1f} s  last: "
                      f"{scenarios[path].name[:40]:40s} {policy:9s} seed {seed}", end="", file=progress, flush=True)
    if progress is not None:
        print(file=progress)
    grace = AgentSettings().observer.window_ticks
    results, draws = {}, {}
    for path, s in scenarios.items():
        res, d = evaluate_scenario(s, traces[path], seeds[path], grace)
        results[path] = {"name": s.name, "file": Path(path).name, "kind": scenario_kind(s), "seeds": seeds[path],
                         "faults": [{"kind": f.fault.kind.value, "target": f.fault.target, "severity": f.fault.severity,
                                     "start_tick": f.start_tick, "end_tick": f.end_tick, "ramp_ticks": f.ramp_ticks,
                                     "flap_ticks": f.flap_ticks} for f in s.faults],
                         "policies": res}
        draws[path] = d
    lags = [(Path(path).name, f.start_tick, _lag(traces[path]["agent", seed].hypotheses, f, grace))
            for path, s in scenarios.items() for seed in seeds[path] for f in s.faults]
    agent_runs = [tr for per in traces.values() for (policy, _), tr in per.items() if policy == "agent"]
    return {"scenarios": results, "headline": headline(results, draws), "detection_lags": lags,
            "approval_violations_total": sum(tr.violations for tr in agent_runs),
            "runs": len(tasks), "seconds": time.perf_counter() - started,
            "run_seconds": sum(tr.seconds for per in traces.values() for tr in per.values())}


def _lag(hyps: dict, f, grace: int) -> int | None:
    """Ticks from full strength to the first exactly right hypothesis (None: never detected)."""
    ticks = [t for k, ts in hyps.items() if k[0] == f.fault.kind.value and dict(k[1]) == f.fault.target
             for t in ts if f.start_tick <= t < f.end_tick + grace]
    return min(ticks) - f.full_strength_tick if ticks else None


def _mean_over(results: dict, draws: dict, policy: str, key: str, kinds: tuple[str, ...]) -> dict:
    """Average of per-scenario ratio-of-means shares where defined; bootstrap draws averaged draw by draw."""
    paths = [p for p, r in results.items() if r["kind"] in kinds and "mean" in r["policies"][policy][key]]
    if not paths:
        return {"na": "no scenario with something to recover"}
    value = float(np.mean([results[p]["policies"][policy][key]["mean"] for p in paths]))
    stacked = np.nanmean(np.vstack([draws[p][policy, key] for p in paths]), axis=0)
    return interval(value, stacked, len(paths)) | {"scenarios": len(paths)}


def _mean_measure(results: dict, policy: str, key: str, kinds: tuple[str, ...]) -> dict:
    vals = [r["policies"][policy][key]["mean"] for r in results.values()
            if r["kind"] in kinds and "mean" in r["policies"][policy][key]]
    return {"mean": float(np.mean(vals)), "n": len(vals)} if vals else {"na": "not measured in any scenario"}


def headline(results: dict, draws: dict) -> dict:
    faulty = ("single", "compound")
    out = {}
    for p in POLICIES:
        out[p] = {
            "recovered_share": _mean_over(results, draws, p, "recovered_share", faulty),
            "recovered_share_single": _mean_over(results, draws, p, "recovered_share", ("single",)),
            "recovered_share_first_attempt": _mean_over(results, draws, p, "recovered_share_first_attempt", faulty),
            "approvals_saved": _mean_measure(results, p, "approvals_saved", faulty + ("control",)),
            "time_to_detect": _mean_measure(results, p, "time_to_detect", faulty),
            "time_to_mitigate": _mean_measure(results, p, "time_to_mitigate", faulty),
            "actions_on_controls": _mean_measure(results, p, "actions", ("control",)),
            "requests_on_controls": _mean_measure(results, p, "approval_requests", ("control",)),
            "approval_violations": _mean_measure(results, p, "approval_violations", faulty + ("control",)),
            "cost_per_approved": _mean_measure(results, p, "cost_per_approved", faulty + ("control",)),
            "attempts_per_payment": _mean_measure(results, p, "attempts_per_payment", faulty + ("control",)),
            "p95_latency_ms": _mean_measure(results, p, "p95_latency_ms", faulty + ("control",)),
        }
    return out


def targets(bench: dict, speed: dict | None) -> list[dict]:
    """The issue's targets, each with the measured value and whether it is met."""
    h, sc = bench["headline"], bench["scenarios"]
    val = lambda d: d.get("mean")
    agent, router = val(h["agent"]["recovered_share"]), val(h["sr_router"]["recovered_share"])
    single = val(h["agent"]["recovered_share_single"])
    below = [f"{r['file']} {r['policies']['agent']['recovered_share']['mean']:.2f}" for r in sc.values()
             if r["kind"] == "single" and r["policies"]["agent"]["recovered_share"].get("mean", 1.0) < 0.9]
    controls = [r for r in sc.values() if r["kind"] == "control"]
    acts = sum(r["policies"]["agent"]["actions"]["mean"] * len(r["seeds"]) for r in controls)
    reqs = sum(r["policies"]["agent"]["approval_requests"]["mean"] * len(r["seeds"]) for r in controls)
    lags = [lag for _, _, lag in bench["detection_lags"]]
    within = sum(1 for lag in lags if lag is not None and lag <= 2)
    late = sorted({f"{name}@{start}" for name, start, lag in bench["detection_lags"] if lag is None or lag > 2})
    out = [
        {"target": "agent beats sr_router on recovered share, averaged over fault scenarios",
         "value": f"agent {_f(agent)} vs sr_router {_f(router)}", "met": agent is not None and router is not None and agent > router},
        {"target": "agent reaches >= 0.9 of oracle on single-fault scenarios (mean recovered share)",
         "value": f"{_f(single)}" + (f"; under 0.9: {', '.join(below)}" if below else ""), "met": single is not None and single >= 0.9},
        {"target": "agent takes no action on the fault-free controls",
         "value": f"{acts:.0f} executed, {reqs:.0f} approval requests over {sum(len(r['seeds']) for r in controls)} control runs",
         "met": acts == 0 and reqs == 0},
        {"target": "agent detects within 2 ticks of a fault reaching full strength",
         "value": f"{within}/{len(lags)} faults x seeds" + (f"; late or missed: {', '.join(late)}" if late else ""),
         "met": within == len(lags)},
        {"target": "agent never executes an action that needed approval without one",
         "value": f"{bench['approval_violations_total']} violations", "met": bench["approval_violations_total"] == 0},
    ]
    if speed:
        big = max(speed["batches"], key=lambda r: r["batch"])
        out.append({"target": "whole loop (simulator + agent, heuristic) >= 1,000,000 payments/s on one core",
                    "value": f"{big['loop']:,.0f}/s at {big['batch']:,} payments per tick", "met": big["loop"] >= 1e6})
    return [t | {"met": bool(t["met"])} for t in out]


def _f(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


# -- speed -------------------------------------------------------------------------------------

def bench_batch(size: int, ticks: int, seed: int = 1) -> dict:
    """Payments per second of the simulator, the observer and the agent, timed separately on the same
    batches; the loop is simulator plus agent. A degradation in the middle third exercises decide and act."""
    u = DEFAULT_UNIVERSE
    sim, observer, agent = Simulator(u, seed, size), Observer(u), Agent(u)
    fault = (Fault(FaultKind.ISSUER_DEGRADATION, 0.6, issuer="chase", processor="atlas"),)
    spent = np.zeros(3)
    n = 0
    for t in range(ticks):
        t0 = time.perf_counter()
        batch = sim.step(agent.control, fault if ticks // 3 <= t < 2 * ticks // 3 else ())
        t1 = time.perf_counter()
        observer.observe(batch)
        t2 = time.perf_counter()
        agent.step(batch)
        spent += (t1 - t0, t2 - t1, time.perf_counter() - t2)
        n += batch.new_payments
    return {"batch": size, "ticks": ticks, "payments": n, "simulator": n / spent[0], "observer": n / spent[1],
            "agent": n / spent[2], "loop": n / (spent[0] + spent[2])}


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (reset by exec, unlike ru_maxrss, which a spawned child
    inherits from its parent on Linux), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _loop_child(size: int, payments: int) -> dict:
    """Whole loop in a fresh process: seconds and peak resident memory."""
    base = peak_rss_mb()
    u = DEFAULT_UNIVERSE
    sim, agent = Simulator(u, 2, size), Agent(u)
    started, n = time.perf_counter(), 0
    while n < payments:
        n += agent.step(sim.step(agent.control)).snapshot.last.total.payments
    return {"batch": size, "payments": n, "seconds": time.perf_counter() - started,
            "payments_per_s": n / (time.perf_counter() - started),
            "peak_rss_mb": peak_rss_mb(), "rss_before_mb": base}


def run_speed(quick: bool = False, progress=sys.stderr) -> dict:
    sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    per_size = 150_000 if quick else 1_000_000
    rows = []
    for size in sizes:
        if progress is not None:
            print(f"\r  speed: batch {size:,} payments per tick ...", end="", file=progress, flush=True)
        rows.append(bench_batch(size, max(150, per_size // size)))
    scale = [(10_000, n) for n in ((250_000, 500_000, 1_000_000) if quick else (500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000))]
    scale += [] if quick else [(100_000, 10_000_000)]
    scaling = []
    ctx = mp.get_context("spawn")          # a fresh process per row, so peak memory is that run's alone
    for size, n in scale:
        if progress is not None:
            print(f"\r  speed: whole loop, {n:,} payments at {size:,} per tick ...", end="", file=progress, flush=True)
        with ctx.Pool(1) as pool:
            scaling.append(pool.apply(_loop_child, (size, n)))
    if progress is not None:
        print(file=progress)
    return {"batches": rows, "scaling": scaling, "quick": quick,
            "note": "one process, one core; wall-clock perf_counter; payments are new payments (retries are extra attempts)"}


# -- report --------------------------------------------------------------------------------------

MEASURE_NOTES = """\
- **Fault windows**: the ticks from each injected fault's start to its end (flapping faults: the whole span, on and off).
- **recovered_share**: (S_policy - S_none) / (S_oracle - S_none), where S is the *payment* success rate, approved
  payments / payments, over payments that *arrived* in the fault windows (an approval on a later retry counts; attempts
  do not, so cutting retries cannot raise it). Ratio of the means over seeds; the interval resamples seeds jointly.
  n/a when S_oracle - S_none < 0.25 pp (nothing to recover: outages, retry storms). The oracle bounds the *response to
  faults*, not steady-state routing, so a router can exceed 1. `recovered_share_first_attempt` is the same on
  first-attempt approvals (where retries hide a fault, as in latency spikes that time out).
- **time_to_detect**: ticks from fault start to the first hypothesis with exactly the right cause and target (mean
  over detected faults). `detect_lag_full_strength`: ticks from full strength (end of a ramp) to that hypothesis,
  worst fault of the run. Detection is measured for the reasoning policies (none, agent); n/a for the others.
- **precision**: distinct (cause, target) hypotheses raised that exactly match a fault they were raised during (fault
  start to end + 6 ticks, the observer's window) / all distinct hypotheses. **recall**: faults with a matching
  hypothesis / faults. **localisation**: hypotheses raised during a fault whose target contains the fault's target
  (right issuer / processor / merchant) / hypotheses raised during a fault. **cause_accuracy**: localised hypotheses
  with the right cause / localised hypotheses.
- **time_to_mitigate**: ticks from fault start to the first tick whose control plane addresses the fault: half or
  more of the bad path's default traffic moved off it (degradation: that issuer on that processor; latency: the
  processor), the storming merchant capped at its normal attempts, or the outage issuer's retries stopped. Only
  executed actions change the control plane; pending approvals do not.
- **approvals_saved / approved_amount_saved**: approved payments (and their amount) minus policy none's, whole run,
  same seed. **fault_success_rate**: S over the fault windows.
- **actions**: agent: executed actions; static: rules fired; oracle: fault responses applied; sr_router: changes of
  an issuer's top processor. **approval_requests**: agent actions held for a human (nobody approves in the benchmark).
  **rollbacks**: agent actions rolled back; **spurious_rollbacks** those that addressed a fault still active.
- **cost_per_approved**: all fees / approved payments; **attempts_per_payment**; **p95_latency_ms** over all attempts.
- **approval_violations**: executed agent actions that needed approval (the executor's gate, re-checked) without a
  recorded approval of their exact parameters. Must be 0.
- Means over seeds with percentile-bootstrap 95% intervals (2,000 resamples of seeds) in brackets; with 5 seeds the
  intervals are rough. n/a marks a measure that does not apply, never a missing number.
"""


def fmt(d: dict, kind: str, ci: bool = True) -> str:
    if "mean" not in d:
        return "n/a"
    f = {"t": "{:.1f}", "r": "{:.2f}", "%": "{:.2%}", "n": "{:,.1f}", "$": "${:,.0f}", "$3": "${:.3f}", "x": "{:.3f}",
         "ms": "{:,.0f}"}[kind].format
    if not ci or "lo" not in d or f(d["lo"]) == f(d["hi"]):
        return f(d["mean"])
    return f"{f(d['mean'])} [{f(d['lo'])}, {f(d['hi'])}]"


def md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def scenario_table(bench: dict, measure: str, policies=POLICIES, kinds=("control", "single", "compound")) -> str:
    kind = MEASURES[measure][1]
    rows = [[r["file"].removesuffix(".json")] + [fmt(r["policies"][p][measure], kind) for p in policies]
            for r in bench["scenarios"].values() if r["kind"] in kinds]
    return md_table(["scenario"] + list(policies), rows)


def render(bench: dict, speed: dict | None, command: str) -> str:
    h = bench["headline"]
    n_sc = len(bench["scenarios"])
    seeds = len(next(iter(bench["scenarios"].values()))["seeds"]) if n_sc else 0
    parts = [f"# Evaluation results\n\n`{command}`: {n_sc} scenarios x {seeds} seeds x {len(POLICIES)} policies = "
             f"{bench['runs']} runs ({bench['run_seconds']:.0f} s of runs, {bench['seconds']:.0f} s wall). "
             "Same simulator seed, payments and per-attempt luck for every policy. Definitions at the end."]
    tg = targets(bench, speed)
    parts.append("## Targets\n\n" + md_table(["target", "measured", "met"],
                                            [[t["target"], t["value"], "yes" if t["met"] else "**no**"] for t in tg]))
    cols = [("recovered_share", "recovered share, fault scenarios", "r"), ("recovered_share_single", "single-fault", "r"),
            ("recovered_share_first_attempt", "first-attempt share", "r"), ("approvals_saved", "approvals saved / run", "n"),
            ("time_to_detect", "detect (ticks)", "t"), ("time_to_mitigate", "mitigate (ticks)", "t"),
            ("actions_on_controls", "actions / control run", "n"), ("approval_violations", "violations", "n"),
            ("cost_per_approved", "cost / approved", "$3"), ("attempts_per_payment", "attempts / payment", "x"),
            ("p95_latency_ms", "p95 ms", "ms")]
    short = shortfalls(bench, tg)
    parts.append("## Where the agent falls short\n\n" + ("\n".join(f"- {x}" for x in short) if short else "Nowhere."))
    parts.append("## Headline\n\nAverages over scenarios of the per-scenario means.\n\n" + md_table(
        ["policy"] + [c[1] for c in cols], [[p] + [fmt(h[p][c[0]], c[2]) for c in cols] for p in POLICIES]))
    parts.append("## Per scenario\n")
    for measure, title in (("recovered_share", "Recovered share (payment success in fault windows)"),
                           ("recovered_share_first_attempt", "Recovered share, first attempts"),
                           ("time_to_mitigate", "Time to mitigate (ticks)"), ("approvals_saved", "Approvals saved vs none (whole run)"),
                           ("approved_amount_saved", "Approved amount saved vs none (whole run)"),
                           ("fault_success_rate", "Payment success rate in fault windows")):
        parts.append(f"### {title}\n\n" + scenario_table(bench, measure, kinds=("single", "compound")))
    for measure, title in (("actions", "Actions (see definitions per policy)"), ("approval_requests", "Approval requests"),
                           ("rollbacks", "Rollbacks"), ("spurious_rollbacks", "Spurious rollbacks"),
                           ("cost_per_approved", "Cost per approved payment"),
                           ("attempts_per_payment", "Attempts per payment"), ("p95_latency_ms", "p95 latency (ms)"),
                           ("approval_violations", "Approval violations")):
        parts.append(f"### {title}\n\n" + scenario_table(bench, measure))
    det = ["time_to_detect", "detect_lag_full_strength", "precision", "recall", "localisation", "cause_accuracy"]
    for p in REASONING:
        rows = [[r["file"].removesuffix(".json")] + [fmt(r["policies"][p][m], MEASURES[m][1]) for m in det]
                for r in bench["scenarios"].values()]
        parts.append(f"### Detection, policy {p}\n\n" + md_table(["scenario"] + det, rows))
    if speed:
        parts.append(render_speed(speed))
    parts.append("## Baselines\n\n" + baseline_notes())
    parts.append("## Definitions\n\n" + MEASURE_NOTES)
    return "\n\n".join(parts) + "\n"


def shortfalls(bench: dict, tg: list[dict]) -> list[str]:
    """Unmet targets, and the fault scenarios where the agent trails the oracle or the router, with clues from the data."""
    out = [f"{t['target']}: {t['value']}" for t in tg if not t["met"]]
    for r in bench["scenarios"].values():
        a, sr = (r["policies"][p]["recovered_share"].get("mean") for p in ("agent", "sr_router"))
        if a is None or (a >= 0.9 and (sr is None or a >= sr - 0.02)):
            continue
        m = r["policies"]["agent"]
        out.append(f"{r['file']}: agent {a:.2f} vs sr_router {_f(sr)}; agent executed {fmt(m['actions'], 'n', False)} "
                   f"actions, held {fmt(m['approval_requests'], 'n', False)} for approval, "
                   f"{fmt(m['spurious_rollbacks'], 'n', False)} spurious rollbacks, mitigated after "
                   f"{fmt(m['time_to_mitigate'], 't', False)} ticks")
    return out


def baseline_notes() -> str:
    st, sr = StaticSettings(), SRRouterSettings()
    return (f"- **static**: reroutes an issuer whose first-attempt success rate over the last {AgentSettings().observer.window_ticks} "
            f"ticks is under {st.min_first_attempt_rate:.0%} (at least {st.min_payments} payments) to the cheapest processor "
            f"other than its primary; caps a merchant at {st.cap_attempts} attempts when it passes "
            f"{st.max_attempts_per_payment} attempts per payment; never undoes.\n"
            f"- **sr_router** (after juspay/decision-engine SR_V3 and Hyperswitch success-based routing): per issuer x "
            f"processor window of the last N = {sr.window} first-attempt outcomes (HS sends 200, DE defaults to 125), "
            f"optimistic cold start; {sr.hedge:.0%} hedge to the non-top processors; laggards floored at p* - "
            f"{sr.reset_k:g} sigma (variance floor {sr.var_floor}); elimination when path health (x{sr.penalty} per technical "
            f"failure, /{sr.penalty} per approval) falls under {sr.elimination_threshold} (HS sends 0.35, DE defaults to 0.05): "
            f"score / {sr.demote:g}, soft reset after {sr.soft_reset_minutes:g} min; retries go to the best other processor. "
            f"Routing changes once per tick, like every policy here; no hard 150-minute reset.\n"
            "- **oracle**: from the fault schedule, at the tick a fault starts, moves each affected issuer's traffic off every "
            "bad path (degraded issuer path, slow processor) to its best healthy path by true approval and technical-failure "
            "rates, caps a storming merchant at 2 attempts without hard-decline retries, does nothing for an outage; undoes "
            "all of it the tick the fault ends. It bounds the response to faults with the agent's own actions, not "
            "steady-state routing, so sr_router can exceed it.")


def render_speed(speed: dict) -> str:
    rows = [[f"{r['batch']:,}", f"{r['ticks']:,}", f"{r['payments']:,}"] + [f"{r[k]:,.0f}" for k in ("simulator", "observer", "agent", "loop")]
            for r in speed["batches"]]
    scale = [[f"{r['payments']:,}", f"{r['batch']:,}", f"{r['seconds']:.2f}", f"{r['payments_per_s']:,.0f}",
              f"{r['peak_rss_mb']:,.0f}", f"{r['rss_before_mb']:,.0f}"] for r in speed["scaling"]]
    return ("## Speed\n\nPayments per second (" + speed["note"] + "). Agent = observe, reason, decide, act, learn "
            "(heuristic); loop = simulator + agent.\n\n"
            + md_table(["payments / tick", "ticks", "payments", "simulator", "observer", "agent", "loop"], rows)
            + "\n\nWhole loop by run size, each in a fresh process (peak RSS: that process's VmHWM, imports included):\n\n"
            + md_table(["payments", "payments / tick", "seconds", "payments / s", "peak RSS MB", "RSS after imports MB"], scale))


def to_json(bench: dict, speed: dict | None, command: str) -> dict:
    return {"schema_version": 1, "command": command, "policies": list(POLICIES), "measures": {k: v[0] for k, v in MEASURES.items()},
            "share_floor": SHARE_FLOOR, "targets": targets(bench, speed), "headline": bench["headline"],
            "scenarios": {r["file"]: r for r in bench["scenarios"].values()},
            "detection_lags": [{"scenario": n, "fault_start": s, "lag": lag} for n, s, lag in bench["detection_lags"]],
            "runs": bench["runs"], "speed": speed}


def write_charts(bench: dict, speed: dict | None, out: Path) -> list[Path]:
    import altair as alt  # only the report needs it
    import pandas as pd
    rows = [{"scenario": r["file"].removesuffix(".json"), "policy": p, **{k: r["policies"][p]["recovered_share"][k]
                                                                        for k in ("mean", "lo", "hi")}}
            for r in bench["scenarios"].values() for p in ("static", "sr_router", "agent")
            if "mean" in r["policies"][p]["recovered_share"]]
    paths = []
    if rows:
        df = pd.DataFrame(rows)
        order = list(dict.fromkeys(df["scenario"]))
        color = alt.Color("policy:N", sort=["static", "sr_router", "agent"], scale=alt.Scale(range=["#9e9e9e", "#4c78a8", "#f58518"]))
        base = alt.Chart(df).encode(y=alt.Y("scenario:N", sort=order, title=None), yOffset=alt.YOffset("policy:N", sort=["static", "sr_router", "agent"]))
        chart = (base.mark_bar().encode(x=alt.X("mean:Q", title="recovered share of the oracle's gain (1 = oracle)"), color=color)
                 + base.mark_rule().encode(x="lo:Q", x2="hi:Q")
                 + alt.Chart(pd.DataFrame({"x": [0.9]})).mark_rule(strokeDash=[4, 3], color="black").encode(x="x:Q")
                 ).properties(width=420, height=alt.Step(8),
                              title="Recovered share by scenario (mean over seeds, 95% bootstrap interval)")
        paths.append(out / "recovered_share.png")
        chart.save(str(paths[-1]), scale_factor=1.0)
    if speed:
        df = pd.DataFrame([{"batch": r["batch"], "stage": k, "payments_per_s": r[k]} for r in speed["batches"]
                           for k in ("simulator", "observer", "agent", "loop")])
        chart = alt.Chart(df).mark_line(point=True).encode(
            x=alt.X("batch:Q", scale=alt.Scale(type="log"), title="payments per tick"),
            y=alt.Y("payments_per_s:Q", scale=alt.Scale(type="log"), title="payments per second"),
            color="stage:N").properties(width=360, height=220, title="Throughput by batch size (one core)")
        paths.append(out / "speed.png")
        chart.save(str(paths[-1]), scale_factor=1.0)
    return paths


# -- command line ----------------------------------------------------------------------------------

def load_dir(folder: Path) -> dict[str, Scenario]:
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise ScenarioError(f"no scenario files (*.json) in {folder}")
    return {str(f): load_scenario(f, DEFAULT_UNIVERSE) for f in files}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark the agent against none, static, sr_router and oracle.")
    ap.add_argument("command", nargs="?", choices=("run", "bench"), default="run", help="bench: speed only")
    ap.add_argument("--quick", action="store_true", help="a small version (4 scenarios, 2 seeds, small speed runs)")
    ap.add_argument("--scenarios", default=str(DEFAULT_SCENARIOS), help="folder of scenario files")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per scenario (default 5, quick 2)")
    ap.add_argument("--out", default="results", help="folder for summary.md, summary.json and charts")
    ap.add_argument("--workers", type=int, default=min(2, mp.cpu_count()), help="processes for the runs")
    ap.add_argument("--bench", action="store_true", help="same as the bench command")
    ap.add_argument("--no-bench", action="store_true", help="skip the speed benchmark")
    args = ap.parse_args(argv)
    if args.command == "bench" or args.bench:
        speed = run_speed(args.quick)
        print(render_speed(speed))
        return 0
    try:
        scenarios = load_dir(Path(args.scenarios))
    except ScenarioError as e:
        print(f"evaluate.py: {e}", file=sys.stderr)
        return 2
    if args.quick:
        scenarios = pick_quick(scenarios)
    n_seeds = args.seeds or (2 if args.quick else 5)
    command = "python evaluate.py" + (" --quick" if args.quick else "") + (f" --seeds {args.seeds}" if args.seeds else "")
    print(f"Evaluating {len(scenarios)} scenarios x {n_seeds} seeds x {len(POLICIES)} policies on {args.workers} workers",
          file=sys.stderr)
    bench = run_benchmark(scenarios, n_seeds, max(1, args.workers))
    speed = None if args.no_bench else run_speed(args.quick)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = render(bench, speed, command)
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps(to_json(bench, speed, command), indent=1, allow_nan=False) + "\n")
    charts = write_charts(bench, speed, out)
    print(text)
    print(f"Wrote {out / 'summary.md'}, {out / 'summary.json'}" + "".join(f", {p}" for p in charts), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
