"""Baselines: the routers the agent is measured against, as controllers that replace decide and act.

- static: a runbook rule with fixed thresholds that is never undone;
- sr_router: per-payment success-rate routing per issuer, after Juspay's decision engine (SR_V3)
  and Hyperswitch's success-based routing (../shared/reference-routers.md, section (b));
- oracle: reads the fault schedule and the truth (which nothing in the agent may do): while a fault lasts,
  every payment goes to its issuer's best available path; the reference no policy beats;
- oracle_path: the same schedule, answered with the agent's own kind of actions (whole paths moved, storms
  capped) the tick a fault starts, undone the tick it ends.

Each is plugged into an Agent with policy "none" (agent.Controller), so it observes and
reasons like the agent and leaves the same report and state files; its own routing
changes are listed in `changes`. make_policy builds any of POLICIES.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from agent import Agent, AgentSettings
from control_plane import ControlPlane, RetryPolicy, RouteOverride, RouteSplit
from decline_codes import TECHNICAL_CODES
from merchant_profiles import DEFAULT_UNIVERSE, Universe
from observer import Snapshot
from scenario import Scenario
from simulator import DECLINE_CDF, Batch, FaultKind, fault_effects

POLICIES = ("none", "static", "sr_router", "agent", "oracle_path", "oracle")
SOFT_SHARE = float(DECLINE_CDF[1])       # declines a merchant retries (51, 05); the rest are hard


class Baseline:
    """A controller that owns its control plane and records every change it makes."""
    name = "baseline"

    def __init__(self, universe: Universe):
        self.universe = universe
        self.control = ControlPlane()
        self.changes: list[dict] = []

    def update(self, batch: Batch, snap: Snapshot) -> None:
        self.control = self.next_control(batch, snap)

    def next_control(self, batch: Batch, snap: Snapshot) -> ControlPlane:
        return self.control


class StaticSettings:
    min_first_attempt_rate: float = 0.70   # an issuer under 70% over the last minute pages the runbook (healthy: 0.80-0.92)
    max_attempts_per_payment: float = 1.5  # retries past 1.5 attempts per payment look like a storm (healthy: 1.08-1.32)
    min_payments: int = 200                # a runbook does not fire on a handful of payments
    cap_attempts: int = 2                  # the cap it applies: first attempt plus one retry, never hard declines


class StaticRunbook(Baseline):
    """Fixed thresholds on the last minute; reroute the whole issuer to the cheapest other processor; cap retries. Never undoes."""
    name = "static"

    def __init__(self, universe: Universe, rule: StaticSettings = StaticSettings()):
        super().__init__(universe)
        self.rule = rule
        pct, fixed, per_attempt = universe.fees
        ticket = float(universe.merchant_arrays["mean_ticket"] @ universe.merchant_share)
        self._cost = per_attempt + pct * ticket + fixed        # $ per approved payment at the average ticket

    def next_control(self, batch: Batch, snap: Snapshot) -> ControlPlane:
        u, r, c = self.universe, self.rule, self.control
        done = {o.issuer for o in c.route_overrides}
        issuers = snap.window.table("issuer")
        overrides = list(c.route_overrides)
        for i, name in enumerate(u.issuer_names):
            n = issuers["payments"][i]
            if name in done or n < r.min_payments or issuers["first_approvals"][i] / n >= r.min_first_attempt_rate:
                continue
            primary = u.index("processor", u.issuers[i].primary)
            cheapest = min((q for q in range(len(u.processors)) if q != primary), key=lambda q: self._cost[q])
            overrides.append(RouteOverride(u.processor_names[cheapest], issuer=name, action_id=f"static-{len(self.changes) + 1}"))
            self.changes.append({"tick": batch.tick, "action": "reroute", "target": {"issuer": name},
                             "params": {"to_processor": u.processor_names[cheapest]}})
        capped = dict(c.retry_policies)
        merchants = snap.window.table("merchant")
        for m, name in enumerate(u.merchant_names):
            n = merchants["payments"][m]
            if name in capped or n < r.min_payments or merchants["attempts"][m] / n <= r.max_attempts_per_payment:
                continue
            capped[name] = RetryPolicy(r.cap_attempts, 1, False)
            self.changes.append({"tick": batch.tick, "action": "retry_policy", "target": {"merchant": name},
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

    def __init__(self, universe: Universe, router: SRRouterSettings = SRRouterSettings(), tick_seconds: float = 10.0):
        super().__init__(universe)
        self.router = router
        nI, nP = len(universe.issuers), len(universe.processors)
        self.win = np.ones((nI, nP, router.window), dtype=np.int8)
        self.ptr = np.zeros((nI, nP), dtype=np.int64)
        self.health = np.ones((nI, nP))
        self.demoted_ticks = np.zeros((nI, nP), dtype=np.int64)
        self.soft_reset_ticks = max(1, round(router.soft_reset_minutes * 60 / tick_seconds))
        self.top = None
        self.control = ControlPlane(route_split=self._split())

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
                self.changes.append({"tick": None, "action": "route_switch", "target": {"issuer": self.universe.issuer_names[i]},
                                 "params": {"to_processor": self.universe.processor_names[choice[i]]}})
        self.top = choice
        return RouteSplit(cdf, order if self.router.retry_next_best else None)

    def next_control(self, batch: Batch, snap: Snapshot) -> ControlPlane:
        self._update(batch)
        n = len(self.changes)
        control = replace(self.control, route_split=self._split())
        for entry in self.changes[n:]:
            entry["tick"] = batch.tick
        return control


class PathOracle(Baseline):
    """Knows the fault schedule: the best available action from the tick a fault starts to the tick it ends.

    issuer_degradation and latency_spike: the issuer's traffic leaves every bad path for its best healthy
    one (ground-truth uplift and technical failure rate); retry_storm: cap the merchant at 2 attempts, no
    hard-decline retries; issuer_outage: nothing (no path is healthier, and stopping retries costs approvals).
    An upper bound on moving whole paths, not on routing each payment: outside faults it keeps the default split.
    """
    name = "oracle_path"

    def __init__(self, universe: Universe, scenario: Scenario):
        super().__init__(universe)
        self.scenario = scenario
        self._quality = (1 - universe.tech_failure) * universe.auth_uplift      # [processor, issuer]
        self.control = self.control_at(0)

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
        if nxt != self.control and (nxt.route_overrides or nxt.retry_policies):
            self.changes.append({"tick": batch.tick + 1, "action": "apply", "target": {}, "params": {
                "reroutes": [f"{o.issuer} {o.from_processor}->{o.to_processor}" for o in nxt.route_overrides],
                "retry_caps": [m for m, _ in nxt.retry_policies]}})
        return nxt


def best_paths(u: Universe, f: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """[issuer] the processor for a payment's first attempt and the one for its retry that together approve
    the most payments by the second attempt, from the true effects of every fault. A payment's own approval
    draw is the same on every path (common random numbers), so a soft decline on one processor is approved on a
    retry elsewhere when that processor's uplift for the issuer is higher: a retry may go where first attempts
    should not."""
    reach = (1 - f["timeout"])[:, None] * (1 - f["degradation"]) * (1 - u.tech_failure)    # [processor, issuer]
    ok = np.minimum(u.approval[:, 0][None, :] * u.auth_uplift, 0.995)                     # card, the usual method
    g1, o1 = reach[:, None, :], ok[:, None, :]                                            # first attempt on p
    g2, o2 = reach[None, :, :], ok[None, :, :]                                            # retry on q
    total = g1 * o1 + (1 - g1) * g2 * o2 + g1 * g2 * SOFT_SHARE * np.maximum(o2 - o1, 0)   # [p, q, issuer]
    flat = total.reshape(-1, total.shape[2]).argmax(axis=0)
    return flat // total.shape[1], flat % total.shape[1]


class PaymentOracle(Baseline):
    """Knows the fault schedule and the truth: while any fault lasts, every payment's first attempt goes to
    the path, and its retries to the path, that together approve the most of its issuer's payments given every
    fault's effect (best_paths), and a storming merchant is capped at 2 attempts with no hard-decline retries.
    Outside faults: the default split. Each payment's luck does not depend on its path (common random
    numbers), so in fault windows no policy that routes by issuer can expect more approvals."""
    name = "oracle"

    def __init__(self, universe: Universe, scenario: Scenario):
        super().__init__(universe)
        self.scenario = scenario
        self.control = self.control_at(0)

    def control_at(self, tick: int) -> ControlPlane:
        u = self.universe
        faults = self.scenario.faults_at(tick)
        if not faults:
            return ControlPlane()
        first, retry = best_paths(u, fault_effects(u, faults))
        cdf = np.cumsum(np.eye(len(u.processors))[first], axis=1)
        caps = sorted({(x.merchant, RetryPolicy(2, 1, False)) for x in faults if x.kind is FaultKind.RETRY_STORM})
        order = np.stack([first, retry], axis=1).astype(np.int16)
        return ControlPlane(retry_policies=tuple(caps), route_split=RouteSplit(cdf, order))

    def next_control(self, batch: Batch, snap: Snapshot) -> ControlPlane:
        nxt = self.control_at(batch.tick + 1)
        if (nxt.route_split is None) != (self.control.route_split is None):
            self.changes.append({"tick": batch.tick + 1, "action": "route_every_payment" if nxt.route_split
                                 else "default_routing", "target": {}, "params": {}})
        return nxt


def make_policy(name: str, universe: Universe = DEFAULT_UNIVERSE, settings: AgentSettings = AgentSettings(),
                scenario: Scenario | None = None, llm=None, summarizer=None, **agent_kwargs) -> Agent:
    """Any of POLICIES as an Agent. agent_kwargs (clock, audit, kill_switch) reach the project's agent; a
    baseline changes its own control plane, outside the executor and its audit log."""
    if name in Agent.POLICIES:
        return Agent(universe, settings, name, llm=llm, summarizer=summarizer, **agent_kwargs)
    if name == "static":
        return Agent(universe, settings, controller=StaticRunbook(universe))
    if name == "sr_router":
        return Agent(universe, settings, controller=SuccessRateRouter(
            universe, tick_seconds=scenario.tick_seconds if scenario else 10.0))
    if name in ("oracle", "oracle_path"):
        if scenario is None:
            raise ValueError("the oracle needs the scenario's fault schedule")
        return Agent(universe, settings, controller=(PaymentOracle if name == "oracle" else PathOracle)(universe,
                                                                                                          scenario))
    raise ValueError(f"unknown policy {name!r}; valid: {', '.join(POLICIES)}")
