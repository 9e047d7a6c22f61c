"""The world: card, wallet and bank-transfer traffic, one tick at a time, as numpy columns.

Each payment draws its randomness when it arrives: its own columns plus a 64-bit
key from which every later attempt's draws are hashed (splitmix64 of key and
attempt number). So the same seed gives the same payments, and the same payment
meets the same luck on attempt k, whatever routing the control plane chose:
common random numbers for comparing policies. Retries are real later attempts.

Never reads the agent: the only inputs are the control plane (which the executor
owns) and the faults active this tick (which run.py injects).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from control_plane import ControlPlane
from decline_codes import HARD_CODES, Code
from merchant_profiles import Universe

TIMEOUT_MS = 30_000.0          # Hyperswitch's connector timeout (payments-facts §4)
SOFT_RECOVERY = 0.05           # immediate retry of a soft decline succeeds ~2–5% (payments-facts §3)
TAIL_SHARE = 0.002             # 0.1–0.5% of authorizations take 10–80 s (payments-facts §4)

# Issuer decline mix (payments-facts, suggested defaults): 51 48%, 05 37%, 54 7%, 14 5%, 57 3% -> 15% hard.
DECLINE_CODES = np.array([Code.INSUFFICIENT_FUNDS, Code.DO_NOT_HONOR, Code.EXPIRED_CARD,
                          Code.INVALID_CARD, Code.NOT_PERMITTED], dtype=np.int8)
DECLINE_CDF = np.cumsum([0.48, 0.37, 0.07, 0.05, 0.03])


class FaultKind(str, Enum):
    ISSUER_DEGRADATION = "issuer_degradation"
    ISSUER_OUTAGE = "issuer_outage"
    RETRY_STORM = "retry_storm"
    LATENCY_SPIKE = "latency_spike"


FAULT_FIELDS = {
    FaultKind.ISSUER_DEGRADATION: ("issuer", "processor"),
    FaultKind.ISSUER_OUTAGE: ("issuer",),
    FaultKind.RETRY_STORM: ("merchant",),
    FaultKind.LATENCY_SPIKE: ("processor",),
}


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    severity: float
    issuer: str | None = None
    processor: str | None = None
    merchant: str | None = None

    @property
    def target(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in FAULT_FIELDS[self.kind]}


@dataclass(frozen=True, eq=False)
class Batch:
    """All attempts made in one tick, one numpy column per field."""
    tick: int
    payment_id: np.ndarray
    attempt: np.ndarray
    merchant: np.ndarray
    issuer: np.ndarray
    method: np.ndarray
    processor: np.ndarray
    amount: np.ndarray
    latency_ms: np.ndarray
    approved: np.ndarray
    code: np.ndarray
    fee: np.ndarray
    new_payments: int = 0
    prev_code: np.ndarray | None = None   # the code of the payment's previous attempt; -1 on a first attempt

    def __len__(self) -> int:
        return len(self.payment_id)


_PAYMENT_COLUMNS = ("payment_id", "attempt", "merchant", "issuer", "method", "amount",
                    "route_u", "holdout_u", "approvable_u", "code_u", "key", "prev_processor", "prev_code")


def splitmix64(x: np.ndarray) -> np.ndarray:
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _halves(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two uniforms in [0, 1) from one 64-bit hash."""
    scale = 1.0 / 4294967296.0
    return (h >> np.uint64(32)).astype(np.float64) * scale, (h & np.uint64(0xFFFFFFFF)).astype(np.float64) * scale


def fault_effects(universe: Universe, faults: tuple[Fault, ...]) -> dict[str, np.ndarray]:
    """What the faults do to each path: failure shares, latency multipliers, storm strength (ground truth)."""
    u = universe
    nP, nI, nM = len(u.processors), len(u.issuers), len(u.merchants)
    out = {"degradation": np.zeros((nP, nI)), "outage": np.zeros(nI), "timeout": np.zeros(nP),
           "latency_mult": np.ones(nP), "storm": np.zeros(nM)}
    for f in faults:
        s = float(np.clip(f.severity, 0.0, 1.0))
        if f.kind is FaultKind.ISSUER_DEGRADATION:
            p, i = u.index("processor", f.processor), u.index("issuer", f.issuer)
            out["degradation"][p, i] = 1 - (1 - out["degradation"][p, i]) * (1 - s)
        elif f.kind is FaultKind.ISSUER_OUTAGE:
            i = u.index("issuer", f.issuer)
            out["outage"][i] = 1 - (1 - out["outage"][i]) * (1 - s)
        elif f.kind is FaultKind.LATENCY_SPIKE:
            p = u.index("processor", f.processor)
            out["latency_mult"][p] *= 1 + 3 * s
            out["timeout"][p] = 1 - (1 - out["timeout"][p]) * (1 - 0.35 * s)
        elif f.kind is FaultKind.RETRY_STORM:
            m = u.index("merchant", f.merchant)
            out["storm"][m] = max(out["storm"][m], s)
    return out


@dataclass
class Simulator:
    universe: Universe
    seed: int = 0
    payments_per_tick: float = 2000.0
    tick_seconds: float = 10.0
    start_hour: float = 12.0
    tick: int = 0
    _next_id: int = 0
    _pending: dict[int, list[dict[str, np.ndarray]]] = field(default_factory=dict)

    def hour(self, tick: int) -> float:
        return (self.start_hour + tick * self.tick_seconds / 3600.0) % 24.0

    # -- arrivals -----------------------------------------------------------------
    def _arrivals(self, tick: int) -> dict[str, np.ndarray]:
        u = self.universe
        rng = np.random.default_rng([self.seed, tick])
        rate = self.payments_per_tick * u.merchant_share * u.traffic_multiplier(self.hour(tick))
        bursts = rng.random(len(u.merchants)) < np.array([m.burst_prob for m in u.merchants])
        rate = rate * np.where(bursts, [m.burst_mult for m in u.merchants], 1.0)
        counts = rng.poisson(rate)
        n = int(counts.sum())
        ma = u.merchant_arrays
        merchant = np.repeat(np.arange(len(u.merchants), dtype=np.int16), counts)
        issuer = np.searchsorted(np.cumsum(u.issuer_share), rng.random(n), side="right").astype(np.int16)
        issuer = np.minimum(issuer, len(u.issuers) - 1)
        method = (rng.random(n)[:, None] >= ma["method_cdf"][merchant]).sum(axis=1).astype(np.int16)
        method = np.minimum(method, len(u.methods) - 1)
        amount = np.round(np.exp(ma["ticket_mu"][merchant] + ma["ticket_sigma"][merchant] * rng.standard_normal(n)), 2)
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        return {
            "payment_id": ids, "attempt": np.ones(n, dtype=np.int16), "merchant": merchant,
            "issuer": issuer, "method": method, "amount": amount,
            "route_u": rng.random(n), "holdout_u": rng.random(n),
            "approvable_u": rng.random(n), "code_u": rng.random(n),
            "key": rng.integers(0, 2 ** 63, n, dtype=np.int64).astype(np.uint64),
            "prev_code": np.full(n, -1, dtype=np.int8),
            "prev_processor": np.full(n, -1, dtype=np.int16),   # processor of the last attempt (-1: none yet)
        }

    # -- one tick ------------------------------------------------------------------
    def step(self, control: ControlPlane, faults: tuple[Fault, ...] = ()) -> Batch:
        t = self.tick
        new = self._arrivals(t)
        parts = [new] + self._pending.pop(t, [])
        cols = {k: np.concatenate([p[k] for p in parts]) for k in _PAYMENT_COLUMNS} if len(parts) > 1 else new
        batch, storm = self._attempt(t, cols, control, faults)
        self._schedule(t, cols, batch, storm, control)
        self.tick += 1
        return Batch(new_payments=len(new["payment_id"]), **batch)

    def _fault_arrays(self, faults: tuple[Fault, ...]) -> dict[str, np.ndarray]:
        return fault_effects(self.universe, faults)

    def _route(self, cols: dict[str, np.ndarray], control: ControlPlane) -> np.ndarray:
        u = self.universe
        issuer = cols["issuer"]
        split = control.route_split
        processor = (cols["route_u"][:, None] >= (u.route_cdf if split is None else split.cdf)[issuer]).sum(axis=1)
        processor = np.minimum(processor, len(u.processors) - 1).astype(np.int16)
        if split is not None and split.retry_order is not None:
            retry = cols["attempt"] > 1
            order = split.retry_order[issuer[retry]]
            prev = cols["prev_processor"][retry]
            processor[retry] = np.where(order[:, 0] == prev, order[:, 1], order[:, 0])
        # the most specific override wins: processor-wide moves apply first, an issuer's or merchant's own after
        for ov in sorted(control.route_overrides, key=lambda o: (o.issuer is not None) + (o.merchant is not None)):
            mask = cols["holdout_u"] >= ov.holdout
            if ov.holdout_first_only:
                mask |= cols["attempt"] > 1
            if ov.retries_only:
                mask &= cols["attempt"] > 1
            if ov.from_processor is not None:
                mask &= processor == u.index("processor", ov.from_processor)
            if ov.issuer is not None:
                mask &= issuer == u.index("issuer", ov.issuer)
            if ov.merchant is not None:
                mask &= cols["merchant"] == u.index("merchant", ov.merchant)
            processor[mask] = u.index("processor", ov.to_processor)
        return processor

    def _attempt(self, t: int, cols: dict[str, np.ndarray], control: ControlPlane,
                 faults: tuple[Fault, ...]) -> tuple[dict, np.ndarray]:
        u = self.universe
        f = self._fault_arrays(faults)
        i, m, k = cols["issuer"], cols["merchant"], cols["attempt"]
        p = self._route(cols, control)
        h1 = splitmix64(cols["key"] ^ (k.astype(np.uint64) * np.uint64(0xD1B54A32D192ED03)))
        h2 = splitmix64(h1)
        u_tech, u_recover = _halves(h1)
        u_lat1, u_lat2 = _halves(h2)

        # Technical failures, one uniform split into nested causes: timeout, issuer down, path down, baseline.
        t1 = f["timeout"][p]
        t2 = t1 + (1 - t1) * f["outage"][i]
        t3 = t2 + (1 - t2) * f["degradation"][p, i]
        t4 = t3 + (1 - t3) * u.tech_failure[p, i]
        code = np.select(
            [u_tech < t1, u_tech < t2, u_tech < t3, u_tech < t4],
            [Code.TIMEOUT, Code.ISSUER_UNAVAILABLE, Code.SYSTEM_MALFUNCTION,
             np.where(u_tech < (t3 + t4) / 2, Code.ISSUER_UNAVAILABLE, Code.SYSTEM_MALFUNCTION)],
            default=Code.APPROVED).astype(np.int8)

        # Issuer decision for attempts that reached it.
        p_ok = np.minimum(u.approval[i, cols["method"]] * u.merchant_arrays["approval_factor"][m] * u.auth_uplift[p, i], 0.995)
        declined_code = DECLINE_CODES[np.minimum(np.searchsorted(DECLINE_CDF, cols["code_u"], side="right"), 4)]
        soft = (declined_code == Code.INSUFFICIENT_FUNDS) | (declined_code == Code.DO_NOT_HONOR)
        recovered = soft & (k > 1) & (u_recover < SOFT_RECOVERY / np.maximum(k - 1, 1))
        issuer_declines = (cols["approvable_u"] >= p_ok) & ~recovered
        reached = code == Code.APPROVED
        code = np.where(reached & issuer_declines, declined_code, code).astype(np.int8)
        approved = code == Code.APPROVED

        mu, sigma = u.latency_mu_sigma
        z = np.sqrt(-2.0 * np.log1p(-u_lat1)) * np.cos(2 * np.pi * u_lat2)
        latency = np.exp(mu[p] + sigma[p] * z) * f["latency_mult"][p]
        latency = np.where(u_recover > 1 - TAIL_SHARE, latency * 10, latency)
        latency = np.where(code == Code.TIMEOUT, TIMEOUT_MS, np.minimum(latency, TIMEOUT_MS)).astype(np.float32)

        pct, fixed, per_attempt = u.fees
        fee = per_attempt[p] + approved * (pct[p] * cols["amount"] + fixed[p])

        batch = {"tick": t, "payment_id": cols["payment_id"], "attempt": k, "merchant": m, "issuer": i,
                 "method": cols["method"], "processor": p, "amount": cols["amount"], "latency_ms": latency,
                 "approved": approved, "code": code, "fee": fee, "prev_code": cols["prev_code"]}
        return batch, f["storm"][m]

    def _schedule(self, t: int, cols: dict[str, np.ndarray], batch: dict, storm: np.ndarray,
                  control: ControlPlane) -> None:
        """Failed attempts that the merchant's retry behaviour (and the control plane) allows come back later."""
        u = self.universe
        ma = u.merchant_arrays
        m, code, k = cols["merchant"], batch["code"], cols["attempt"]
        max_attempts = ma["max_attempts"][m] + np.ceil(6 * storm).astype(int)
        backoff = np.where(storm > 0, 1, ma["backoff"][m])
        retry_hard = storm > 0
        for name, policy in control.retry_policies:
            sel = m == u.index("merchant", name)
            max_attempts = np.where(sel, np.minimum(max_attempts, policy.max_attempts), max_attempts)
            backoff = np.where(sel, np.maximum(backoff, policy.min_backoff_ticks), backoff)
            retry_hard = np.where(sel, retry_hard & policy.retry_hard_declines, retry_hard)
        hard = np.isin(code, HARD_CODES)
        retry = (code != Code.APPROVED) & (k < max_attempts) & (~hard | retry_hard)
        for s in control.suppressions:
            sel = np.ones(len(m), dtype=bool)
            if s.issuer is not None:
                sel &= cols["issuer"] == u.index("issuer", s.issuer)
            if s.method is not None:
                sel &= cols["method"] == u.index("method", s.method)
            if s.merchant is not None:
                sel &= m == u.index("merchant", s.merchant)
            retry &= ~sel
        if not retry.any():
            return
        due = t + np.maximum(backoff[retry], 1)
        chosen = {c: cols[c][retry] for c in _PAYMENT_COLUMNS}
        chosen["attempt"] = chosen["attempt"] + 1
        chosen["prev_code"] = code[retry]
        chosen["prev_processor"] = batch["processor"][retry]
        for d in np.unique(due):
            sel = due == d
            self._pending.setdefault(int(d), []).append({c: v[sel] for c, v in chosen.items()})
